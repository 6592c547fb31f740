"""Stage 3, model: the reward model (trunk + float32 value head), varlen attention, adapters, export.

``reward_model`` (build and run), ``attention`` (backend choice and wiring), ``kernels`` (the attention
functions), ``adapters`` (LoRA/QLoRA), ``export`` (HF sequence-classification directories), ``convert``
(GGUF -> safetensors), ``tiny`` (models and tokenizers built from code).
"""
