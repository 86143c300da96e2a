"""Attention pictures show the translations `seq2seq translate` prints, with readable labels."""

import numpy as np
import pytest

from seq2seq.attention_plot import (
    Alignment,
    draw_attention_heatmaps,
    panel_title,
    piece_label,
    save_attention_heatmaps,
)
from seq2seq.runs.config import DataConfig, DecodeConfig, ModelConfig, RunConfig, TokenizerConfig, TrainingConfig

# Beam search (2) as the recipe's full run decodes, and first-word casing on (the default).
TINY = RunConfig(
    data=DataConfig(corpus="generated", task="copy", generated_pairs=400),
    tokenizer=TokenizerConfig(vocab_size=40),
    model=ModelConfig(embed_dim=16, units=16),
    train=TrainingConfig(epochs=1),
    decode=DecodeConfig(beam_size=2, max_length=12),
)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    from seq2seq.runs.translation import load_run, train_run

    out = tmp_path_factory.mktemp("attention") / "run"
    train_run(TINY, out, progress=False, log=lambda message: None)
    return load_run(out)


@pytest.fixture(scope="module")
def sources(run):
    # The copy task's words are lowercase, so their title forms are in the casing list: the
    # first source is read with its first word lowered, the others as they are.
    word = run.casing.words[0]
    return [f"{word} {word.lower()} {word.lower()}", "bata", f"{word.lower()} {word.lower()}"]


@pytest.fixture(scope="module")
def alignments(run, sources):
    from seq2seq.runs.translation import attention_alignments

    return attention_alignments(run, sources)


def test_the_outputs_are_the_translations_translate_prints(run, sources, alignments):
    from seq2seq.runs.translation import translate_texts

    assert [a.source for a in alignments] == sources
    assert [a.output for a in alignments] == translate_texts(run, sources)


def test_the_source_pieces_are_what_the_model_read_after_casing(run, sources, alignments):
    word = run.casing.words[0]
    first_read = "".join(alignments[0].source_pieces[:-1]).replace("\u2581", " ").strip()
    assert first_read == sources[0].replace(word, word.lower(), 1)
    assert all(a.source_pieces[-1] == "</s>" for a in alignments)


def test_the_output_pieces_spell_the_output_and_weights_are_distributions(alignments):
    for alignment in alignments:
        written = "".join(p for p in alignment.output_pieces if p != "</s>").replace("\u2581", " ").strip()
        assert written[:1].lower() + written[1:] == alignment.output[:1].lower() + alignment.output[1:]
        assert alignment.weights.shape == (len(alignment.output_pieces), len(alignment.source_pieces))
        np.testing.assert_allclose(alignment.weights.sum(axis=1), 1.0, atol=1e-4)


def test_each_panel_is_titled_with_its_translation_and_has_a_colour_bar(run, sources, alignments):
    from seq2seq.runs.translation import translate_texts

    figure = draw_attention_heatmaps(alignments)
    panels = [axis for axis in figure.axes if axis.get_title(loc="left")]
    colour_bars = [axis for axis in figure.axes if axis.get_ylabel() == "attention weight"]
    assert len(panels) == len(colour_bars) == len(sources)
    for axis, source, output in zip(panels, sources, translate_texts(run, sources)):
        assert axis.get_title(loc="left").replace("\n", " ") == f"{source}  \u2192  {output or '(empty)'}"
        labels = axis.get_xticklabels()
        assert all(label.get_rotation() == 55 for label in labels)
        assert not any("\u2581" in label.get_text() for label in labels + axis.get_yticklabels())


def test_save_writes_a_png(alignments, tmp_path):
    path = save_attention_heatmaps(alignments, tmp_path / "attention.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("piece, label", [
    ("\u2581file", "file"), ("en", "\u00b7en"), ("\u2581", "\u2423"), ("</s>", "</s>"), ("<unk>", "<unk>"),
])
def test_piece_labels_read_as_words(piece, label):
    assert piece_label(piece) == label


def test_an_empty_translation_is_titled_as_such_and_long_titles_wrap():
    empty = Alignment("Open", "", ["\u2581open", "</s>"], ["</s>"], np.ones([1, 2]) / 2)
    assert panel_title(empty) == "Open  \u2192  (empty)"
    long = empty._replace(source="word " * 30, output="mot " * 30)
    assert all(len(line) <= 80 for line in panel_title(long).split("\n")) and "\n" in panel_title(long)


def test_nothing_to_draw_is_refused():
    with pytest.raises(ValueError, match="at least one alignment"):
        draw_attention_heatmaps([])
