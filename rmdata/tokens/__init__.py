"""Stage 2, tokens: normalized rows -> token sequences ending with the reward token, and packed rows.

``templates`` (chat templates, reward token, truncation), ``packing`` (pure bin-packing, no torch),
``batching`` (packed rows as tensors).
"""
