"""SentencePiece tokenizers: training from text files, and an in-graph tokenizer.

Every model the kit trains reserves the ids of `seq2seq.tokens`: pad=0,
unk=1, start=2, end=3, so `Embedding(mask_zero=True)` and the masked losses
work on its output unchanged; the next ids (4-19) are the placeholder tokens
"｟0｠" .. "｟15｠" of `seq2seq.placeholders` (SentencePiece
`user_defined_symbols`: always one piece each). `SentencePieceTokenizer` runs the model eagerly
through the `sentencepiece` library and inside TensorFlow graphs (tf.functions, exported
SavedModels) through tensorflow-text, which it imports only when a graph first needs it.

    path = train_sentencepiece(["corpus.tsv"], "out", vocab_size=8000)
    tokenizer = SentencePieceTokenizer.from_file(path)
    ids = tokenizer.tokenize(["Open file"])          # RaggedTensor [batch, None]
    text = tokenizer.detokenize(ids)                 # [batch] tf.string
"""

import os
import random
import re
import shutil
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import tensorflow as tf

from seq2seq import tokens
from seq2seq.errors import UserError
from seq2seq.placeholders import RESERVED_TOKENS

MODEL_TYPES = ("unigram", "bpe", "char", "word")

_TOO_HIGH = re.compile(r"Vocabulary size too high \((\d+)\)\. Please set it to a value <= (\d+)")
_TOO_SMALL = re.compile(r"Vocabulary size is smaller than required_chars\. (\d+) vs (\d+)")


# --------------------------------------------------------------------------- training


def read_training_sentences(inputs: Sequence[str | os.PathLike]) -> list[str]:
    """Sentences from text files: one per line, or one per column of a `.tsv` line.

    Blank lines and columns are skipped, as are lines holding NUL bytes.
    Raises UserError for a missing path, a directory or a file that is not UTF-8.
    """
    sentences = []
    for path in map(Path, inputs):
        if not path.exists():
            raise UserError(f"input file {str(path)!r} does not exist; check the path given to --input")
        if path.is_dir():
            raise UserError(f"input {str(path)!r} is a directory; pass the text files inside it instead")
        split_columns = path.suffix.lower() == ".tsv"
        try:
            with path.open(encoding="utf-8-sig") as lines:
                for line in lines:
                    if "\0" in line:
                        continue
                    columns = line.rstrip("\r\n").split("\t") if split_columns else [line.rstrip("\r\n")]
                    sentences.extend(column.strip() for column in columns if column.strip())
        except UnicodeDecodeError as error:
            raise UserError(
                f"input file {str(path)!r} is not UTF-8 text (bad byte at offset {error.start}); "
                "convert it to UTF-8, or run `seq2seq data check` on it"
            ) from None
    return sentences


def train_sentencepiece(
    inputs: Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    *,
    name: str = "spm",
    vocab_size: int = 8000,
    model_type: str = "unigram",
    character_coverage: float = 1.0,
    max_sentences: int = 200_000,
    seed: int = 0,
    num_threads: int | None = None,
    **trainer_options,
) -> Path:
    """Trains a SentencePiece model on text files and writes DIR/<name>.model and .vocab.

    Args:
        inputs: text files, one sentence per line; a `.tsv` file contributes
            each tab-separated column as its own sentence.
        out_dir: directory to write to (created if missing).
        name: file stem of the written model.
        vocab_size: number of pieces, the 4 special and 16 placeholder pieces included.
        model_type: one of "unigram", "bpe", "char", "word".
        character_coverage: fraction of characters the vocabulary must cover
            (1.0 for Latin scripts, ~0.9995 for large character sets).
        max_sentences: at most this many sentences, sampled with `seed`, are
            used for training (keeps training to seconds on big corpora).
        seed: seed of that sample.
        num_threads: trainer threads; defaults to the number of CPUs.
        **trainer_options: passed to `sentencepiece.SentencePieceTrainer.train`.
    Returns:
        The path of the written `.model` file.
    """
    sentences = read_training_sentences(inputs)
    if not sentences:
        names = ", ".join(str(path) for path in inputs)
        raise UserError(f"no text to train on: {names} hold(s) only blank lines; give non-empty text files")
    return train_sentencepiece_from_sentences(
        sentences, out_dir, name=name, vocab_size=vocab_size, model_type=model_type,
        character_coverage=character_coverage, max_sentences=max_sentences, seed=seed,
        num_threads=num_threads, **trainer_options,
    )


