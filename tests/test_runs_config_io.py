import dataclasses

import pytest

from seq2seq.runs.config_io import build, load_toml, parse_overrides, to_toml
from seq2seq.errors import UserError


@dataclasses.dataclass(frozen=True)
class Model:
    units: int = 8
    dropout: float = 0.1
    bidirectional: bool = False
    attention: str = "luong"
    buckets: tuple[int, ...] = (8, 16)
    checkpoint: str | None = None


@dataclasses.dataclass(frozen=True)
class Run:
    model: Model = Model()


def test_defaults_when_the_file_is_empty():
    assert build(Run, {}) == Run()


def test_toml_values_and_overrides_are_typed(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text('[model]\nunits = 32\ndropout = 0\nbuckets = [4, 12]\n')
    overrides = parse_overrides(["model.bidirectional=true", "model.dropout=0.25", "model.buckets=2,3"])
    config = build(Run, load_toml(path), overrides)
    assert config.model == Model(units=32, dropout=0.25, bidirectional=True, buckets=(2, 3))
    assert isinstance(config.model.dropout, float)


def test_round_trip_through_toml_text(tmp_path):
    config = Run(Model(units=3, attention='say "hi"', checkpoint="a/b"))
    path = tmp_path / "again.toml"
    path.write_text(to_toml(config))
    assert build(Run, load_toml(path)) == config


def test_none_survives_the_round_trip(tmp_path):
    path = tmp_path / "again.toml"
    path.write_text(to_toml(Run()))
    assert build(Run, load_toml(path)).model.checkpoint is None


@pytest.mark.parametrize(
    "table, overrides, message",
    [
        ({"modle": {}}, [], "unknown config section [modle]"),
        ({"model": {"unit": 3}}, [], "unknown config key model.unit"),
        ({"model": {"units": "many"}}, [], "config model.units must be int. Received: 'many'"),
        ({"model": {"units": True}}, [], "config model.units must be int"),
        ({}, ["model.units=many"], "config model.units must be int. Received: 'many'"),
        ({}, ["model.bidirectional=maybe"], "must be true or false"),
        ({}, ["units=3"], "expected --set section.key=value"),
    ],
)
def test_bad_keys_and_values_name_the_problem(table, overrides, message):
    with pytest.raises(UserError, match=message.replace("[", r"\[").replace("]", r"\]")):
        build(Run, table, parse_overrides(overrides))


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(UserError, match="config file not found"):
        load_toml(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[model\nunits = ")
    with pytest.raises(UserError, match="not valid TOML"):
        load_toml(bad)
