"""A run's decoding graph kept in its run directory, so `seq2seq translate` starts fast.

Tracing the decoding loop (`seq2seq.decoding.encode_and_decode`) in Python
takes about as long as importing TensorFlow, and loading the Keras model needs
Keras. The first `seq2seq translate` of a run with a given
beam size and maximum length therefore saves the traced graphs with the
translator's variables, as SavedModels:

    RUN/decode_cache/<key>/free/          the search without the placeholder constraint
    RUN/decode_cache/<key>/constrained/   with it (runs whose tokenizer reserves placeholders)
    RUN/decode_cache/<key>/key.json       the options and run files it was made from

and every later one loads them instead: no Keras model, no retracing (the
python `sentencepiece` library encodes and decodes, as the kit's tokenizer
does eagerly). Each
SavedModel is loaded when a batch first needs it; most batches hold no
placeholder, so a start-up usually reads one graph.

`<key>` is a digest of what the graph depends on: the bytes of config.toml,
tokenizer.model, model.keras and casing.json, the source files that build the
graph (`seq2seq/decoding.py`, `seq2seq/models/`, `seq2seq/layers/`, this
module), the TensorFlow version and the decoding options. Retraining, editing
the config or upgrading the kit gives another key, so a stale graph is never
used; when an entry is written, those of other weights and those of the same
options made by other code are removed. A run directory that cannot be
written is translated without a cache.

Outputs are those of `seq2seq.runs.translation.translate_texts` byte for byte: the
same first-word casing, placeholder protection, length-sorted batches, source
cut, and one graph per batch chosen as `seq2seq.decoding.translate_ids` does
(the placeholder constraint only for a batch whose sources hold a reserved
token). Timings: docs/performance.md.
"""

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import tensorflow as tf

from seq2seq import placeholders, tokens
from seq2seq.runs.directory import CONFIG_FILE
from seq2seq.runs.translation import CASING_FILE, MODEL_FILE, TOKENIZER_FILE

CACHE_DIR = "decode_cache"
KEY_FILE = "key.json"  # what the entry was made from
VARIANTS = {False: "free", True: "constrained"}  # constrain -> the SavedModel's subdirectory
FORMAT = 2  # bump when the saved functions' signature or outputs change
_PACKAGE = Path(__file__).resolve().parent.parent  # seq2seq/
_GRAPH_SOURCES = ("decoding.py", "tokens.py", "runs/decode_cache.py", "models", "layers")
_RUN_FILES = (CONFIG_FILE, TOKENIZER_FILE, MODEL_FILE, CASING_FILE)
_IDS = tf.TensorSpec([None, None], tf.int32, name="source_ids")