def train_sentencepiece_from_sentences(
    sentences: Iterable[str],
    out_dir: str | os.PathLike,
    *,
    name: str = "spm",
    vocab_size: int = 8000,
    model_type: str = "unigram",
    character_coverage: float = 1.0,
    max_sentences: int = 200_000,
    seed: int = 0,
    num_threads: int | None = None,
    **trainer_options,
) -> Path:
    """Like `train_sentencepiece`, from sentences in memory. Returns the `.model` path."""
    import sentencepiece

    _check_training_options(vocab_size, model_type, character_coverage)
    sentences = _sample(sentences, max_sentences, seed)
    if not sentences:
        raise UserError("no text to train on: the input holds no non-blank sentence")
    prefix = _model_prefix(out_dir, name)
    options = dict(
        model_prefix=str(prefix), vocab_size=vocab_size, model_type=model_type,
        character_coverage=character_coverage, num_threads=num_threads or os.cpu_count() or 1,
        pad_id=tokens.PAD_ID, unk_id=tokens.UNK_ID, bos_id=tokens.START_ID, eos_id=tokens.END_ID,
        pad_piece=tokens.PAD_PIECE, unk_piece=tokens.UNK_PIECE,
        bos_piece=tokens.START_PIECE, eos_piece=tokens.END_PIECE,
        user_defined_symbols=list(RESERVED_TOKENS), minloglevel=2,
    )
    options.update(trainer_options)
    try:
        sentencepiece.SentencePieceTrainer.train(sentence_iterator=iter(sentences), **options)
    except (RuntimeError, ValueError) as error:
        raise UserError(_explain_trainer_error(str(error), vocab_size, len(sentences))) from None
    return prefix.with_name(prefix.name + ".model")


def prepare_run_tokenizer(run_dir, settings, sentences, **trainer_options) -> Path:
    """The SentencePiece model of a run directory: `run_dir/tokenizer.model`.

    Kept if it exists (a resumed run keeps the vocabulary its checkpoints were
    trained with); else copied from `settings.model` when that names a file; else
    trained on `sentences` with `settings.vocab_size`, `settings.model_type` and
    `settings.character_coverage`.

    Args:
        run_dir: the run directory.
        settings: a config section with `model`, `vocab_size`, `model_type`,
            `character_coverage` (the `[tokenizer]` table of a run config).
        sentences: the training text, a list of str (only read when training).
        **trainer_options: passed on to `train_sentencepiece_from_sentences`.
    """
    destination = Path(run_dir) / "tokenizer.model"
    if destination.exists():
        return destination
    if settings.model:
        source = Path(settings.model)
        if not source.is_file():
            raise UserError(f"tokenizer.model {str(source)!r} does not exist; give a .model file or \"\"")
        shutil.copyfile(source, destination)
        return destination
    return Path(train_sentencepiece_from_sentences(
        sentences, run_dir, name="tokenizer", vocab_size=settings.vocab_size,
        model_type=settings.model_type, character_coverage=settings.character_coverage,
        **trainer_options,
    ))


def _check_training_options(vocab_size, model_type, character_coverage):
    if model_type not in MODEL_TYPES:
        raise UserError(f"unknown model type {model_type!r}; use one of {', '.join(MODEL_TYPES)}")
    reserved = len(tokens.SPECIAL_IDS) + len(RESERVED_TOKENS)
    if not isinstance(vocab_size, int) or vocab_size <= reserved:
        raise UserError(
            f"vocabulary size {vocab_size!r} is too small: it must exceed the "
            f"{reserved} reserved pieces (special and placeholder tokens); use for example 1000 ({_VOCAB_SETTING})"
        )
    if not 0.0 < character_coverage <= 1.0:
        raise UserError(f"character coverage {character_coverage!r} must be in (0, 1]; use 1.0 for Latin scripts")


def _sample(sentences: Iterable[str], max_sentences: int, seed: int) -> list[str]:
    """At most `max_sentences` non-blank sentences, a seeded sample if there are more."""
    sentences = [s for s in sentences if s.strip()]
    if len(sentences) > max_sentences:
        sentences = random.Random(seed).sample(sentences, max_sentences)
    return sentences


def _model_prefix(out_dir, name: str) -> Path:
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"output {str(out_dir)!r} is a file, not a directory; choose a directory for --out")
    if not name or "/" in name or os.sep in name:
        raise UserError(f"model name {name!r} must be a plain file stem such as 'spm'")
    out_dir.mkdir(parents=True, exist_ok=True)
    return out_dir / name


