"""Stage 1, data: input files -> validated, normalized records with content ids. Imports no torch.

``inputs`` (what to read for a path), ``hub`` (Hub dataset ids through ``datasets``), ``readers`` (files -> raw
records), ``formats`` (the format registry and normalizers), ``hh`` (HH-RLHF transcripts), ``rules``
(record-level checks), ``schema`` (normalized columns, content ids), ``carried`` (the schema of carried
columns), ``stream`` (the two streaming passes: scan, stream), ``load`` (the passes collected in memory),
``drops`` (the Drop type and reasons), ``inspect`` (the ``rmdata inspect`` report).
"""
