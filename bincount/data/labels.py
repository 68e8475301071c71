"""The label mapping: object counts 1..5 <-> class indices 0..4."""

from __future__ import annotations

COUNTS: tuple[int, ...] = (1, 2, 3, 4, 5)
NUM_CLASSES = len(COUNTS)


def count_to_index(count: int) -> int:
    """Class index of an object count (1 -> 0 ... 5 -> 4)."""
    if count not in COUNTS:
        raise ValueError(f"object count must be one of {COUNTS}, got {count!r}")
    return count - COUNTS[0]


def index_to_count(index: int) -> int:
    """Object count of a class index (0 -> 1 ... 4 -> 5)."""
    if not 0 <= index < NUM_CLASSES:
        raise ValueError(f"class index must be in 0..{NUM_CLASSES - 1}, got {index!r}")
    return COUNTS[index]
