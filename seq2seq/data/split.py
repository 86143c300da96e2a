"""Deterministic train/validation/test splits.

`split_pairs` decides where an item goes from its content and the seed alone:
each item gets a key `blake2b(seed, key(item))`, the distinct keys are sorted,
and the first keys fill the test split, the next the validation split, the
rest training. Consequences:

- the same items and seed give the same split on every machine and run (no
  `hash()` salt, no object ids), whatever the order of the input list;
- identical items always land in the same split, so duplicates cannot leak
  from training into evaluation;
- adding items to a corpus moves few existing items between splits.

Within each split the items keep their input order.
"""

import hashlib
from dataclasses import dataclass
from typing import Callable, Generic, Sequence, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Split(Generic[T]):
    """Three disjoint parts of a corpus."""

    train: list[T]
    valid: list[T]
    test: list[T]


def split_pairs(items: Sequence[T], *, seed: int, valid_fraction: float = 0.05, test_fraction: float = 0.05,
                key: Callable[[T], str] = repr) -> Split[T]:
    """Splits items into train, valid and test, deterministically from the seed.

    Args:
        items: the corpus (`Pair`, `LabeledText`, strings, tuples: anything whose
            `key` depends on its content only).
        seed: the same seed gives the same split.
        valid_fraction, test_fraction: the share of items for each evaluation
            split; each non-zero fraction gets at least one item. Identical
            items stay together, so the sizes can exceed the share slightly.
        key: the content an item is identified by (default `repr`).
    Returns:
        `Split(train, valid, test)`, disjoint, covering every item once.
    Raises:
        ValueError: on fractions outside [0, 1), fractions leaving no training
            data, or items whose key shows an object address.
    """
    _check_fractions(valid_fraction, test_fraction)
    groups = _groups_by_key(items, seed, key)
    test_size, valid_size = _sizes(len(items), valid_fraction, test_fraction)
    assignment = [""] * len(items)
    filled = {"test": 0, "valid": 0}
    for _, indices in sorted(groups.items()):
        part = "test" if filled["test"] < test_size else "valid" if filled["valid"] < valid_size else "train"
        filled[part] = filled.get(part, 0) + len(indices)
        for index in indices:
            assignment[index] = part
    parts = {
        name: [item for item, part in zip(items, assignment) if part == name] for name in ("train", "valid", "test")
    }
    if items and not parts["train"]:
        raise ValueError(
            f"Expected a split that leaves training data. Received: {len(items)} items with "
            f"valid_fraction={valid_fraction!r}, test_fraction={test_fraction!r}; use more items or smaller fractions."
        )
    return Split(**parts)


def _check_fractions(valid_fraction: float, test_fraction: float) -> None:
    for name, value in (("valid_fraction", valid_fraction), ("test_fraction", test_fraction)):
        if not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
            raise ValueError(f"Expected {name} in [0, 1). Received: {name}={value!r}")
    if valid_fraction + test_fraction >= 1.0:
        raise ValueError(
            "Expected valid_fraction + test_fraction < 1, leaving training data. "
            f"Received: valid_fraction={valid_fraction!r}, test_fraction={test_fraction!r}"
        )


def _sizes(count: int, valid_fraction: float, test_fraction: float) -> tuple[int, int]:
    """Target sizes of (test, valid): rounded shares, at least 1 for a non-zero fraction."""

    def size(fraction: float) -> int:
        return 0 if fraction == 0 or count == 0 else max(1, round(count * fraction))

    return size(test_fraction), size(valid_fraction)


def _groups_by_key(items: Sequence[T], seed: int, key: Callable[[T], str]) -> dict[bytes, list[int]]:
    """Seeded content digest -> indices of the items with that content."""
    groups: dict[bytes, list[int]] = {}
    for index, item in enumerate(items):
        content = key(item)
        if " object at 0x" in content:
            raise ValueError(
                "Expected items identified by their content; their key shows an object address, "
                f"which changes every run. Received: {content[:80]!r}. Pass key= or use Pair/LabeledText/str."
            )
        digest = hashlib.blake2b(f"{seed}\0{content}".encode("utf-8"), digest_size=16).digest()
        groups.setdefault(digest, []).append(index)
    return groups
