"""One training config for both run kinds: its defaults per kind, the settings each kind refuses, the driver's config."""

import dataclasses

import pytest

from seq2seq.errors import UserError
from seq2seq.runs import config_io
from seq2seq.runs.classification import CLASSIFIER_TRAINING, ClassifierRunConfig
from seq2seq.runs.config import (
    CLASSIFIER_ONLY, TRANSLATOR_ONLY, RunConfig, TrainingConfig, driver_config,
)
from seq2seq.schedules import LR_SCHEDULES


def test_both_kinds_hold_the_same_training_config():
    assert type(RunConfig().train) is type(ClassifierRunConfig().train) is TrainingConfig
    assert ClassifierRunConfig().train == CLASSIFIER_TRAINING
    # Where the classifier's measured defaults differ, and only there.
    differing = {f.name for f in dataclasses.fields(TrainingConfig)
                 if getattr(RunConfig().train, f.name) != getattr(CLASSIFIER_TRAINING, f.name)}
    assert differing == {"epochs", "learning_rate", "lr_schedule", "select_on_swapped"}


def test_an_old_classifier_config_keeps_the_classifier_defaults():
    # A config.toml written before the kinds shared a class: [train] had five keys.
    table = {"train": {"epochs": 7, "learning_rate": 0.002, "clipnorm": 1.0, "patience": 2, "seed": 3}}
    train = config_io.build(ClassifierRunConfig, table).train
    assert (train.epochs, train.learning_rate, train.patience, train.seed) == (7, 0.002, 2, 3)
    assert train.lr_schedule == CLASSIFIER_TRAINING.lr_schedule == "constant"


@pytest.mark.parametrize("key, value", [("loss", "boundary"), ("best_metric", "bleu"), ("label_smoothing", "0.1"),
                                        ("strategy", "mirrored")])
def test_the_classifier_refuses_translator_settings(key, value):
    assert key in TRANSLATOR_ONLY
    with pytest.raises(UserError, match=rf"train\.{key} does not apply to a classifier run; remove it"):
        config_io.build(ClassifierRunConfig, {}, config_io.parse_overrides([f"train.{key}={value}"]))


def test_the_translator_refuses_classifier_settings():
    assert CLASSIFIER_ONLY == ("select_on_swapped",)
    with pytest.raises(UserError, match=r"train\.select_on_swapped does not apply to a translator run"):
        config_io.build(RunConfig, {}, config_io.parse_overrides(["train.select_on_swapped=true"]))


def test_the_classifier_needs_a_number_of_epochs():
    with pytest.raises(UserError, match=r"train.epochs = 0 .* set train.epochs >= 1 for a classifier"):
        config_io.build(ClassifierRunConfig, {}, config_io.parse_overrides(["train.epochs=0"]))


def test_the_schedule_names_are_the_drivers():
    with pytest.raises(UserError, match=r"Expected train.lr_schedule in \('constant', 'cosine'\)"):
        config_io.build(RunConfig, {}, config_io.parse_overrides(["train.lr_schedule=linear"]))
    assert LR_SCHEDULES == ("constant", "cosine")


def test_driver_config_carries_every_driver_setting(tmp_path):
    train = TrainingConfig(epochs=4, learning_rate=0.01, lr_schedule="constant", clipnorm=2.0, patience=5,
                           steps_per_epoch=0, checkpoint_every_steps=30, keep_checkpoints=3)
    driver = driver_config(train, tmp_path, progress=False, monitor="val_bleu", monitor_mode="max")
    assert (driver.out_dir, driver.epochs, driver.learning_rate, driver.lr_schedule, driver.clipnorm) == \
        (str(tmp_path), 4, 0.01, "constant", 2.0)
    assert (driver.patience, driver.steps_per_epoch, driver.checkpoint_every_steps, driver.keep_checkpoints) == \
        (5, None, 30, 3)  # 0 = "one pass" in the config is None for the driver
    assert (driver.progress, driver.monitor, driver.monitor_mode) == (False, "val_bleu", "max")
