"""CollapseMonitor on a tiny model trained a few steps, with a scripted decode_fn."""

import logging
import time

import keras
import numpy as np
import pytest

from seq2seq.callbacks import CollapseMonitor, CosineDecay
from seq2seq.tokens import END_ID

E = END_ID
PROBE_SOURCES = np.array([[1, 2], [3, 4]])
PROBE_REFERENCES = [[5, 6, E], [7, E]]
HEALTHY = [[5, 6, E], [7, E]]
COLLAPSED = [[E], [E]]


class ScriptedDecoder:
    """decode_fn that returns the scripted outputs in turn (the last one repeats)."""

    def __init__(self, *script):
        self.script = list(script)
        self.calls = []

    def __call__(self, sources):
        self.calls.append(sources)
        return self.script[min(len(self.calls), len(self.script)) - 1]


def fit(monitor, epochs):
    """Two steps per epoch (8 examples, batch 4) of a one-layer regression."""
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    x, y = np.zeros((8, 4), "float32"), np.zeros((8, 1), "float32")
    return model.fit(x, y, batch_size=4, epochs=epochs, callbacks=[monitor], verbose=0)


def test_collapse_stops_training_at_the_first_epoch_end():
    decoder = ScriptedDecoder(COLLAPSED)
    monitor = CollapseMonitor(
        decoder, PROBE_SOURCES, PROBE_REFERENCES, stop_on_collapse=True, patience=1
    )
    history = fit(monitor, epochs=3)
    assert history.epoch == [0]
    assert history.history["probe_empty_rate"] == [1.0]
    assert history.history["probe_first_token_end_rate"] == [1.0]
    assert [(step, d.verdict) for step, d in monitor.diagnoses] == [(2, "collapsed")]


def test_collapse_warns_without_stopping_by_default(caplog):
    decoder = ScriptedDecoder(COLLAPSED)
    with caplog.at_level(logging.WARNING, logger="seq2seq.callbacks"):
        history = fit(CollapseMonitor(decoder, PROBE_SOURCES, PROBE_REFERENCES), epochs=3)
    assert history.epoch == [0, 1, 2]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 3
    assert "End-token collapse on the probe set at step 2" in warnings[0]
    assert "--targets" in warnings[0]  # the fixes are in the warning
    assert all(sources is PROBE_SOURCES for sources in decoder.calls)


def test_every_n_steps_checks_across_epochs_and_healthy_stays_quiet(caplog):
    decoder = ScriptedDecoder(HEALTHY)
    monitor = CollapseMonitor(decoder, PROBE_SOURCES, PROBE_REFERENCES, every_n_steps=3)
    with caplog.at_level(logging.WARNING, logger="seq2seq.callbacks"):
        history = fit(monitor, epochs=3)  # 6 steps: checks after steps 3 and 6
    assert [(step, d.verdict) for step, d in monitor.diagnoses] == [(3, "healthy"), (6, "healthy")]
    assert len(decoder.calls) == 2
    assert "probe_empty_rate" not in history.history
    assert not caplog.records


def test_patience_counts_collapsed_checks_in_a_row():
    script = [HEALTHY, COLLAPSED, HEALTHY, COLLAPSED, COLLAPSED, HEALTHY]
    monitor = CollapseMonitor(
        ScriptedDecoder(*script),
        PROBE_SOURCES,
        PROBE_REFERENCES,
        every_n_steps=1,
        stop_on_collapse=True,
        patience=2,
    )
    history = fit(monitor, epochs=5)
    # Stopped after the second collapsed check in a row, at step 5 (epoch 2).
    assert [step for step, _ in monitor.diagnoses] == [1, 2, 3, 4, 5]
    assert history.epoch == [0, 1, 2]
    assert monitor.collapsed_in_a_row == 2


def test_training_targets_put_their_fix_in_the_warning(caplog):
    end_padded = np.array([[5, 6, E, E], [7, E, E, E]])
    monitor = CollapseMonitor(
        ScriptedDecoder(COLLAPSED), PROBE_SOURCES, PROBE_REFERENCES, targets=end_padded
    )
    assert monitor.target_stats.end_padded_rows == 2
    with caplog.at_level(logging.WARNING, logger="seq2seq.callbacks"):
        fit(monitor, epochs=1)
    # 5, 6 and 7 once each, END 5 times: weight 1 / 5.
    assert "Pad targets with 0" in caplog.text and "class weight 0.2 for id 3" in caplog.text


@pytest.mark.parametrize("kwargs", [{"every_n_steps": 0}, {"patience": 0}])
def test_bad_arguments_raise_value_errors(kwargs):
    with pytest.raises(ValueError, match="Received"):
        CollapseMonitor(ScriptedDecoder(HEALTHY), PROBE_SOURCES, PROBE_REFERENCES, **kwargs)


class RecordRate(keras.callbacks.Callback):
    """The learning rate each batch trains with (read after CosineDecay set it)."""

    def __init__(self):
        super().__init__()
        self.rates = []

    def on_train_batch_begin(self, batch, logs=None):
        self.rates.append(float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)))


def test_cosine_decay_follows_half_a_cosine_over_the_steps():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(0.5), loss="mse")
    x, y = np.zeros((8, 4), "float32"), np.zeros((8, 1), "float32")
    record = RecordRate()
    model.fit(x, y, batch_size=2, epochs=3, callbacks=[CosineDecay(floor=0.1), record], verbose=0)
    steps = np.arange(12)  # 3 epochs x 4 batches, each read before its update
    expected = 0.5 * (0.1 + 0.9 * 0.5 * (1 + np.cos(np.pi * steps / 12)))
    np.testing.assert_allclose(record.rates, expected, rtol=1e-6)


def test_cosine_decay_over_a_time_budget_reaches_the_floor():
    decay = CosineDecay(seconds=10.0, floor=0.25)
    decay._initial = 2.0
    decay._started = time.perf_counter() - 20.0  # the 10 s budget is spent
    assert decay.progress() == 1.0
    assert decay.rate(1.0) == pytest.approx(0.5)
    assert decay.rate(0.0) == pytest.approx(2.0)
    assert decay.rate(0.5) == pytest.approx(2.0 * (0.25 + 0.75 * 0.5))


@pytest.mark.parametrize("kwargs", [dict(seconds=0.0), dict(floor=1.5)])
def test_cosine_decay_rejects_bad_arguments(kwargs):
    with pytest.raises(ValueError, match="Expected"):
        CosineDecay(**kwargs)
