"""Exported SavedModels load and serve in a fresh process that never imports the kit.

One module-scoped fixture trains a tiny SentencePiece model, exports an
untrained tiny translator (beam search) and classifier, and loads both in a
single subprocess (each TensorFlow import costs seconds) whose `seq2seq`
import is blocked; it also calls the translator with call-time options and its
n-best signature. Its outputs must equal the in-process ones.
"""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

from seq2seq.casing import FirstWordCasing
from seq2seq.data.generated import generate_sentences
from seq2seq.data.pipeline import encode_sources
from seq2seq.errors import UserError
from seq2seq.export import export_classifier, export_translator
from seq2seq.decoding import Sampling
from seq2seq.inference import length_sorted_batches, translate_batches, translate_n_best
from seq2seq.models.classifier import Classifier
from seq2seq.models.translator import Translator
from seq2seq.placeholders import find_placeholders, placeholder_rate, protect
from seq2seq.tokenizer import SentencePieceTokenizer, train_sentencepiece_from_sentences

DECODING = dict(max_source_len=12, beam_size=2, max_length=10, length_penalty=0.6)
LABELS = ["neg", "pos", "neutral"]
MAX_LEN = 12
BAD_AT = 3  # where the load script inserts a string that is not UTF-8
# Sources with placeholders (within max_source_len pieces): protected, decoded with the constraint
# and restored in the graph.
PLACEHOLDER_TEXTS = ["%1$s of %2$d", "100%% {name:>8}", "<a href=\"x\">b</a> ${HOME}", "%-10.3lf, 50% of"]

