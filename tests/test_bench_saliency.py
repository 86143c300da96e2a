"""`seq2seq bench saliency` on a tiny model: the JSON it prints and its argument checks."""

import argparse

import pytest

from seq2seq.bench import saliency as bench_saliency
from seq2seq.errors import UserError


def parse(*argv):
    parser = argparse.ArgumentParser()
    bench_saliency.add_arguments(parser)
    return parser.parse_args(list(argv))


class FakeModel:
    """Stands in for a compiled model: each step advances a fake clock by a fixed time."""

    def __init__(self, clock, seconds, log, name):
        self.clock, self.seconds, self.log, self.name = clock, seconds, log, name

    def train_on_batch(self, x, y):
        self.clock[0] += self.seconds
        self.log.append(self.name)


def test_ratios_are_of_median_step_times_and_the_order_rotates(monkeypatch):
    clock, log = [0.0], []
    monkeypatch.setattr(bench_saliency.time, "perf_counter", lambda: clock[0])
    seconds = {"plain": 0.010, "zero_weight": 0.0102, "penalized": 0.025}
    models = {name: FakeModel(clock, value, log, name) for name, value in seconds.items()}
    report = bench_saliency._measure(models, (None, None), parse("--rounds", "3", "--steps", "2", "--warmup", "1"))
    assert report["ratio_penalized"] == round(0.025 / 0.010, 3)
    assert report["ratio_zero_weight"] == round(0.0102 / 0.010, 3)
    assert report["step_ms"] == {"plain": 10.0, "zero_weight": 10.2, "penalized": 25.0}
    timed = log[3:]  # after one warm-up step each
    firsts = [timed[i] for i in range(0, len(timed), 6)]  # 3 models x 2 steps per round
    assert firsts == ["plain", "zero_weight", "penalized"]


@pytest.mark.parametrize("argv, message", [
    (("--rounds", "0"), "--rounds must be at least 1; received 0"),
    (("--models", "decoder"), "--models takes classifier and/or translator"),
])
def test_bad_arguments_name_the_flag(argv, message):
    with pytest.raises(UserError, match=message):
        bench_saliency.run(parse(*argv))
