import random

import pytest

from seq2seq.data.reader import Pair
from seq2seq.data.split import Split, split_pairs

PAIRS = [Pair(f"source {i}", f"target {i}") for i in range(1000)]


def as_sets(split: Split):
    return set(split.train), set(split.valid), set(split.test)


def test_split_is_disjoint_and_covers_every_item():
    split = split_pairs(PAIRS, seed=0)
    train, valid, test = as_sets(split)
    assert not (train & valid or train & test or valid & test)
    assert train | valid | test == set(PAIRS)
    assert (len(split.train), len(split.valid), len(split.test)) == (900, 50, 50)


def test_same_seed_same_split_other_seed_other_split():
    assert split_pairs(PAIRS, seed=7) == split_pairs(PAIRS, seed=7)
    assert split_pairs(PAIRS, seed=7).test != split_pairs(PAIRS, seed=8).test


def test_split_depends_on_content_not_on_order_or_object_identity():
    shuffled = [Pair(p.source, p.target) for p in PAIRS]  # equal values, new objects
    random.Random(0).shuffle(shuffled)
    assert as_sets(split_pairs(shuffled, seed=3)) == as_sets(split_pairs(PAIRS, seed=3))


def test_items_keep_their_input_order_within_each_split():
    split = split_pairs(PAIRS, seed=0)
    for part in (split.train, split.valid, split.test):
        assert part == sorted(part, key=PAIRS.index)


def test_duplicates_stay_in_one_split():
    items = PAIRS[:100] + PAIRS[:100]
    train, valid, test = as_sets(split_pairs(items, seed=0, valid_fraction=0.2, test_fraction=0.2))
    assert not (train & valid or train & test or valid & test)


def test_growing_the_corpus_keeps_most_of_the_test_split():
    small = set(split_pairs(PAIRS[:900], seed=0).test)
    large = set(split_pairs(PAIRS, seed=0).test)
    assert len(small & large) >= 0.8 * len(small)


def test_tiny_corpora_get_one_item_per_evaluation_split():
    split = split_pairs(["a", "b", "c"], seed=0)
    assert (len(split.train), len(split.valid), len(split.test)) == (1, 1, 1)
    assert split_pairs([], seed=0) == Split([], [], [])
    assert split_pairs(["a", "b"], seed=0, valid_fraction=0, test_fraction=0.5).valid == []


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"valid_fraction": -0.1}, "valid_fraction=-0.1"),
        ({"test_fraction": 1.0}, "test_fraction=1.0"),
        ({"valid_fraction": 0.6, "test_fraction": 0.5}, "valid_fraction=0.6, test_fraction=0.5"),
    ],
)
def test_bad_fractions_name_the_value(kwargs, message):
    with pytest.raises(ValueError, match=message):
        split_pairs(PAIRS, seed=0, **kwargs)


def test_too_few_items_for_the_fractions_is_refused():
    with pytest.raises(ValueError, match="leaves training data"):
        split_pairs(["a", "b"], seed=0)


def test_items_identified_by_address_are_refused():
    with pytest.raises(ValueError, match="object address"):
        split_pairs([object() for _ in range(10)], seed=0)
    objects = [object() for _ in range(20)]
    names = {id(item): str(number) for number, item in enumerate(objects)}
    split = split_pairs(objects, seed=0, key=lambda item: names[id(item)])
    assert (len(split.train), len(split.valid), len(split.test)) == (18, 1, 1)
