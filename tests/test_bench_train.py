"""`seq2seq bench train` argument checks (the benchmark itself reads the machine's gettext
catalogs and runs for minutes, so it is a command, not a test)."""

import argparse

import pytest

from seq2seq.bench import train as bench_train

def parse(*argv):
    parser = argparse.ArgumentParser()
    bench_train.add_arguments(parser)
    return parser.parse_args(list(argv))


def test_rejects_a_non_positive_budget():
    from seq2seq.errors import UserError

    with pytest.raises(UserError, match="--minutes"):
        bench_train.run(parse("--minutes", "0"))
