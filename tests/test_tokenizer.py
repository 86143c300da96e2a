import os
import subprocess
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from pathlib import Path

import pytest
import sentencepiece
import tensorflow as tf

from seq2seq import tokens
from seq2seq.cli.main import main
from seq2seq.data.generated import generate_sentences
from seq2seq.errors import UserError
from seq2seq.placeholders import RESERVED_TOKENS
from seq2seq.tokenizer import (
    SentencePieceTokenizer,
    read_training_sentences,
    train_sentencepiece,
    train_sentencepiece_from_sentences,
)

REPO = Path(__file__).resolve().parents[1]
SENTENCES = generate_sentences(300, seed=1)


@pytest.fixture(scope="module")
def model_path(tmp_path_factory) -> Path:
    text = tmp_path_factory.mktemp("text") / "sentences.txt"
    text.write_text("\n".join(generate_sentences(2000, seed=0)) + "\n", encoding="utf-8")
    return train_sentencepiece([text], tmp_path_factory.mktemp("spm"), name="tiny", vocab_size=48)


@pytest.fixture(scope="module")
def tokenizer(model_path) -> SentencePieceTokenizer:
    return SentencePieceTokenizer.from_file(model_path)


# --------------------------------------------------------------------------- training


def test_training_writes_model_and_vocab_with_reserved_ids(model_path):
    assert model_path.name == "tiny.model"
    assert model_path.with_suffix(".vocab").is_file()
    processor = sentencepiece.SentencePieceProcessor(model_file=str(model_path))
    assert processor.get_piece_size() == 48
    assert (processor.pad_id(), processor.unk_id(), processor.bos_id(), processor.eos_id()) == (
        tokens.PAD_ID, tokens.UNK_ID, tokens.START_ID, tokens.END_ID,
    )
    assert [processor.id_to_piece(i) for i in tokens.SPECIAL_IDS] == [
        tokens.PAD_PIECE, tokens.UNK_PIECE, tokens.START_PIECE, tokens.END_PIECE,
    ]
    # The placeholder tokens follow, each one piece wherever it stands.
    assert [processor.id_to_piece(i) for i in range(4, 20)] == list(RESERVED_TOKENS)
    pieces = processor.encode("open｟3｠file ｟15｠", out_type=str)
    assert "｟3｠" in pieces and "｟15｠" in pieces


def test_tsv_columns_are_separate_sentences(tmp_path):
    corpus = tmp_path / "pairs.tsv"
    corpus.write_bytes("\ufeffhello world\tbonjour monde\r\n\n only source \t\nno newline".encode("utf-8"))
    assert read_training_sentences([corpus]) == ["hello world", "bonjour monde", "only source", "no newline"]
    plain = tmp_path / "plain.txt"
    plain.write_text("a\tb\n", encoding="utf-8")
    assert read_training_sentences([plain]) == ["a\tb"]


def test_model_types_train(tmp_path):
    for model_type in ("bpe", "char", "word"):
        path = train_sentencepiece_from_sentences(
            SENTENCES, tmp_path, name=model_type, vocab_size=45, model_type=model_type
        )
        tokenizer = SentencePieceTokenizer.from_file(path)
        assert tokenizer.vocab_size == 45
        if model_type != "word":  # 25 words leave the others unknown
            assert _decode(tokenizer.detokenize(tokenizer.tokenize(SENTENCES[:3]))) == SENTENCES[:3]


@pytest.mark.parametrize(
    "make_input, message",
    [
        (lambda d: d / "missing.txt", "does not exist"),
        (lambda d: d, "is a directory"),
        (lambda d: _write(d / "blank.txt", b"\n  \n"), "only blank lines"),
        (lambda d: _write(d / "latin1.txt", "caf\xe9\n".encode("latin-1")), "not UTF-8"),
    ],
)
def test_bad_input_files_raise_user_errors(tmp_path, make_input, message):
    with pytest.raises(UserError, match=message):
        train_sentencepiece([make_input(tmp_path)], tmp_path / "out", vocab_size=20)