# Runs in the fresh process: only tensorflow and tensorflow_text, `seq2seq` unimportable.
_LOAD_SCRIPT = textwrap.dedent("""
    import json, sys
    import numpy as np
    sys.modules["seq2seq"] = None  # any `import seq2seq` now raises ImportError
    import tensorflow as tf
    import tensorflow_text  # noqa: F401  (registers the SentencePiece ops)

    translator_dir, classifier_dir, texts = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    # The same batch with one string that is not UTF-8 (0xe9 is Latin-1 "é") inserted at BAD_AT.
    mixed = [text.encode() for text in texts]
    mixed.insert(BAD_AT, b"caf\\xe9 " + mixed[0])
    loaded = tf.saved_model.load(translator_dir)
    translate = loaded.signatures["serving_default"]
    classify = tf.saved_model.load(classifier_dir).signatures["serving_default"]
    texts = tf.constant(texts)
    translated, classified = translate(texts=texts), classify(texts=texts)

    def plain(outputs):
        return {k: np.char.decode(v.numpy().astype(bytes), "utf-8").tolist() if v.dtype == tf.string else v.numpy().tolist()
                for k, v in outputs.items()}

    print(json.dumps({
        "kit_modules": sorted(name for name, module in sys.modules.items()
                              if name.startswith("seq2seq") and module is not None),
        "translator": plain(translated),
        "classifier": plain(classified),
        "translator_mixed": plain(translate(texts=tf.constant(mixed))),
        "classifier_mixed": plain(classify(texts=tf.constant(mixed))),
        # Call-time options; the others keep the export's values.
        "greedy": plain(loaded.translate(texts, beam_size=1)),
        "short": plain(loaded.translate(texts, max_length=4)),
        "sampled": [plain(loaded.translate(texts, temperature=1.5, seed=seed)) for seed in (3, 3, 4)],
        "n_best": plain(loaded.signatures["translate_n_best"](
            texts=texts, beam_size=tf.constant(2), length_penalty=tf.constant(0.6), max_length=tf.constant(10),
            temperature=tf.constant(0.0), seed=tf.constant(0), n_best=tf.constant(2))),
        "n_best_default": plain(loaded.translate_n_best(texts)),
    }))
""").replace("BAD_AT", str(BAD_AT))


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    # Seed first: seeding clears TensorFlow's kernel cache, which holds the SentencePiece
    # resource of every tokenizer built before (tensorflow_text's kernel-owned resource).
    tf.random.set_seed(0)
    sentences = generate_sentences(300, seed=0)
    tokenizer = SentencePieceTokenizer.from_file(
        train_sentencepiece_from_sentences(sentences, root / "spm", vocab_size=60, num_threads=1))
    translator = Translator(tokenizer.vocab_size, embed_dim=8, units=8)
    classifier = Classifier(tokenizer.vocab_size, num_classes=len(LABELS), embed_dim=8, units=4)
    casing = FirstWordCasing.learn(sentences)  # lowers the capitalised first word below
    capitalised = sentences[6][:1].upper() + sentences[6][1:]
    assert capitalised.split(" ")[0] in casing.words
    texts = sentences[:6] + ["", "hiro", capitalised] + PLACEHOLDER_TEXTS  # an empty text and a one-piece text too
    # The order `translate_batches` decodes them in (protected), so both sides run the same batch.
    texts = [texts[i] for i in next(length_sorted_batches([protect(text).text for text in texts], len(texts)))]
    translator_dir = export_translator(translator, tokenizer, root / "translator", casing=casing, **DECODING)
    classifier_dir = export_classifier(classifier, tokenizer, root / "classifier", max_len=MAX_LEN,
                                       labels=LABELS)
    loaded = subprocess.run(
        [sys.executable, "-c", _LOAD_SCRIPT, str(translator_dir), str(classifier_dir),
         json.dumps(texts)],
        capture_output=True, text=True, timeout=300, cwd=root,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    assert loaded.returncode == 0, loaded.stderr[-3000:]
    return dict(tokenizer=tokenizer, translator=translator, classifier=classifier, texts=texts, casing=casing,
                root=root, loaded=json.loads(loaded.stdout.strip().splitlines()[-1]))


def test_fresh_process_never_imports_the_kit(setup):
    assert setup["loaded"]["kit_modules"] == []


def test_exported_translator_matches_in_process_translation(setup):
    expected = translate_batches(setup["translator"], setup["tokenizer"], setup["texts"],
                                 batch_size=len(setup["texts"]), casing=setup["casing"], **DECODING)
    served = setup["loaded"]["translator"]
    assert served["translations"] == expected
    assert len(served["scores"]) == len(setup["texts"])
    assert np.array(served["token_ids"]).shape == (len(setup["texts"]), DECODING["max_length"])


def in_process(setup, **options):
    return translate_batches(setup["translator"], setup["tokenizer"], setup["texts"], batch_size=len(setup["texts"]),
                             casing=setup["casing"], **{**DECODING, **options})


def test_exported_translator_takes_decoding_options_at_call_time(setup):
    loaded = setup["loaded"]
    assert loaded["greedy"]["translations"] == in_process(setup, beam_size=1)
    assert loaded["short"]["translations"] == in_process(setup, max_length=4)
    assert np.array(loaded["short"]["token_ids"]).shape == (len(setup["texts"]), 4)
    same, again, other = (sampled["translations"] for sampled in loaded["sampled"])
    assert same == again != other
    assert same == in_process(setup, beam_size=1, sampling=Sampling(temperature=1.5, seed=3))


def test_exported_translator_returns_n_best_with_scores(setup):
    served = setup["loaded"]["n_best"]
    expected = translate_n_best(setup["translator"], setup["tokenizer"], setup["texts"], n_best=2, with_scores=True,
                                batch_size=len(setup["texts"]), casing=setup["casing"], **DECODING)
    assert np.array(served["translations"]).shape == (len(setup["texts"]), 2)
    for row, result in enumerate(expected):
        hypotheses = result["hypotheses"]
        assert served["translations"][row][: len(hypotheses)] == [h["text"] for h in hypotheses]
        np.testing.assert_allclose(served["log_probs"][row][: len(hypotheses)], [h["log_prob"] for h in hypotheses],
                                   atol=1e-4)
        np.testing.assert_allclose(served["scores"][row][: len(hypotheses)], [h["score"] for h in hypotheses],
                                   atol=1e-4)
    # By default, as many hypotheses as the export's beam, the first of them serving_default's.
    default = setup["loaded"]["n_best_default"]
    assert [row[0] for row in default["translations"]] == setup["loaded"]["translator"]["translations"]
    assert np.array(default["scores"]).shape == (len(setup["texts"]), DECODING["beam_size"])


def test_exported_translator_restores_every_placeholder(setup):
    served = dict(zip(setup["texts"], setup["loaded"]["translator"]["translations"]))
    outputs = [served[text] for text in PLACEHOLDER_TEXTS]
    assert placeholder_rate(PLACEHOLDER_TEXTS, outputs) == (1.0, len(PLACEHOLDER_TEXTS)), outputs
    assert all(find_placeholders(output) for output in outputs)


def test_exported_classifier_matches_in_process_model(setup):
    ids = encode_sources(tf.constant(setup["texts"]), setup["tokenizer"], MAX_LEN).to_tensor()
    expected = setup["classifier"].predict_with_attention(ids.numpy())
    served = setup["loaded"]["classifier"]
    np.testing.assert_allclose(served["probabilities"], expected["probabilities"], atol=1e-5)
    np.testing.assert_allclose(served["attention"], expected["attention"], atol=1e-5)
    assert served["label"] == [LABELS[i] for i in expected["labels"]]
    pieces = np.array(served["pieces"])
    assert pieces.shape == ids.shape
    assert pieces[0, int(np.count_nonzero(ids[0])) - 1] == "</s>"  # the end token, then ""
    assert (pieces[ids.numpy() == 0] == "").all()


def test_a_string_that_is_not_utf8_gets_an_empty_output_and_leaves_its_batch_alone(setup):
    loaded = setup["loaded"]
    for kind, key in (("translator", "translations"), ("classifier", "label")):
        mixed = loaded[f"{kind}_mixed"][key]
        assert mixed[BAD_AT] == ""
        assert mixed[:BAD_AT] + mixed[BAD_AT + 1:] == loaded[kind][key]
    np.testing.assert_allclose(np.delete(loaded["classifier_mixed"]["probabilities"], BAD_AT, axis=0),
                               loaded["classifier"]["probabilities"], atol=1e-5)
    np.testing.assert_allclose(np.delete(loaded["translator_mixed"]["scores"], BAD_AT), loaded["translator"]["scores"],
                               atol=1e-5)


def test_refuses_a_non_empty_out_dir(setup, tmp_path):
    (tmp_path / "old.txt").write_text("keep me")
    with pytest.raises(UserError, match="not empty"):
        export_translator(setup["translator"], setup["tokenizer"], tmp_path, **DECODING)
    assert (tmp_path / "old.txt").read_text() == "keep me"


def test_refuses_bad_options(setup, tmp_path):
    with pytest.raises(UserError, match="beam_size must be an integer >= 1; received 0"):
        export_translator(setup["translator"], setup["tokenizer"], tmp_path / "a",
                          **{**DECODING, "beam_size": 0})
    with pytest.raises(UserError, match="vocabulary"):
        export_translator(Translator(setup["tokenizer"].vocab_size + 1, embed_dim=4, units=4),
                          setup["tokenizer"], tmp_path / "a", **DECODING)
    with pytest.raises(UserError, match="3 classes"):
        export_classifier(setup["classifier"], setup["tokenizer"], tmp_path / "b", max_len=MAX_LEN,
                          labels=["neg", "pos"])
    assert not any(tmp_path.iterdir())
