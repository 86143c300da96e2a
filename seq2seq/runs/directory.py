"""Starting or resuming a run directory: shared by translator and classifier runs.

`prepare_any_run_dir` runs before any data is read or any model is built, so a
bad `--out` fails in a second, not after an hour of training: the directory
must take writes and have room, and a directory that already holds a run
must have been started with the same configuration, except for the `[train]`
settings that only steer what comes next (epochs, learning rate, ...).
"""

import dataclasses
import shutil
from pathlib import Path

from seq2seq.runs import config_io
from seq2seq.atomic import atomic_write_text
from seq2seq.errors import UserError

CONFIG_FILE = "config.toml"
# Free space a run directory needs to start (the exact need is checked once the model is built).
MIN_FREE_BYTES = 16 << 20


def prepare_any_run_dir(config, run_dir: Path, resumable_train_fields: tuple[str, ...], log=print) -> Path:
    """Creates `run_dir`, checks that it takes writes and has room, and writes `config.toml`.

    Args:
        config: the run's frozen config dataclass (its `train` section is a
            dataclass too); a resumed run is compared with the one saved.
        run_dir: the run directory (created with its parents).
        resumable_train_fields: names in `config.train` a resumed run may
            change; any other difference is refused.
        log: where a resumed run's changed settings are reported.

    Returns:
        `run_dir`. Raises UserError naming the directory and the fix.
    """
    run_dir = Path(run_dir)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe = run_dir / ".write-test"
        probe.write_text("ok")
        probe.unlink()
        free = shutil.disk_usage(run_dir).free
    except OSError as error:
        raise UserError(f"cannot write to run directory {str(run_dir)!r}: {error.strerror}") from None
    if free < MIN_FREE_BYTES:
        raise UserError(f"not enough space in run directory {str(run_dir)!r}: {free:,} bytes free, "
                        f"at least {MIN_FREE_BYTES:,} needed; free some space or pass another --out")
    config_path = run_dir / CONFIG_FILE
    if config_path.exists():
        _check_resumable(config, config_path, resumable_train_fields, log)
    try:
        atomic_write_text(config_path, config_io.to_toml(config))
    except OSError as error:
        raise UserError(f"cannot write to run directory {str(run_dir)!r}: {error.strerror}") from None
    return run_dir


def _check_resumable(config, config_path: Path, resumable_train_fields, log) -> None:
    """Refuses a saved run whose config differs from `config` outside the resumable fields."""
    saved = config_io.build(type(config), config_io.load_toml(config_path))
    steering = {name: getattr(config.train, name) for name in resumable_train_fields}
    if dataclasses.replace(saved, train=dataclasses.replace(saved.train, **steering)) != config:
        raise UserError(
            f"{config_path.parent} holds a run with a different configuration ({config_path}); "
            f"resume it with the same config (only train.{{{','.join(resumable_train_fields)}}} may change), "
            "or pass a new --out directory"
        )
    changed = [f"train.{name}: {getattr(saved.train, name)!r} -> {value!r}"
               for name, value in steering.items() if getattr(saved.train, name) != value]
    if changed:
        log("resuming with changed settings: " + ", ".join(changed))
