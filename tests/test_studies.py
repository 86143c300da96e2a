"""`seq2seq.studies`: experiments behind the recipes, which the library itself never imports."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
IMPORTS_A_STUDY = re.compile(r"^\s*(from|import) seq2seq\.studies", re.M)


def importers(paths) -> list[str]:
    return sorted(str(path.relative_to(ROOT)) for path in paths
                  if IMPORTS_A_STUDY.search(path.read_text(encoding="utf-8")))


def test_no_library_module_imports_a_study():
    library = [path for path in (ROOT / "seq2seq").rglob("*.py") if "studies" not in path.parts]
    assert importers(library) == []
    # The recipes do, which shows the pattern finds such an import.
    assert importers((ROOT / "recipes").glob("*.py")) == ["recipes/decoy_classifier.py",
                                                          "recipes/end_token_collapse.py"]


def test_the_studies_import_as_the_recipes_do():
    from seq2seq.studies import collapse_setups, collapse_study, decoy

    assert collapse_study.SETUPS is collapse_setups.SETUPS
    assert decoy.SETUPS == ("plain", "regularized", "without_decoy")