def test_too_large_vocabulary_is_explained(tmp_path):
    with pytest.raises(UserError, match=r"vocabulary size 5000 is too large .* use \d+ or less .*--set tokenizer.vocab_size=N"):
        train_sentencepiece_from_sentences(SENTENCES, tmp_path, vocab_size=5000)


def test_too_small_vocabulary_is_explained(tmp_path):
    # 25 characters and 20 reserved pieces (4 special, 16 placeholder tokens).
    with pytest.raises(UserError, match=r"vocabulary size 30 is too small .* use 45 or more .*--vocab-size N. in .seq2seq tokenizer train"):
        train_sentencepiece_from_sentences(SENTENCES, tmp_path, vocab_size=30)
    with pytest.raises(UserError, match=r"vocabulary size 20 is too small: it must exceed the 20 reserved"):
        train_sentencepiece_from_sentences(SENTENCES, tmp_path, vocab_size=20)


@pytest.mark.parametrize(
    "options, message",
    [
        ({"model_type": "wordpiece"}, "unknown model type 'wordpiece'"),
        ({"vocab_size": 4}, "vocabulary size 4 is too small"),
        ({"character_coverage": 1.5}, "character coverage 1.5"),
    ],
)
def test_bad_options_raise_user_errors(tmp_path, options, message):
    with pytest.raises(UserError, match=message):
        train_sentencepiece_from_sentences(SENTENCES, tmp_path, **options)


def test_output_that_is_a_file_is_refused(tmp_path):
    (tmp_path / "taken").write_text("x")
    with pytest.raises(UserError, match="is a file"):
        train_sentencepiece_from_sentences(SENTENCES, tmp_path / "taken", vocab_size=40)


# --------------------------------------------------------------------------- the tokenizer, eager and in graph

# Strings where eager (the sentencepiece library) and graph (tensorflow-text) paths could part:
# unknown and multi-byte characters, odd whitespace, placeholder tokens, an empty string.
TRICKY = ["bata \u00e9\u00e9 kivi", "  sunel\talfa   grumok ", RESERVED_TOKENS[0] + " munta " + RESERVED_TOKENS[3], "",
          "\u65e5\u672c munta"]


def test_eager_calls_match_the_in_graph_op(tokenizer):
    strings = tf.constant(SENTENCES[:40] + TRICKY)
    in_graph = tf.function(lambda s: tokenizer.tokenize_with_offsets(s))
    for eager, graph in zip(tokenizer.tokenize_with_offsets(strings), in_graph(strings)):
        assert eager.dtype == graph.dtype and eager.to_list() == graph.to_list()
    assert tokenizer.tokenize(strings).to_list() == tf.function(tokenizer.tokenize)(strings).to_list()
    ids = tokenizer.tokenize(strings).to_tensor()
    assert _decode(tokenizer.detokenize(ids)) == _decode(tf.function(tokenizer.detokenize)(ids))
    every_id = tf.range(tokenizer.vocab_size)
    pieces = tokenizer.id_to_piece(every_id)
    assert _decode(pieces) == _decode(tf.function(tokenizer.id_to_piece)(every_id)) == list(tokenizer.pieces)
    queries = tf.constant([list(tokenizer.pieces[:6]), ["\u2581nonesuch"] * 6])
    assert tokenizer.piece_to_id(queries).numpy().tolist() == tf.function(tokenizer.piece_to_id)(queries).numpy().tolist()
    assert tokenizer.piece_to_id(queries).numpy().tolist() == [list(range(6)), [tokens.UNK_ID] * 6]


def test_eager_calls_refuse_other_shapes_and_bad_ids(tokenizer):
    with pytest.raises(ValueError, match=r"\[batch\] vector of strings"):
        tokenizer.tokenize(tf.constant("one string"))
    with pytest.raises(ValueError, match=f"ids in \\[0, {tokenizer.vocab_size}\\)"):
        tokenizer.id_to_piece(tf.constant([tokenizer.vocab_size]))


