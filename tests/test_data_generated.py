import pytest

from seq2seq.data import generated
from seq2seq.data.generated import TASKS, generate_labeled, generate_pairs, generate_sentences
from seq2seq.data.reader import Pair


@pytest.mark.parametrize("task", sorted(TASKS))
def test_same_seed_same_pairs_other_seed_other_pairs(task):
    assert generate_pairs(task, 20, seed=1) == generate_pairs(task, 20, seed=1)
    assert generate_pairs(task, 20, seed=1) != generate_pairs(task, 20, seed=2)


def test_pairs_are_stable_across_runs_and_machines():
    # A regression pin: the generator must not depend on hash() salt or platform.
    assert generate_pairs("reverse", 2, seed=0) == [
        Pair("bavi lovi des des nes nen rita", "rita nen nes des des lovi bavi"),
        Pair("muta povi devi", "devi povi muta"),
    ]


@pytest.mark.parametrize(
    "task, source, target",
    [
        ("copy", "ban kis mun", "ban kis mun"),
        ("reverse", "ban kis mun", "mun kis ban"),
        ("sort", "mun ban kis", "ban kis mun"),
        ("dedup", "kis ban kis kis mun ban", "kis ban mun"),
        ("translate", "ban bas", "zul zum"),
    ],
)
def test_each_task_maps_source_to_target(task, source, target):
    assert " ".join(TASKS[task](source.split())) == target


@pytest.mark.parametrize("task", sorted(TASKS))
def test_generated_pairs_follow_their_task_and_length_bounds(task):
    for pair in generate_pairs(task, 50, seed=3, min_words=2, max_words=5):
        words = pair.source.split()
        assert 2 <= len(words) <= 5
        assert pair.target.split() == TASKS[task](words)


def test_dedup_targets_vary_in_length_independently_of_sources():
    pairs = generate_pairs("dedup", 200, seed=0, min_words=8, max_words=8)
    assert len({len(pair.target.split()) for pair in pairs}) >= 4


def test_labeled_task_has_keyword_decoy_and_mask():
    examples = generate_labeled(100, seed=0)
    assert examples == generate_labeled(100, seed=0)
    for example in examples:
        words = example.text.split()
        keywords = generated.POSITIVE_WORDS if example.label == "pos" else generated.NEGATIVE_WORDS
        assert any(word in keywords for word in words)
        assert words[0] == generated.DECOY_WORDS[example.label]
        assert example.mask == (0,) + (1,) * (len(words) - 1)
    assert {example.label for example in examples} == {"pos", "neg"}


def test_decoy_agreement_one_half_breaks_the_shortcut():
    examples = generate_labeled(400, seed=0, decoy_agreement=0.5)
    agree = sum(example.text.split()[0] == generated.DECOY_WORDS[example.label] for example in examples)
    assert 150 < agree < 250


def test_sentences_cover_every_generated_word():
    sentences = generate_sentences(2000, seed=0)
    assert sentences == generate_sentences(2000, seed=0)
    seen = {word for sentence in sentences for word in sentence.split()}
    everything = [p.source + " " + p.target for task in TASKS for p in generate_pairs(task, 50, seed=0)]
    everything += [example.text for example in generate_labeled(50, seed=0)]
    assert {word for text in everything for word in text.split()} <= seen


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: generate_pairs("shuffle", 3, seed=0), "task='shuffle'"),
        (lambda: generate_pairs("copy", -1, seed=0), "n=-1"),
        (lambda: generate_pairs("copy", 3, seed=0, min_words=5, max_words=2), "min_words=5, max_words=2"),
        (lambda: generate_labeled(3, seed=0, decoy_agreement=1.5), "decoy_agreement=1.5"),
        (lambda: generate_sentences(3, seed=0, min_words=0), "min_words=0"),
    ],
)
def test_bad_arguments_name_the_value(call, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        call()
