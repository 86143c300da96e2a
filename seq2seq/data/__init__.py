"""Corpora: reading and validating text files, gettext catalogs, generated tasks,
deterministic splits and the summary behind `seq2seq data check`.

Every reader returns its items together with a `ReadReport` (see `reader.py`),
so training, `data check` and the recipes reject bad lines the same way.
"""
