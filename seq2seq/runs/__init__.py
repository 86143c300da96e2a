"""The run layer: a TOML config becomes a run directory, and a run directory is loaded back.

    config.py          the translator's run config (`RunConfig` and its sections), every key with its default
    config_io.py       TOML <-> config dataclasses, `--set section.key=value` overrides
    directory.py       the run-directory protocol: "is this a run", fresh start or resume, what may change
    files.py           reading a run's files with one-line errors naming the damaged file
    data_defaults.py   settings left at 0 chosen from the training data (vocabulary, cuts, epochs)
    translation.py     a translator run: train, load, translate, evaluate, export
    averaging.py       a run whose weights are the mean of its last N step checkpoints
    classification.py  a classifier run: labels, optional masks, train, load, predict, export

The CLI (`seq2seq.cli`) and the recipes call this layer; nothing below it (models, training,
decoding, losses) imports from it.
"""