class CachedTranslator:
    """Translates strings with a run's decoding functions, without its Keras model.

    Args:
        processor: the run's `sentencepiece.SentencePieceProcessor`.
        functions: {constrain (bool): function}; each maps int32 source ids
            [batch, src_time] to {"token_ids": int32 [batch, max_length]}.
            `True` is needed only when `reserved_ids` is not empty.
        reserved_ids: the tokenizer's placeholder ids, () when protection is off.
        max_source_len: sources are cut to this many ids, END included.
        batch_size: sentences decoded together by default.
        casing: a `seq2seq.casing.FirstWordCasing`, or None.
    """

    def __init__(self, processor, functions, *, reserved_ids, max_source_len, batch_size, casing=None):
        if max_source_len < 2:
            raise ValueError(f"Expected max_source_len >= 2. Received: max_source_len={max_source_len}")
        if reserved_ids and True not in functions:
            raise ValueError("Expected a constrained function (key True) with reserved_ids. "
                             f"Received: keys {sorted(functions)}")
        self.processor = processor
        self.functions = functions
        self.reserved_ids = tuple(reserved_ids)
        self.max_source_len = max_source_len
        self.batch_size = batch_size
        self.casing = casing

    def translate(self, texts, batch_size=None, progress: bool = False) -> list[str]:
        """Translations of `texts` in input order, as `seq2seq.runs.translation.translate_texts` gives them
        (`progress`: a progress bar over the batches on stderr)."""
        from tqdm import tqdm

        from seq2seq.inference import length_sorted_batches

        texts = list(texts)
        lowered = np.zeros(len(texts), bool)
        if self.casing is not None and texts:
            cased, lowered = self.casing.lower_first_words(texts)
            texts, lowered = [text.decode("utf-8") for text in cased.numpy()], lowered.numpy()
        protect = bool(self.reserved_ids)
        protected = [placeholders.protect(text) if protect else placeholders.Protected(text, ()) for text in texts]
        outputs = [""] * len(texts)
        batches = list(length_sorted_batches(texts, batch_size or self.batch_size))
        for indices in tqdm(batches, desc="translating", unit="batch", disable=not progress):
            ids = self.source_ids([protected[i].text for i in indices])
            constrain = protect and bool(np.isin(ids, self.reserved_ids).any())
            token_ids = self.functions[constrain](tf.constant(ids))["token_ids"].numpy()
            for index, text in zip(indices, self.detokenize(token_ids)):
                outputs[index] = placeholders.restore(text, protected[index].placeholders) if protect else text
        if lowered.any():
            outputs = [text.decode("utf-8") for text in self.casing.raise_first_letters(outputs, lowered).numpy()]
        return outputs

    def source_ids(self, texts) -> np.ndarray:
        """int32 [batch, src_time]: pieces + END cut to `max_source_len`, padded with PAD_ID
        (what `seq2seq.inference.source_ids` makes)."""
        rows = [ids[: self.max_source_len - 1] + [tokens.END_ID] for ids in self.processor.encode(list(texts))]
        out = np.full((len(rows), max(map(len, rows), default=0)), tokens.PAD_ID, np.int32)
        for row, ids in zip(out, rows):
            row[: len(ids)] = ids
        return out

    def detokenize(self, token_ids) -> list[str]:
        """[batch, time] ids -> strings: each row up to its first END, PAD and START dropped
        (what `SentencePieceTokenizer.detokenize` does)."""
        texts = []
        for row in np.asarray(token_ids).tolist():
            row = row[: row.index(tokens.END_ID)] if tokens.END_ID in row else row
            texts.append(self.processor.decode([i for i in row if i not in (tokens.PAD_ID, tokens.START_ID)]))
        return texts


def cached_translator(run_dir, *, beam_size=None, max_length=None, log=None) -> CachedTranslator:
    """The run's `CachedTranslator` for these options, from the cache or made (and cached) now.

    `beam_size`, `max_length`: override the run's decode settings, as in
    `seq2seq.runs.translation.decode_options`. A miss loads the run
    (`seq2seq.runs.translation.load_run`, whose `UserError`s name a damaged file),
    traces the decoding functions and saves them; `log` gets one line when
    they cannot be saved.

    Raises:
        UserError: the run directory is missing, incomplete or damaged.
    """
    from seq2seq.runs.config import RunConfig
    from seq2seq.runs.files import RunFiles
    from seq2seq.runs.translation import RETRAIN

    files = RunFiles(Path(run_dir), "a trained run directory", RETRAIN)
    files.require((CONFIG_FILE, TOKENIZER_FILE, MODEL_FILE))
    config = files.config(CONFIG_FILE, RunConfig)
    return _loaded_or_made(files.directory, config, _options(config, beam_size, max_length), log)


def write_cache(run, *, log=None) -> CachedTranslator:
    """The `CachedTranslator` of a run in memory for its own decode settings, its graph saved.

    What a training run does last: it decodes its test split with the
    returned translator (the same outputs as `translate_texts`, from one
    trace), and the run's first `seq2seq translate` loads the saved graph
    instead of tracing it (~3 s instead of ~8 s). `run`: a
    `seq2seq.runs.translation.TranslationRun` whose files are written (the
    key digests them); `log` gets one line when the graph cannot be saved.
    """
    return _loaded_or_made(Path(run.directory), run.config, _options(run.config, None, None), log, run=run)