def test_eager_use_does_not_load_tensorflow_text(model_path):
    # Building a training dataset (masks included) and decoding ids stay on the sentencepiece library.
    script = (
        "import sys, tensorflow as tf\n"
        "from seq2seq.tokenizer import SentencePieceTokenizer\n"
        "from seq2seq.data.batching import BatchingConfig\n"
        "from seq2seq.data.pipeline import make_classification_dataset, make_translation_dataset\n"
        f"tokenizer = SentencePieceTokenizer.from_file({str(model_path)!r})\n"
        "texts = ['bata kivi munta', 'sunel alfa']\n"
        "config = BatchingConfig(max_source_len=8, max_target_len=8, tokens_per_batch=64)\n"
        "list(make_translation_dataset(texts, texts, tokenizer, config))\n"
        "list(make_classification_dataset(texts, [0, 1], tokenizer, config, masks=[[1, 0, 1], [0, 1]]))\n"
        "print(tokenizer.detokenize(tokenizer.tokenize(texts)).numpy()[0].decode())\n"
        "print('tensorflow_text' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split("\n")[:2] == ["bata kivi munta", "False"]



def test_round_trip(tokenizer):
    ids = tokenizer.tokenize(SENTENCES)
    assert isinstance(ids, tf.RaggedTensor) and ids.dtype == tf.int32
    assert ids.shape[0] == len(SENTENCES)
    assert _decode(tokenizer.detokenize(ids)) == SENTENCES


def test_tokenize_adds_no_special_tokens(tokenizer):
    values = tokenizer.tokenize(SENTENCES).flat_values.numpy()
    assert values.min() > tokens.END_ID


def test_vocabulary_and_pieces(tokenizer):
    assert tokenizer.vocab_size == 48 == len(tokenizer.pieces)
    assert tokenizer.pieces[: len(tokens.SPECIAL_IDS)] == (
        tokens.PAD_PIECE, tokens.UNK_PIECE, tokens.START_PIECE, tokens.END_PIECE,
    )
    pieces = tokenizer.id_to_piece(tf.constant([[tokens.END_ID, 7]]))
    assert [_decode(row) for row in pieces] == [[tokens.END_PIECE, tokenizer.pieces[7]]]
    assert tokenizer.piece_to_id(tf.constant([tokens.START_PIECE])).numpy().tolist() == [tokens.START_ID]


def test_detokenize_stops_at_end_and_drops_pad_and_start(tokenizer):
    first, second = tokenizer.tokenize(SENTENCES[:2]).to_list()
    rows = [
        [tokens.START_ID] + first + [tokens.END_ID] + second[:2] + [tokens.PAD_ID] * 3,
        [tokens.PAD_ID] * 4 + second[:1],
    ]
    dense = tf.ragged.constant(rows).to_tensor(default_value=tokens.PAD_ID)
    expected = [SENTENCES[0], tokenizer.pieces[second[0]].lstrip("\u2581")]
    assert _decode(tokenizer.detokenize(dense)) == expected
    ragged = tf.ragged.constant([[tokens.START_ID] + first + [tokens.END_ID, *second], [tokens.END_ID]])
    assert _decode(tokenizer.detokenize(ragged)) == [SENTENCES[0], ""]


def test_unknown_characters_map_to_unk(tokenizer):
    ids = tokenizer.tokenize(["bata \u00e9\u00e9"]).flat_values.numpy()
    assert tokens.UNK_ID in ids


def test_works_inside_tf_data(tokenizer):
    dataset = tf.data.Dataset.from_tensor_slices(SENTENCES[:8]).batch(3).map(
        lambda batch: tokenizer.detokenize(tokenizer.tokenize(batch).to_tensor())
    )
    round_trip = [s.decode() for batch in dataset.as_numpy_iterator() for s in batch]
    assert round_trip == SENTENCES[:8]


class _Exported(tf.Module):
    def __init__(self, tokenizer):
        super().__init__()
        self.tokenizer = tokenizer

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def ids(self, strings):
        return self.tokenizer.tokenize(strings).to_tensor()

    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.int32)])
    def text(self, ids):
        return self.tokenizer.detokenize(ids)


