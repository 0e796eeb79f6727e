"""Train/test split stratified by category that keeps a record and its benign twin together.

A twin pair shares wording; splitting it would leak the test prompt into training."""
from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Sequence

from pushback.records import Record

# The project's one split: the dataset build, training, the pocket pair, evaluation and the Space's examples
# all draw the same test records, so none of them is ever trained on by another.
TEST_SIZE = 0.1
SEED = 0


def twin_groups(records: Sequence[Record]) -> list[list[Record]]:
    """Records joined by `metadata.twin_of` (a friction record and its benign look-alikes)."""
    by_id = {r.id: r for r in records}
    groups: dict[str, list[Record]] = defaultdict(list)
    for r in records:
        anchor = r.metadata.twin_of if r.metadata.twin_of in by_id else r.id
        groups[anchor].append(r)
    return [sorted(g, key=lambda r: r.metadata.twin_of is not None) for g in groups.values()]


def split_records(records: Sequence[Record], test_size: float = TEST_SIZE,
                  seed: int = SEED) -> tuple[list[Record], list[Record]]:
    """Deterministic split: per category, about `test_size` of records go to test, whole groups at a time."""
    if not 0 < test_size < 1:
        raise ValueError(f"test_size must be between 0 and 1, got {test_size}")
    rng = random.Random(seed)
    groups = twin_groups(records)
    rng.shuffle(groups)
    total = defaultdict(int)
    for r in records:
        total[r.category] += 1
    wanted = {c: round(n * test_size) for c, n in total.items()}
    if total and not any(wanted.values()):  # a small file still gets a non-empty test split
        wanted[max(total, key=total.get)] = 1
    taken: dict[str, int] = defaultdict(int)
    train: list[Record] = []
    test: list[Record] = []
    for group in groups:
        counts = defaultdict(int)
        for r in group:
            counts[r.category] += 1
        fits = all(taken[c] + n <= wanted[c] for c, n in counts.items())
        if fits and any(wanted[c] > taken[c] for c in counts):
            test.extend(group)
            for c, n in counts.items():
                taken[c] += n
        else:
            train.extend(group)
    order = {r.id: i for i, r in enumerate(records)}
    return sorted(train, key=lambda r: order[r.id]), sorted(test, key=lambda r: order[r.id])


def curated_split() -> tuple[list[Record], list[Record]]:
    """(train, test) of the curated set in `data/curated/`, as every stage draws it."""
    from pushback.paths import curated_files
    from pushback.records import load_records

    return split_records(load_records(curated_files()))