def _loaded_or_made(run_dir: Path, config, options: dict, log, run=None) -> CachedTranslator:
    """The entry of these options loaded if it is complete, else made from `run` (or the run on disk) and saved."""
    entry = run_dir / CACHE_DIR / cache_key(run_dir, options)
    if _complete(entry):
        return _load(entry, run_dir, config, options)
    return _make_and_save(run_dir, entry, options, log, run=run)


def cache_key(run_dir, options: dict) -> str:
    """The digest naming a run's cache entry (see the module docstring)."""
    digest = hashlib.sha256()
    digest.update(json.dumps({"format": FORMAT, "tensorflow": tf.__version__, "options": options,
                              "files": _run_files_digest(Path(run_dir))}, sort_keys=True).encode())
    for name in _GRAPH_SOURCES:
        path = _PACKAGE / name
        for source in sorted(path.glob("*.py")) if path.is_dir() else [path]:
            digest.update(_file_digest(source, source.relative_to(_PACKAGE).as_posix()))
    return digest.hexdigest()[:20]


def _file_digest(path: Path, name: str) -> bytes:
    if not path.is_file():
        return f"{name}:missing".encode()
    with open(path, "rb") as file:
        return name.encode() + hashlib.file_digest(file, "sha256").digest()


def _options(config, beam_size, max_length) -> dict:
    """The decoding options the graph is traced with: the run's, `beam_size` and `max_length` overriding."""
    from types import SimpleNamespace

    from seq2seq.runs.translation import decode_options

    # decode_options reads only the run's config.
    options = decode_options(SimpleNamespace(config=config), beam_size=beam_size, max_length=max_length)
    return {**options, "protect_placeholders": config.decode.protect_placeholders,
            "first_word_casing": config.decode.first_word_casing, "batch_size": config.decode.batch_size}


def _load(entry: Path, run_dir: Path, config, options: dict) -> CachedTranslator:
    import sentencepiece

    processor = sentencepiece.SentencePieceProcessor(model_file=str(run_dir / TOKENIZER_FILE))
    reserved = placeholders.reserved_ids(_Pieces(processor)) if options["protect_placeholders"] else ()
    functions = {constrain: _SavedFunction(entry / VARIANTS[constrain])
                 for constrain in ((False, True) if reserved else (False,))}
    casing = _casing(run_dir) if options["first_word_casing"] else None
    return CachedTranslator(processor, functions, reserved_ids=reserved, max_source_len=options["max_source_len"],
                            batch_size=options["batch_size"], casing=casing)


class _SavedFunction:
    """The `translate` function of a SavedModel directory, loaded on the first call."""

    def __init__(self, path: Path):
        self.path = path
        self._loaded = None  # the loaded module: owns the variables the function reads

    def __call__(self, source_ids):
        if self._loaded is None:
            self._loaded = tf.saved_model.load(str(self.path))
        return self._loaded.translate(source_ids)


class _Pieces:
    """The `.pieces` of a sentencepiece processor, as `placeholders.reserved_ids` reads them."""

    def __init__(self, processor):
        self.pieces = [processor.id_to_piece(i) for i in range(processor.get_piece_size())]


def _casing(run_dir: Path):
    """The run's first-word casing. casing.json is part of the cache key, so it loaded cleanly
    (`seq2seq.runs.translation.load_run`) when the entry was made."""
    from seq2seq.casing import FirstWordCasing

    words = json.loads((run_dir / CASING_FILE).read_text(encoding="utf-8"))["lower_first_words"]
    return FirstWordCasing(words)


