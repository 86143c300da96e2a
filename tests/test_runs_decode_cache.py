"""The cached decoding graph of `seq2seq translate`: the same outputs as the Keras model, a faster start.

The run here is untrained (a fresh Translator saved with a real tokenizer,
config and casing): the cache must give exactly what `translate_texts` gives
whatever the weights, and an untrained model decodes to `max_length`, which
exercises the longest loops.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from seq2seq.data.generated import generate_pairs
from seq2seq.runs import config_io, decode_cache
from seq2seq.runs.config import RunConfig

SOURCES = [pair.source for pair in generate_pairs("copy", 200, seed=0)]
WORDS = sorted({word for source in SOURCES for word in source.split()})
# A listed first word (casing), placeholders (the constrained search), an empty line, a long line cut
# at max_source_len, characters the tokenizer has never seen.
TEXTS = [f"{WORDS[0].title()} {WORDS[1]}", f"{WORDS[2]} %s {WORDS[3]} %d", "", " ".join(WORDS * 3),
         f"{WORDS[4]} été ½", SOURCES[0], f"{WORDS[5]} %1$s"]


def make_run(directory, *, seed=0, protect_placeholders=True):
    """An untrained run directory: config.toml, tokenizer.model, casing.json and model.keras.

    Without `protect_placeholders` the run has one search to trace (no constrained variant).
    """
    import keras

    from seq2seq.tokenizer import SentencePieceTokenizer, train_sentencepiece_from_sentences
    from seq2seq.runs.translation import build_translator

    directory.mkdir(parents=True, exist_ok=True)
    model = train_sentencepiece_from_sentences(SOURCES, directory, name="tokenizer", vocab_size=48,
                                               hard_vocab_limit=False)
    tokenizer = SentencePieceTokenizer.from_file(model)
    config = config_io.build(RunConfig, {
        "tokenizer": {"vocab_size": tokenizer.vocab_size},
        "batching": {"max_source_len": 6, "max_target_len": 8},
        "model": {"embed_dim": 8, "units": 8},
        "decode": {"beam_size": 2, "max_length": 10, "protect_placeholders": protect_placeholders},
    })
    (directory / "config.toml").write_text(config_io.to_toml(config))
    (directory / "casing.json").write_text(json.dumps({"lower_first_words": [WORDS[0].title()]}))
    keras.utils.set_random_seed(seed)
    translator = build_translator(config, tokenizer.vocab_size)
    if not translator.built:
        translator.build()
    translator.save(directory / "model.keras")
    return directory


def expected_translations(run_dir, texts, **options):
    from seq2seq.runs.translation import load_run, translate_texts

    return translate_texts(load_run(run_dir), texts, **options)


def entries(run_dir):
    return sorted(path.name for path in (run_dir / decode_cache.CACHE_DIR).iterdir())


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return make_run(tmp_path_factory.mktemp("cache") / "run")


@pytest.fixture(scope="module")
def expected(run_dir):
    """`translate_texts` of TEXTS in batches of 2 (a batch with placeholders and one without)."""
    return expected_translations(run_dir, TEXTS, batch_size=2)


def test_the_cache_translates_as_the_keras_model_does_when_made_and_when_loaded(run_dir, expected):
    made = decode_cache.cached_translator(run_dir)  # a miss: traces and saves
    assert not isinstance(made.functions[False], decode_cache._SavedFunction)
    assert made.translate(TEXTS, batch_size=2) == expected
    loaded = decode_cache.cached_translator(run_dir)  # a hit: the SavedModels
    assert isinstance(loaded.functions[False], decode_cache._SavedFunction)
    assert loaded.translate(TEXTS, batch_size=2) == expected
    assert loaded.translate(TEXTS[:1]) == expected[:1]  # a batch without placeholders: the free search only
    (entry,) = entries(run_dir)
    assert sorted(os.listdir(run_dir / decode_cache.CACHE_DIR / entry)) == ["constrained", "free", "key.json"]


def test_python_sentencepiece_encodes_and_decodes_as_the_tensorflow_text_tokenizer(run_dir):
    import tensorflow as tf

    from seq2seq.inference import source_ids
    from seq2seq.tokens import END_ID, PAD_ID, START_ID
    from seq2seq.runs.translation import load_run

    run = load_run(run_dir)
    cached = decode_cache.cached_translator(run_dir)
    for texts in (TEXTS, ["｟0｠ x ｟1｠"], [""]):
        np.testing.assert_array_equal(cached.source_ids(texts), source_ids(run.tokenizer, texts, cached.max_source_len).numpy())
    rng = np.random.default_rng(0)
    ids = rng.integers(0, run.tokenizer.vocab_size, size=(40, 9)).astype(np.int32)
    ids[::3, 4] = END_ID
    ids[1::4, 0] = START_ID
    ids[2::5, 2:] = PAD_ID
    expected = [text.decode("utf-8") for text in run.tokenizer.detokenize(tf.constant(ids)).numpy()]
    assert cached.detokenize(ids) == expected


def test_other_options_get_their_own_entry_and_new_weights_replace_the_old_ones(tmp_path):
    run_dir = make_run(tmp_path / "run", protect_placeholders=False)
    decode_cache.cached_translator(run_dir)
    greedy = decode_cache.cached_translator(run_dir, beam_size=1, max_length=5)
    assert len(entries(run_dir)) == 2
    assert greedy.translate(TEXTS) == expected_translations(run_dir, TEXTS, beam_size=1, max_length=5)
    assert sorted(os.listdir(run_dir / decode_cache.CACHE_DIR / entries(run_dir)[0])) == ["free", "key.json"]
    make_run(run_dir, seed=1, protect_placeholders=False)  # retrained: other weights in model.keras
    before = entries(run_dir)
    retrained = decode_cache.cached_translator(run_dir)
    assert not isinstance(retrained.functions[False], decode_cache._SavedFunction)  # not the old graph
    after = entries(run_dir)
    assert len(after) == 1 and after[0] not in before  # both entries of the old weights removed
    (run_dir / decode_cache.CACHE_DIR / after[0] / "free" / "saved_model.pb").unlink()
    remade = decode_cache.cached_translator(run_dir)  # a damaged entry is made again
    assert not isinstance(remade.functions[False], decode_cache._SavedFunction)
    assert entries(run_dir) == after and decode_cache._complete(run_dir / decode_cache.CACHE_DIR / after[0])


def test_a_run_directory_that_cannot_hold_the_cache_is_translated_without_it(tmp_path):
    run_dir = make_run(tmp_path / "run", protect_placeholders=False)
    (run_dir / decode_cache.CACHE_DIR).write_text("not a directory")
    notes = []
    translator = decode_cache.cached_translator(run_dir, log=notes.append)
    assert len(notes) == 1 and notes[0].startswith(f"note: could not save the decoding graph in {run_dir}")
    assert translator.translate(TEXTS) == expected_translations(run_dir, TEXTS)


def test_a_cached_translate_starts_without_keras_tensorflow_text_or_jax(run_dir, expected):
    """The CLI's start-up path on a hit: outputs as `translate_texts`, and none of the heavy imports."""
    decode_cache.cached_translator(run_dir)  # make sure the entry is there
    script = (
        "import sys\n"
        "from seq2seq.cli.main import main\n"
        f"code = main(['translate', '--model', {str(run_dir)!r}, '--batch-size', '2'])\n"
        "print(sorted(m for m in ('keras', 'tensorflow_text', 'jax') if m in sys.modules), file=sys.stderr)\n"
        "import keras\n"  # deferred, not broken
        "sys.exit(code)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], input="\n".join(TEXTS) + "\n", capture_output=True,
                            text=True, timeout=240)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[:-1] == expected
    assert result.stderr.strip().splitlines()[-1] == "[]"


def test_the_cache_key_follows_the_run_files_and_the_options(tmp_path):
    for name in ("config.toml", "tokenizer.model", "model.keras", "casing.json"):
        (tmp_path / name).write_bytes(b"a")
    options = {"beam_size": 2}
    key = decode_cache.cache_key(tmp_path, options)
    assert decode_cache.cache_key(tmp_path, dict(options)) == key
    assert decode_cache.cache_key(tmp_path, {"beam_size": 1}) != key
    (tmp_path / "casing.json").write_bytes(b"b")
    assert decode_cache.cache_key(tmp_path, options) != key


def test_a_run_in_memory_writes_the_entry_the_next_translate_loads(tmp_path):
    from seq2seq.runs.translation import load_run

    run_dir = make_run(tmp_path / "run")
    made = decode_cache.write_cache(load_run(run_dir))
    expected = expected_translations(run_dir, TEXTS)
    assert made.translate(TEXTS) == expected
    (entry,) = entries(run_dir)
    assert decode_cache.cached_translator(run_dir).translate(TEXTS) == expected
    assert decode_cache.write_cache(load_run(run_dir)).translate(TEXTS) == expected  # loaded, not made again
    assert entries(run_dir) == [entry]
