"""Stage 4, train: the packed training loop and what it needs.

``loop`` (``rmdata train``), ``data`` (split, tokenize, plan steps), ``losses`` (InternLM2 reward loss),
``optim`` (AdamW, schedule), ``checkpoint`` (resumable state), ``runs`` (the run directory), ``evaluate``.
"""
