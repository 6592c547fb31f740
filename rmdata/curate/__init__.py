"""Curation: scored responses -> SFT rows (``rmdata filter``) and DPO pairs (``rmdata build-dpo``).

The way through, one module per concept:

- ``source``: find and check the score table (``rmdata score`` output, or any Parquet with the columns),
  scanned lazily.
- ``ranking``: the narrow decision frame (ids, reward, score), normalization, length penalty, the drops
  every command shares (missing reward, duplicate texts, too few responses) and the per-prompt rank.
- ``rules``: ``filter``'s keep rules (top-k, top-p, min-score), each drop with its reason.
- ``pairs``: ``build-dpo``'s pairing strategies, margin and tie rules, and the per-prompt cap.
- ``draw``: best-vs-random's seeded draw, a hash rmdata defines itself (stable across library versions).
- ``summary`` and ``plots``: what was kept and dropped, for the terminal, the dataset card and PNGs.
- ``write``: the output directory (Hub layout, card, manifest, marker) and the rejects file.
- ``run``: the two commands as functions of options.

The decision ops take and return polars LazyFrames over a narrow frame (ids and numbers, no texts); the
texts are read back (by row position, one chunk of row groups at a time) only when the output is written,
so memory stays bounded by the narrow frame.
Nothing here imports torch.
"""