def _make_and_save(run_dir: Path, entry: Path, options: dict, log, run=None) -> CachedTranslator:
    """Loads the run (unless given), traces its decoding functions, saves them under `entry` (best effort)."""
    import sentencepiece

    from seq2seq.cli.quiet import import_tensorflow_quietly
    from seq2seq.runs.translation import load_run

    if run is None:
        import_tensorflow_quietly()
        run = load_run(run_dir)
    reserved = placeholders.reserved_ids(run.tokenizer) if options["protect_placeholders"] else ()
    modules = {}
    for constrain in (False, True) if reserved else (False,):
        modules[constrain] = tf.Module(name=f"decode_{VARIANTS[constrain]}")
        modules[constrain].model_variables = list(run.translator.variables)
        modules[constrain].translate = _decoding_function(run.translator, options, reserved, constrain=constrain)
    try:
        _save(modules, entry, options)
    except (OSError, tf.errors.OpError) as error:
        if log is not None:
            log(f"note: could not save the decoding graph in {entry.parent} ({error}); "
                "the next translate of this run starts slowly again")
    processor = sentencepiece.SentencePieceProcessor(model_proto=run.tokenizer.model_proto)
    functions = {constrain: module.translate for constrain, module in modules.items()}
    return CachedTranslator(processor, functions, reserved_ids=reserved, max_source_len=options["max_source_len"],
                            batch_size=options["batch_size"], casing=run.casing)


def _decoding_function(translator, options: dict, reserved_ids, *, constrain: bool):
    """A `tf.function` [batch, src_time] int32 -> {"token_ids": [batch, max_length] int32}."""
    from seq2seq.decoding import encode_and_decode

    settings = dict(beam_size=options["beam_size"], max_length=options["max_length"],
                    length_penalty=float(options["length_penalty"]), reserved_ids=tuple(reserved_ids),
                    constrain=constrain if reserved_ids else None,
                    coverage_penalty=float(options.get("coverage_penalty", 0.0)))

    @tf.function(input_signature=[_IDS])
    def translate(source_ids):
        return {"token_ids": encode_and_decode(translator, source_ids, **settings).token_ids}

    return translate


def _save(modules: dict, entry: Path, options: dict) -> None:
    """Writes the SavedModels and key.json to a sibling temporary directory and renames it
    to `entry`; then removes the stale entries (other weights, or these options made by other code)."""
    cache = entry.parent
    cache.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{entry.name}.", dir=cache))
    key = {"options": options, "files": _run_files_digest(cache.parent),
           "variants": [VARIANTS[constrain] for constrain in modules]}
    try:
        for constrain, module in modules.items():
            tf.saved_model.save(module, str(staging / VARIANTS[constrain]), signatures={})
        (staging / KEY_FILE).write_text(json.dumps(key, indent=1, sort_keys=True) + "\n")
        if entry.exists() and not _complete(entry):
            shutil.rmtree(entry, ignore_errors=True)  # damaged: replaced
        try:
            os.replace(staging, entry)
        except OSError:
            if not _complete(entry):  # else another process saved it first: fine
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    for other in cache.iterdir():
        made_from = _made_from(other)
        if other != entry and made_from is not None and (made_from["files"] != key["files"]
                                                         or made_from["options"] == options):
            shutil.rmtree(other, ignore_errors=True)


def _complete(entry: Path) -> bool:
    """Whether `entry` holds its key.json and each SavedModel it lists (a deleted one is made again)."""
    made_from = _made_from(entry)
    return made_from is not None and all((entry / name / "saved_model.pb").is_file()
                                         for name in made_from["variants"])


def _run_files_digest(run_dir: Path) -> str:
    """A digest of the bytes of the run's files that the graph and the text handling read."""
    digest = hashlib.sha256()
    for name in _RUN_FILES:
        digest.update(_file_digest(run_dir / name, name))
    return digest.hexdigest()[:20]


def _made_from(entry: Path) -> dict | None:
    """The key.json of a cache entry, None for anything else (a staging directory, a stray file)."""
    try:
        made_from = json.loads((entry / KEY_FILE).read_text())
    except (OSError, ValueError):
        return None
    keys = {"files", "options", "variants"}
    return made_from if isinstance(made_from, dict) and keys <= made_from.keys() else None
