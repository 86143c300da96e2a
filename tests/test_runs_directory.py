"""Starting and resuming run directories (translator and classifier runs share `prepare_any_run_dir`)."""

import dataclasses

import pytest

from seq2seq.runs import config_io
from seq2seq.runs.classification import ClassifierRunConfig
from seq2seq.errors import UserError
from seq2seq.runs.config import RESUMABLE_TRAIN_FIELDS, RunConfig
from seq2seq.runs.directory import CONFIG_FILE, prepare_any_run_dir

RUNS = [
    pytest.param(ClassifierRunConfig, RESUMABLE_TRAIN_FIELDS, "units", id="classifier"),
    pytest.param(RunConfig, RESUMABLE_TRAIN_FIELDS, "units", id="translator"),
]


def _with(config, section, **changes):
    return dataclasses.replace(config, **{section: dataclasses.replace(getattr(config, section), **changes)})


@pytest.mark.parametrize("config_class, resumable, model_field", RUNS)
def test_a_new_directory_gets_the_config_it_reloads(tmp_path, config_class, resumable, model_field):
    config = config_class()
    run_dir = prepare_any_run_dir(config, tmp_path / "a" / "run", resumable)
    assert config_io.build(config_class, config_io.load_toml(run_dir / CONFIG_FILE)) == config
    assert sorted(p.name for p in run_dir.iterdir()) == [CONFIG_FILE]  # the write probe is gone


@pytest.mark.parametrize("config_class, resumable, model_field", RUNS)
def test_resuming_may_change_only_the_steering_fields(tmp_path, config_class, resumable, model_field):
    config = config_class()
    prepare_any_run_dir(config, tmp_path, resumable)
    logged = []
    slower = _with(config, "train", learning_rate=config.train.learning_rate / 10)
    prepare_any_run_dir(slower, tmp_path, resumable, log=logged.append)
    assert logged == [f"resuming with changed settings: train.learning_rate: "
                      f"{config.train.learning_rate!r} -> {slower.train.learning_rate!r}"]
    assert config_io.build(config_class, config_io.load_toml(tmp_path / CONFIG_FILE)) == slower
    bigger = _with(slower, "model", **{model_field: getattr(slower.model, model_field) * 2})
    with pytest.raises(UserError, match="different configuration.*only train.{epochs,learning_rate"):
        prepare_any_run_dir(bigger, tmp_path, resumable)


def test_a_directory_that_is_a_file_is_refused(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(UserError, match="cannot write to run directory .*file/run"):
        prepare_any_run_dir(ClassifierRunConfig(), tmp_path / "file" / "run", ())
