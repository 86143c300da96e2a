"""Reading the files of a trained run directory back, each failure one `UserError` line.

Translator and classifier runs (`seq2seq.runs.translation.load_run`,
`seq2seq.runs.classification.load_run`) are read from files a user can delete,
truncate, empty or copy in from another run. `RunFiles` reads each one and turns
whatever is wrong with it into a `UserError` that names the file, says what is
wrong and what to do (retrain, copy the right file back, or point `--model` at
another run), instead of a traceback from TOML, JSON, SentencePiece or Keras:

    config.toml      empty, not TOML, a section missing, another kind of run's
    tokenizer.model  empty or not a SentencePiece model; its vocabulary size
                     must be the model's (`check_vocab`)
    model.keras      empty, not a `.keras` zip, another kind of model; its sizes
                     must be config.toml's (`check_model_config`)
    *.json           empty, not JSON, not the expected shape
"""

import dataclasses
import json
import tomllib
import zipfile
from dataclasses import dataclass
from pathlib import Path

from seq2seq.runs import config_io
from seq2seq.errors import UserError

ELSEWHERE = "point --model at another run directory"


@dataclass(frozen=True)
class RunFiles:
    """The files of one run directory.

    Args:
        directory: the run directory.
        what: what a complete directory is, for messages ("a trained run directory").
        retrain: the command that makes a new run ("seq2seq train --config FILE --out DIR").
    """

    directory: Path
    what: str
    retrain: str

    def error(self, name: str, problem: str, fix: str | None = None) -> UserError:
        """`DIR/NAME PROBLEM; FIX`, the fix defaulting to retraining or another --model."""
        fix = fix or f"retrain the run (`{self.retrain}`) or {ELSEWHERE}"
        return UserError(f"{self.directory / name} {problem}; {fix}")

    def require(self, names) -> None:
        """Refuses a directory that is missing or lacks one of `names`."""
        missing = [name for name in names if not (self.directory / name).is_file()]
        if self.directory.is_dir() and not missing:
            return
        raise UserError(
            f"{str(self.directory)!r} is not {self.what} (missing: {', '.join(missing) or 'the directory'}); "
            f"train one with `{self.retrain}` or {ELSEWHERE}"
        )

    def text(self, name: str) -> str:
        """The UTF-8 text of a file that must not be empty."""
        try:
            text = (self.directory / name).read_text(encoding="utf-8")
        except UnicodeDecodeError as error:
            raise self.error(name, f"is not UTF-8 text (byte offset {error.start})") from None
        except OSError as error:
            raise self.error(name, f"cannot be read ({error.strerror})") from None
        if not text.strip():
            raise self.error(name, "is empty (a write cut short?)")
        return text

    def json(self, name: str):
        """The parsed JSON of a non-empty file."""
        try:
            return json.loads(self.text(name))
        except json.JSONDecodeError as error:
            raise self.error(name, f"is not valid JSON, perhaps cut short ({error})") from None

    def config(self, name: str, config_class: type):
        """The run's frozen config dataclass; every section must be in the file, as training writes them."""
        try:
            table = tomllib.loads(self.text(name))
        except tomllib.TOMLDecodeError as error:
            raise self.error(name, f"is not valid TOML, perhaps cut short ({error})") from None
        missing = [f.name for f in dataclasses.fields(config_class) if f.name not in table]
        if missing:
            sections = ", ".join(f"[{section}]" for section in missing)
            raise self.error(name, f"lacks {sections}, which training always writes (cut short?)")
        try:
            return config_io.build(config_class, table)
        except UserError as error:
            raise self.error(name, f"is not the config of {self.what} ({error})") from None

    def tokenizer(self, name: str):
        """The run's `SentencePieceTokenizer`."""
        from seq2seq.tokenizer import SentencePieceTokenizer

        self._not_empty(name, self._tokenizer_fix(name))
        try:
            return SentencePieceTokenizer.from_file(self.directory / name)
        except UserError as error:
            detail = str(error).removeprefix(f"{str(self.directory / name)!r} is not a SentencePiece model: ")
            raise self.error(name, f"is not a SentencePiece model the kit can use, perhaps cut short ({detail})",
                             self._tokenizer_fix(name)) from None

    def model(self, name: str, model_class: type):
        """The Keras model saved in `name`, which must be a `model_class`."""
        from seq2seq.saving import load_model

        self._not_empty(name)
        # Keras answers "File not found" for a file that is there but not a zip archive.
        if not zipfile.is_zipfile(self.directory / name):
            raise self.error(name, "is not a .keras (zip) archive, perhaps cut short")
        try:
            model = load_model(self.directory / name, compile=False)
        except Exception as error:  # noqa: BLE001 - Keras raises many types for a damaged file
            detail = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise self.error(name, f"does not load as a Keras model, perhaps damaged ({detail[:200]})") from None
        if not isinstance(model, model_class):
            raise self.error(name, f"holds a {type(model).__name__}, not a {model_class.__name__}: "
                                   "it comes from another kind of run")
        return model

    def _not_empty(self, name: str, fix: str | None = None) -> None:
        if (self.directory / name).stat().st_size == 0:
            raise self.error(name, "is empty (a write cut short?)", fix)

    def check_vocab(self, model_name: str, model_vocab: int, tokenizer_name: str, tokenizer_vocab: int) -> None:
        """Refuses a tokenizer whose vocabulary size is not the model's embedding size."""
        if model_vocab != tokenizer_vocab:
            raise self.error(
                tokenizer_name,
                f"has {tokenizer_vocab} pieces but {model_name} embeds {model_vocab}: the two files come "
                "from different runs", self._tokenizer_fix(tokenizer_name, model_name))

    def check_model_config(self, model_name: str, model, config_name: str, section: str, settings) -> None:
        """Refuses a model whose `get_config()` disagrees with the config section's `settings`.

        Args:
            settings: the config section (a dataclass) whose fields are also
                keyword arguments of the model (`units`, `embed_dim`, ...).
        """
        saved = model.get_config()
        for key, value in dataclasses.asdict(settings).items():
            value = list(value) if isinstance(value, tuple) else value  # get_config() holds lists
            if key in saved and saved[key] != value:
                raise self.error(
                    config_name,
                    f"says {section}.{key} = {value!r} but {model_name} has {key} = {saved[key]!r}: the two "
                    "files come from different runs")

    def _tokenizer_fix(self, name: str, model_name: str = "model.keras") -> str:
        return (f"copy back the {name} of the run that trained {model_name}, retrain the run "
                f"(`{self.retrain}`), or {ELSEWHERE}")
