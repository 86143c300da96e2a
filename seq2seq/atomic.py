"""Files written through a temporary name and a rename, so a crash never leaves half of one."""

import json
import os


def atomic_write_text(path, text: str) -> None:
    """Writes `text` to `path`: the old file or the whole new one, never a torn one."""
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def atomic_write_json(path, data) -> None:
    """`atomic_write_text` of `data` as indented JSON."""
    atomic_write_text(path, json.dumps(data, indent=1))