def test_survives_a_saved_model(model_path, tmp_path):
    tokenizer = SentencePieceTokenizer.from_file(model_path)  # fresh: its in-graph op is built while saving
    tf.saved_model.save(_Exported(tokenizer), str(tmp_path / "exported"))
    loaded = tf.saved_model.load(str(tmp_path / "exported"))
    strings = tf.constant(SENTENCES[:5])
    ids = loaded.ids(strings)
    assert ids.numpy().tolist() == tokenizer.tokenize(strings).to_tensor().numpy().tolist()
    assert _decode(loaded.text(ids)) == SENTENCES[:5]


def test_from_file_refuses_missing_and_foreign_models(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        SentencePieceTokenizer.from_file(tmp_path / "none.model")
    (tmp_path / "junk.model").write_bytes(b"not a model")
    with pytest.raises(UserError, match="not a SentencePiece model"):
        SentencePieceTokenizer.from_file(tmp_path / "junk.model")
    sentencepiece.SentencePieceTrainer.train(  # SentencePiece's own default ids: unk=0, bos=1, eos=2.
        sentence_iterator=iter(SENTENCES), model_prefix=str(tmp_path / "foreign"), vocab_size=30, minloglevel=2,
    )
    with pytest.raises(UserError, match="does not reserve the kit's special ids"):
        SentencePieceTokenizer.from_file(tmp_path / "foreign.model")


# --------------------------------------------------------------------------- shipped models and CLI


def test_shipped_generated_model_encodes_every_generated_word_as_one_piece():
    path = REPO / "tokenizers" / "generated.model"
    assert path.stat().st_size < 500_000
    tokenizer = SentencePieceTokenizer.from_file(path)
    sentences = generate_sentences(200, seed=3)
    ids = tokenizer.tokenize(sentences)
    assert ids.row_lengths().numpy().tolist() == [len(s.split()) for s in sentences]
    assert tokens.UNK_ID not in ids.flat_values.numpy()
    assert not (REPO / "tokenizers" / "__init__.py").exists()


def test_cli_trains_and_reports(tmp_path, capsys):
    corpus = tmp_path / "corpus.tsv"
    corpus.write_text("".join(f"{s}\t{s[::-1]}\n" for s in SENTENCES), encoding="utf-8")
    code = main(["tokenizer", "train", "--input", str(corpus), "--vocab-size", "56", "--out", str(tmp_path / "o"),
                 "--name", "cli", "--model-type", "bpe"])
    assert code == 0
    out = capsys.readouterr().out
    assert str(tmp_path / "o" / "cli.model") in out and " s" in out
    assert SentencePieceTokenizer.from_file(tmp_path / "o" / "cli.model").vocab_size == 56


def test_cli_bad_input_is_a_one_line_error(tmp_path, capsys):
    code = main(["tokenizer", "train", "--input", str(tmp_path / "nope.txt"), "--out", str(tmp_path)])
    assert code == 2
    assert capsys.readouterr().err.startswith("error: input file")


def _decode(strings) -> list[str]:
    return [s.decode("utf-8") for s in strings.numpy().tolist()]


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_tokenizer_survives_seeding_after_creation():
    # tf.random.set_seed clears the eager kernel cache, which owned tensorflow-text's resource
    # when eager calls ran it; they run the sentencepiece library now, and must keep working.
    tokenizer = SentencePieceTokenizer.from_file(REPO / "tokenizers" / "generated.model")
    before = tokenizer.tokenize([SENTENCES[0]]).to_list()
    tf.random.set_seed(7)
    assert tokenizer.tokenize([SENTENCES[0]]).to_list() == before
    assert tokenizer.detokenize(tokenizer.tokenize([SENTENCES[0]])).numpy()[0].decode() == SENTENCES[0]
