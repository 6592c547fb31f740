"""Stage 1, data: input files -> validated, normalized records with content ids. Imports no torch.

``inputs`` (what to read for a path), ``readers`` (files -> raw records), ``formats`` (the format registry and
normalizers), ``hh`` (HH-RLHF transcripts), ``rules`` (record-level checks), ``schema`` (normalized columns,
content ids), ``load`` (the loader: detect, validate, normalize), ``inspect`` (the ``rmdata inspect`` report).
"""
