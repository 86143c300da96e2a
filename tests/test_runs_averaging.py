"""Checkpoint averaging: `seq2seq average` on a tiny run with three step checkpoints."""

import json

import numpy as np
import pytest

from helpers import GENERATED_TOKENIZER, train_in_process, checkpoint_tensors, keras_weights
from seq2seq.runs.averaging import average_and_evaluate, averaged_scores, last_checkpoints, step_checkpoints
from seq2seq.cli.main import main
from seq2seq.errors import UserError

# 9 optimizer steps, a checkpoint every 3: checkpoints at steps 3, 6 and 9 (the epoch's end), all kept.
TINY = f"""
[data]
corpus = "generated"
task = "copy"
generated_pairs = 300

[tokenizer]
model = "{GENERATED_TOKENIZER}"

[model]
embed_dim = 8
units = 8

[train]
epochs = 1
steps_per_epoch = 9
checkpoint_every_steps = 3
keep_checkpoints = 4
learning_rate = 0.05

[decode]
beam_size = 1
max_length = 8
"""


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return train_in_process(tmp_path_factory.mktemp("averaging"), TINY)


@pytest.fixture(scope="module")
def averaged(run_dir):
    out = run_dir.parent / "averaged"
    assert main(["average", "--model", str(run_dir), "--last", "3", "--out", str(out)]) == 0
    return out


def checkpoint_means(paths) -> dict:
    """Each tensor of the checkpoints `paths` by name, averaged over them in NumPy (float64)."""
    tensors = [checkpoint_tensors(path) for path in paths]
    return {name: np.mean([np.asarray(t[name], np.float64) for t in tensors], axis=0)
            for name, value in tensors[0].items() if np.issubdtype(np.asarray(value).dtype, np.floating)}


def assert_weights_are_means(model_file, paths):
    """Every weight in `model_file` equals the NumPy mean of one checkpoint tensor over `paths`,
    and differs from that tensor in each checkpoint (it is a mean, not a copy)."""
    means = checkpoint_means(paths)
    last = checkpoint_tensors(paths[-1])
    for name, weight in keras_weights(model_file).items():
        matches = [key for key, mean in means.items()
                   if mean.shape == weight.shape and np.allclose(weight, mean, rtol=1e-6, atol=1e-7)]
        assert matches, f"{name} is not the mean of any checkpoint tensor"
        assert not np.array_equal(weight, last[matches[0]]), f"{name} is the last checkpoint's value"


def test_the_run_keeps_the_three_step_checkpoints(run_dir):
    assert [step for step, _ in step_checkpoints(run_dir)] == [3, 6, 9]


def test_the_averaged_weights_are_the_numpy_mean_of_the_last_three_checkpoints(run_dir, averaged):
    paths = [path for _, path in step_checkpoints(run_dir)]
    assert_weights_are_means(averaged / "model.keras", paths)
    record = json.loads((averaged / "averaged.json").read_text())
    assert record["steps"] == [3, 6, 9]
    for name in ("config.toml", "tokenizer.model", "casing.json"):
        assert (averaged / name).read_bytes() == (run_dir / name).read_bytes(), name


def test_last_two_averages_only_the_newest_two(run_dir, tmp_path):
    assert main(["average", "--model", str(run_dir), "--last", "2", "--out", str(tmp_path / "avg2")]) == 0
    assert json.loads((tmp_path / "avg2" / "averaged.json").read_text())["steps"] == [6, 9]
    assert_weights_are_means(tmp_path / "avg2" / "model.keras", [path for _, path in step_checkpoints(run_dir)][1:])


def test_more_checkpoints_than_kept_names_how_many_exist_and_the_setting(run_dir, tmp_path, capsys):
    assert main(["average", "--model", str(run_dir), "--last", "5", "--out", str(tmp_path / "avg")]) == 2
    error = capsys.readouterr().err
    assert "keeps 3" in error and "3, 6, 9" in error and "train.keep_checkpoints=5" in error
    assert not (tmp_path / "avg").exists()
    with pytest.raises(ValueError, match="last=0"):
        last_checkpoints(run_dir, 0)


def test_a_run_without_checkpoints_says_so(averaged, tmp_path):
    with pytest.raises(UserError, match="keeps 0 .*none"):
        last_checkpoints(averaged, 1)


def test_an_output_directory_with_files_is_refused(run_dir, averaged, capsys):
    assert main(["average", "--model", str(run_dir), "--last", "1", "--out", str(averaged)]) == 2
    assert "not an empty directory" in capsys.readouterr().err


def test_the_averaged_run_translates_evaluates_and_exports(averaged, tmp_path, capsys, monkeypatch):
    import io

    monkeypatch.setattr("sys.stdin", io.StringIO("one two\nthree\n"))
    assert main(["translate", "--model", str(averaged)]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 2
    (tmp_path / "pairs.tsv").write_text("one two\tone two\nthree\tthree\n")
    assert main(["evaluate", "--model", str(averaged), "--data", str(tmp_path / "pairs.tsv")]) == 0
    assert json.loads(capsys.readouterr().out)["sentences"] == 2
    assert main(["export", "--model", str(averaged), "--out", str(tmp_path / "exported")]) == 0
    assert (tmp_path / "exported" / "saved_model.pb").is_file()


def test_average_and_evaluate_scores_both_runs_on_the_test_split(run_dir, tmp_path):
    metrics = average_and_evaluate(run_dir, tmp_path / "avg", 3, log=lambda message: None)
    saved = json.loads((run_dir / "metrics.json").read_text())["test"]
    assert metrics["averaged_steps"] == [3, 6, 9]
    assert metrics["test_without_averaging"] == saved
    assert metrics["test"]["sentences"] == saved["sentences"]
    assert json.loads((tmp_path / "avg" / "metrics.json").read_text()) == metrics


def test_a_checkpoint_without_the_model_weights_is_a_clear_error(averaged, tmp_path):
    import tensorflow as tf

    from seq2seq.runs.averaging import mean_weights
    from seq2seq.runs.translation import load_run

    path = tf.train.Checkpoint(epoch=tf.Variable(1)).write(str(tmp_path / "other"))
    with pytest.raises(UserError, match="lacks weights of the run's model .*source_embedding"):
        mean_weights(load_run(averaged).translator, [path])


def test_averaged_scores_reads_back_its_first_result_and_skips_a_run_with_too_few(run_dir, tmp_path):
    out = tmp_path / "avg"
    first = averaged_scores(run_dir, out, last=2, log=lambda message: None)
    assert first["averaged_steps"] == [6, 9]
    (out / "model.keras").unlink()  # a second call reads metrics.json, it does not average again
    assert averaged_scores(run_dir, out, last=2, log=lambda message: None) == first
    said = []
    assert averaged_scores(run_dir, tmp_path / "none", last=4, log=said.append) is None
    assert said == [f"not averaging: {run_dir} keeps fewer than 4 checkpoints"]
    assert not (tmp_path / "none").exists()