# Where each command takes the vocabulary size, for error hints raised below the CLI.
_VOCAB_SETTING = ("`--set tokenizer.vocab_size=N` in `seq2seq train` and `seq2seq classifier train`, "
                  "`--vocab-size N` in `seq2seq tokenizer train` and `seq2seq classifier train`")


def _explain_trainer_error(message: str, vocab_size: int, n_sentences: int) -> str:
    """Turns SentencePiece's internal error messages into one the user can act on."""
    if match := _TOO_HIGH.search(message):
        return (
            f"vocabulary size {vocab_size} is too large for this input: {n_sentences} sentences "
            f"yield at most {match.group(2)} pieces; use {match.group(2)} or less ({_VOCAB_SETTING}), "
            "or train on more text"
        )
    if match := _TOO_SMALL.search(message):
        return (
            f"vocabulary size {vocab_size} is too small for the {match.group(2)} distinct characters "
            f"and reserved pieces of this input; use {match.group(2)} or more ({_VOCAB_SETTING}), "
            "or lower the character coverage, e.g. 0.9995 (`--set tokenizer.character_coverage=0.9995`, "
            "`--character-coverage` of `seq2seq tokenizer train`)"
        )
    return f"SentencePiece training failed: {message}"


# --------------------------------------------------------------------------- in-graph tokenizer


