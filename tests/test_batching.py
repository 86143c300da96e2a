import numpy as np
import pytest

from seq2seq.data.batching import BatchingConfig, bucket_ids, model_lengths, real_token_fraction


def test_boundaries_end_at_the_longest_side():
    config = BatchingConfig(max_source_len=20, max_target_len=30, bucket_lengths=(8, 16, 32, 64))
    assert config.boundaries == (8, 16, 30)
    assert config.padded_shapes() == [(8, 8), (16, 16), (20, 30)]


def test_batch_size_follows_the_token_budget():
    config = BatchingConfig(tokens_per_batch=100)
    assert config.batch_size(8) == 12
    assert config.batch_size(500) == 1


def test_model_lengths_add_the_special_token_and_truncate():
    np.testing.assert_array_equal(model_lengths([0, 3, 9, 50], max_len=10), [1, 4, 10, 10])


def test_bucket_is_the_smallest_that_holds_the_length():
    config = BatchingConfig(max_source_len=16, max_target_len=16, bucket_lengths=(4, 8))
    np.testing.assert_array_equal(bucket_ids([1, 4, 5, 8, 9, 16], config), [0, 0, 1, 1, 2, 2])


def test_real_token_fraction_by_hand():
    config = BatchingConfig(max_source_len=8, max_target_len=8, bucket_lengths=(4, 8))
    # Pair 1: source 3+1=4, target 1+1=2 -> bucket 4, slots 4+4, real 6.
    # Pair 2: source 4+1=5, target 10 -> 8 (truncated) -> bucket 8, slots 16, real 13.
    assert real_token_fraction([3, 4], [1, 10], config) == pytest.approx(19 / 24)


def test_real_token_fraction_single_sequence():
    config = BatchingConfig(max_source_len=8, max_target_len=8, bucket_lengths=(4, 8))
    assert real_token_fraction([3, 5], None, config) == pytest.approx((4 + 6) / (4 + 8))


def test_real_token_fraction_of_nothing_is_one():
    assert real_token_fraction([], [], BatchingConfig()) == 1.0


def test_mismatched_lengths_are_refused():
    with pytest.raises(ValueError, match="2 target and 1 source"):
        real_token_fraction([1], [1, 2], BatchingConfig())


@pytest.mark.parametrize(
    "kwargs, word",
    [
        ({"max_source_len": 1}, "max_source_len=1"),
        ({"max_target_len": -1}, "max_target_len=-1"),
        ({"tokens_per_batch": 0}, "tokens_per_batch=0"),
        ({"bucket_lengths": (16, 8)}, "bucket_lengths=(16, 8)"),
        ({"bucket_lengths": ()}, "bucket_lengths=()"),
    ],
)
def test_bad_config_names_the_value(kwargs, word):
    with pytest.raises(ValueError, match=word.replace("(", r"\(").replace(")", r"\)")):
        BatchingConfig(**kwargs)


def test_a_length_left_at_0_is_refused_until_chosen_from_the_data():
    config = BatchingConfig(max_target_len=0)  # 0: `seq2seq train` chooses it from the data
    with pytest.raises(ValueError, match="max_target_len=0"):
        config.check_resolved()
    BatchingConfig().check_resolved()
