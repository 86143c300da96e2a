"""The README's Quick start is the contract with users: CI must run its exact test command."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def quick_start_commands() -> list[str]:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```(?:bash|sh)?\n(.*?)```", section, flags=re.S)
    return [line.strip() for block in blocks for line in block.splitlines() if line.strip()]


def test_quick_start_has_exactly_two_commands():
    assert len(quick_start_commands()) == 2


def test_ci_runs_the_readme_test_command():
    test_command = quick_start_commands()[1]
    ci_lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert test_command in ci_lines
    assert "pytest" in test_command


def python_snippets(path: str, section_title: str) -> list[str]:
    text = (ROOT / path).read_text(encoding="utf-8")
    section = text.split(f"## {section_title}", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


def test_every_loss_snippet_runs_as_written(tmp_path, monkeypatch):
    snippets = python_snippets("README.md", "3. Use the masked losses") + python_snippets("docs/losses.md", "Just the losses")
    assert len(snippets) >= 5
    monkeypatch.chdir(tmp_path)
    for snippet in snippets:
        exec(compile(snippet, "README.md", "exec"), {"__name__": "readme_snippet"})