class SentencePieceTokenizer(tf.Module):
    """A SentencePiece model as a `tf.Module`: the same ids eagerly and in graphs.

    Called eagerly, the methods run the `sentencepiece` library on the host
    and return TensorFlow values; traced in a graph (tf.function, SavedModel),
    they run `tensorflow_text.SentencepieceTokenizer`, built on the first
    trace and tracked, so a tf.Module that stores this tokenizer exports it
    with its functions. Training and decoding therefore never load
    tensorflow-text (~0.12 GB resident); exporting does. Both paths give the
    same ids, offsets and strings (tests/test_tokenizer.py) except where the
    model scores several segmentations equally (runs of periods: 16 of the
    108,038 en-fr gettext strings), where the two SentencePiece builds pick
    different ones.
    No start or end token is added by `tokenize`: the pipeline adds them.
    """

    def __init__(self, model_proto: bytes, name: str | None = None):
        super().__init__(name=name)
        import sentencepiece

        processor = sentencepiece.SentencePieceProcessor(model_proto=model_proto)
        _check_reserved_pieces(processor)
        self.model_proto = model_proto
        self._processor = processor
        self._vocab_size = processor.get_piece_size()
        self._pieces = tuple(processor.id_to_piece(i) for i in range(self._vocab_size))
        self._sentencepiece = None  # tensorflow_text's op, made when a graph first needs it

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> "SentencePieceTokenizer":
        """Loads a `.model` file written by `train_sentencepiece`."""
        path = Path(path)
        if not path.is_file():
            raise UserError(
                f"tokenizer model {str(path)!r} does not exist; train one with "
                "`seq2seq tokenizer train --input FILE --vocab-size N --out DIR`"
            )
        try:
            return cls(path.read_bytes(), name=_module_name(path.stem))
        except (RuntimeError, OSError) as error:
            raise UserError(f"{str(path)!r} is not a SentencePiece model: {error}") from None

    @property
    def vocab_size(self) -> int:
        """Number of pieces, the reserved ones included."""
        return self._vocab_size

    @property
    def pieces(self) -> tuple[str, ...]:
        """All pieces, indexed by id."""
        return self._pieces

    def tokenize(self, strings):
        """Strings to piece ids.

        Args:
            strings: [batch] tf.string (or a list of str).
        Returns:
            tf.RaggedTensor int32 [batch, None], without start or end tokens.
        """
        texts = _host_texts(strings)
        if texts is None:
            return self._in_graph().tokenize(strings)
        ids = self._processor.encode(texts)
        return tf.RaggedTensor.from_row_lengths(
            np.fromiter((i for row in ids for i in row), np.int32), np.fromiter(map(len, ids), np.int64, len(ids)))

    def tokenize_with_offsets(self, strings):
        """Like `tokenize`, with each piece's byte span in the input string.

        Args:
            strings: [batch] tf.string.
        Returns:
            (ids, starts, ends): tf.RaggedTensor [batch, None], int32 ids and
            int64 byte offsets; a piece covers input bytes [start, end), its
            word-boundary marker included (so a word's first piece starts at
            the whitespace before the word).
        """
        texts = _host_texts(strings)
        if texts is None:
            return self._in_graph().tokenize_with_offsets(strings)
        protos = self._processor.encode(texts, out_type="proto")
        lengths = np.fromiter((len(proto.pieces) for proto in protos), np.int64, len(protos))

        def column(field, dtype):
            values = np.fromiter((getattr(piece, field) for proto in protos for piece in proto.pieces), dtype)
            return tf.RaggedTensor.from_row_lengths(values, lengths)

        return column("id", np.int32), column("begin", np.int64), column("end", np.int64)

    def detokenize(self, ids):
        """Piece ids to strings; stops at the first end token, drops pad and start.

        Args:
            ids: [batch, time] int, a dense Tensor or a RaggedTensor.
        Returns:
            [batch] tf.string.
        """
        if isinstance(ids, tf.RaggedTensor):
            ids = ids.to_tensor(default_value=tokens.PAD_ID)
        ids = tf.cast(tf.convert_to_tensor(ids), tf.int32)
        is_end = tf.cast(tf.equal(ids, tokens.END_ID), tf.int32)
        before_end = tf.equal(tf.cumsum(is_end, axis=1), 0)
        kept = before_end & tf.not_equal(ids, tokens.PAD_ID) & tf.not_equal(ids, tokens.START_ID)
        rows = tf.ragged.boolean_mask(ids, kept)
        if not tf.executing_eagerly():
            return self._in_graph().detokenize(rows)
        rows = rows.to_list()
        return tf.constant(self._processor.decode(rows) if rows else [], tf.string, shape=[len(rows)])

    def id_to_piece(self, ids):
        """Ids (any shape, int) to their pieces (same shape, tf.string); graph-safe."""
        if not tf.executing_eagerly():
            return self._in_graph().id_to_string(tf.cast(ids, tf.int32))
        ids = np.asarray(ids.numpy() if isinstance(ids, tf.Tensor) else ids, np.int64)
        if ids.size and (ids.min() < 0 or ids.max() >= self._vocab_size):
            raise ValueError(f"Expected ids in [0, {self._vocab_size}). Received: ids from {ids.min()} to {ids.max()}")
        return tf.constant(np.asarray(self._pieces, object)[ids] if ids.size else np.zeros(ids.shape, object),
                           tf.string, shape=ids.shape)

    def piece_to_id(self, pieces):
        """Pieces (any shape, tf.string) to their ids (same shape, int32; unknown pieces: UNK_ID); graph-safe."""
        if not tf.executing_eagerly():
            return self._in_graph().string_to_id(pieces)
        pieces = np.asarray(tf.convert_to_tensor(pieces, tf.string).numpy(), object)
        found = [self._processor.piece_to_id(piece.decode("utf-8", "replace")) for piece in pieces.reshape(-1)]
        return tf.constant(np.asarray(found, np.int32).reshape(pieces.shape))

    def _in_graph(self):
        """tensorflow_text's tokenizer of this model, built once (outside any graph being traced)."""
        if self._sentencepiece is None:
            import tensorflow_text

            with tf.init_scope():
                self._sentencepiece = tensorflow_text.SentencepieceTokenizer(model=self.model_proto)
        return self._sentencepiece


def _host_texts(strings) -> list[bytes] | None:
    """A [batch] of strings as a list of bytes when running eagerly; None in a graph."""
    if not tf.executing_eagerly():
        return None
    strings = tf.convert_to_tensor(strings, tf.string)
    if strings.shape.rank != 1:
        raise ValueError(f"Expected a [batch] vector of strings. Received: shape={strings.shape}")
    return list(strings.numpy())


def _check_reserved_pieces(processor) -> None:
    expected = {
        tokens.PAD_ID: tokens.PAD_PIECE, tokens.UNK_ID: tokens.UNK_PIECE,
        tokens.START_ID: tokens.START_PIECE, tokens.END_ID: tokens.END_PIECE,
    }
    found = {i: processor.id_to_piece(i) for i in expected if i < processor.get_piece_size()}
    if found != expected:
        raise UserError(
            f"the SentencePiece model does not reserve the kit's special ids: expected {expected}, "
            f"found {found}; retrain it with `seq2seq tokenizer train`"
        )


def _module_name(stem: str) -> str:
    """A valid tf.Module name derived from a file stem."""
    name = re.sub(r"\W", "_", stem)
    return name if name and not name[0].isdigit() else f"spm_{name}"
