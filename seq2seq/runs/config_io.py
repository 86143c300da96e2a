"""Reading frozen-dataclass configurations from TOML files and `--set` overrides.

A run configuration is a frozen dataclass whose fields are themselves frozen
dataclasses, one per TOML section (`[data]`, `[model]`, ...). This module knows
nothing about which sections exist: it only maps TOML tables and
`section.key=value` strings onto such dataclasses, with errors that name the bad
key or value and list what is allowed.
"""

import dataclasses
import tomllib
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

from seq2seq.errors import UserError

T = TypeVar("T")


def load_toml(path: str | Path) -> dict[str, Any]:
    """Returns the TOML file at `path` as a dict; UserError if missing or malformed."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"config file not found: {path}. Pass --config with an existing .toml file.")
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise UserError(f"config file {path} is not valid TOML: {error}") from None


def parse_overrides(overrides: list[str]) -> dict[str, dict[str, str]]:
    """Turns `["model.units=128", ...]` into `{"model": {"units": "128"}}` (values still strings)."""
    parsed: dict[str, dict[str, str]] = {}
    for item in overrides:
        key, sep, value = item.partition("=")
        section, dot, name = key.strip().partition(".")
        if not sep or not dot or not section or not name:
            raise UserError(
                f"expected --set section.key=value, for example --set model.units=128. Received: {item!r}"
            )
        parsed.setdefault(section, {})[name] = value.strip()
    return parsed


def build(cls: type[T], table: dict[str, Any], overrides: dict[str, dict[str, str]] | None = None) -> T:
    """Builds the nested dataclass `cls` from a TOML `table` plus string `overrides`.

    Unknown sections or keys raise UserError naming them and the allowed ones;
    override strings are converted to the field's declared type.
    """
    overrides = overrides or {}
    sections = {field.name: field for field in dataclasses.fields(cls)}
    for name in list(table) + list(overrides):
        if name not in sections:
            raise UserError(f"unknown config section [{name}]. Expected one of: {', '.join(sections)}")
    values = {}
    for name, field in sections.items():
        section_cls = _resolve_type(cls, field)
        values[name] = _build_section(name, section_cls, table.get(name, {}), overrides.get(name, {}),
                                      _default_of(field))
    try:
        return cls(**values)
    except ValueError as error:  # a check across sections (`__post_init__` of `cls`)
        raise UserError(f"invalid config: {error}") from None


def to_dict(config: Any) -> dict[str, Any]:
    """The configuration as plain TOML-compatible data (tuples become lists)."""
    return dataclasses.asdict(config)


def to_toml(config: Any) -> str:
    """Serialises a two-level configuration back to TOML text (for the run directory)."""
    lines = []
    for section, table in to_dict(config).items():
        lines.append(f"[{section}]")
        lines.extend(f"{key} = {_toml_value(value)}" for key, value in table.items())
        lines.append("")
    return "\n".join(lines)


def _default_of(field: dataclasses.Field):
    """The section's default instance in its parent (a factory may set other values than the class)."""
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return None if field.default is dataclasses.MISSING else field.default


def _build_section(name: str, section_cls: type, table: Any, overrides: dict[str, str], default=None):
    if not isinstance(table, dict):
        raise UserError(f"config [{name}] must be a table of key = value. Received: {table!r}")
    fields = {field.name: field for field in dataclasses.fields(section_cls)}
    values = {}
    for key, value in list(table.items()) + list(overrides.items()):
        if key not in fields:
            raise UserError(
                f"unknown config key {name}.{key}. Expected one of: {', '.join(sorted(fields))}"
            )
        field_type = _resolve_type(section_cls, fields[key])
        from_string = key in overrides and value is overrides[key]
        values[key] = _coerce(f"{name}.{key}", value, field_type, from_string)
    try:
        return dataclasses.replace(default, **values) if default is not None else section_cls(**values)
    except (TypeError, ValueError) as error:
        raise UserError(f"invalid config [{name}]: {error}") from None


def _resolve_type(owner: type, field: dataclasses.Field) -> Any:
    hints = typing.get_type_hints(owner)
    return hints[field.name]


def _coerce(key: str, value: Any, field_type: Any, from_string: bool) -> Any:
    """Converts `value` to `field_type`, or raises UserError naming the key."""
    origin = typing.get_origin(field_type)
    if origin in (typing.Union, types.UnionType):
        options = [arg for arg in typing.get_args(field_type) if arg is not type(None)]
        if value is None or value == "" or (from_string and value.lower() == "none"):
            return None
        return _coerce(key, value, options[0], from_string)
    if origin is tuple:
        item_type = typing.get_args(field_type)[0]
        items = value.split(",") if from_string else value
        if not isinstance(items, (list, tuple)):
            raise UserError(f"config {key} must be a list. Received: {value!r}")
        return tuple(_coerce(key, item.strip() if from_string else item, item_type, from_string) for item in items)
    if from_string:
        return _from_string(key, value, field_type)
    if field_type is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, field_type) or (field_type is int and isinstance(value, bool)):
        raise UserError(
            f"config {key} must be {field_type.__name__}. Received: {value!r} ({type(value).__name__})"
        )
    return value


def _from_string(key: str, text: str, field_type: type) -> Any:
    if field_type is bool:
        if text.lower() in ("true", "1", "yes"):
            return True
        if text.lower() in ("false", "0", "no"):
            return False
        raise UserError(f"config {key} must be true or false. Received: {text!r}")
    try:
        return field_type(text)
    except ValueError:
        raise UserError(f"config {key} must be {field_type.__name__}. Received: {text!r}") from None


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if value is None:
        return '""'
    return repr(value)
