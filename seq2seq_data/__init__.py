"""Data for the seq2seq ResMLP: the built-in synthetic language pair and raw text -> fairseq binarised data.

Kept beside the plugin, not in it (as fairseq keeps its data preparation in ``examples/``): run from a clone of the
repository, ``python -m seq2seq_data.synthetic ...`` and ``python -m seq2seq_data.prepare ...``.
"""
