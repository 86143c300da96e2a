"""Benchmarks: each prints one JSON object of measurements taken side by side in one run.

A benchmark module `seq2seq/bench/<name>.py` defines `add_arguments(parser)`
and `run(args) -> dict`, and imports TensorFlow only inside `run`. Speed
targets live here, never in timed tests: the machines are shared and noisy, so
ratios measured in the same run are what count.
"""
