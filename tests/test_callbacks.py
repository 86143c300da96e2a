"""CollapseMonitor on a tiny model trained a few steps, with a scripted decode_fn; TimeBudget with a fake clock."""

import logging

import keras
import numpy as np
import pytest

from seq2seq.callbacks import CollapseMonitor, TimeBudget
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
    warnings = [r.getMessage() for r in caplog.records
                if r.name == "seq2seq.callbacks" and r.levelno == logging.WARNING]
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
    assert not [r for r in caplog.records if r.name == "seq2seq.callbacks"]


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


def test_a_resumed_monitor_counts_optimizer_steps_and_continues_its_collapsed_count():
    monitor = CollapseMonitor(ScriptedDecoder(COLLAPSED), PROBE_SOURCES, PROBE_REFERENCES, every_n_steps=3)
    monitor.resume_state["collapsed_in_a_row"].assign(1)  # as a checkpoint restores it
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    model.optimizer.build(model.trainable_variables)
    model.optimizer.iterations.assign(4)  # a run resumed after 4 steps
    x, y = np.zeros((8, 4), "float32"), np.zeros((8, 1), "float32")
    model.fit(x, y, batch_size=4, epochs=2, callbacks=[monitor], verbose=0)  # steps 5 to 8
    assert [step for step, _ in monitor.diagnoses] == [6]
    assert monitor.collapsed_in_a_row == 2


def test_a_time_budget_anneals_the_cosine_by_its_end_and_stops_there(monkeypatch):
    from seq2seq import callbacks as callbacks_module
    from seq2seq.training import BudgetedCosineDecay

    schedule = BudgetedCosineDecay(1.0, decay_steps=1000, alpha=0.02)
    model = keras.Sequential([keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.Adam(schedule), loss="mse")
    clock = iter([0.0, 30.0, 45.0, 60.0])  # on_train_begin, then three batches of a 60 s budget
    monkeypatch.setattr(callbacks_module.time, "perf_counter", lambda: next(clock))
    budget = TimeBudget(60.0)
    budget.set_model(model)
    budget.on_train_begin()

    def cosine(step):
        return 0.02 + 0.98 * 0.5 * (1 + np.cos(np.pi * min(step, 1000) / 1000))

    budget.on_train_batch_end(0)
    assert float(schedule.time_fraction.numpy()) == 0.5 and not model.stop_training
    # Through half the budget the rate is the planned cosine's at the step.
    np.testing.assert_allclose(float(schedule(10)), cosine(10), rtol=1e-6)
    np.testing.assert_allclose(float(schedule(600)), cosine(600), rtol=1e-6)
    budget.on_train_batch_end(1)
    # Three quarters used: the cosine has caught up half way, (0.75 - 0.5) / 0.5, unless the step is further.
    np.testing.assert_allclose(float(schedule(10)), cosine(500), rtol=1e-6)
    np.testing.assert_allclose(float(schedule(700)), cosine(700), rtol=1e-6)
    budget.on_train_batch_end(2)
    assert model.stop_training and budget.exhausted
    np.testing.assert_allclose(float(schedule(10)), 0.02, rtol=1e-6)  # the floor, at the budget's end
