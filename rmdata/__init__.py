"""rmdata: packed reward-model training and reward-based data curation."""

__version__ = "0.1.0"
