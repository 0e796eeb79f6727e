"""What to generate: the category mix (the curated set's balance), one job per record, few-shot examples.

The plan is deterministic for a seed and counts what the output already holds, so a resumed run
fills the categories that are short instead of starting the mix over.
"""
from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from pushback.paths import curated_files
from pushback.records import CATEGORIES, Record, read_records


@dataclass(frozen=True)
class Job:
    index: int  # position in the output it aims for (continues after existing records); seeds derive from it
    category: str
    topic: str
    twin: bool  # also write a benign look-alike (a second record)

    @property
    def slots(self) -> int:
        return 2 if self.twin else 1

    @property
    def categories(self) -> list[str]:
        """The categories of the records this job delivers, in the order they are written."""
        return [self.category, "benign"] if self.twin else [self.category]


def read_curated(paths: Iterable[str | Path] | None = None) -> list[Record]:
    """The valid curated records (a line being edited elsewhere is skipped, not fatal)."""
    records: list[Record] = []
    for path in curated_files() if paths is None else paths:
        records += read_records(path).records
    return records


def category_weights(curated: Sequence[Record], categories: Sequence[str] | None = None) -> dict[str, float]:
    """Shares of each category as in the curated set (uniform if it is empty).

    By default a category the curated set lacks gets no share; one named in `categories` always gets
    one (the average share, if the curated set has none of it).
    """
    chosen = list(dict.fromkeys(categories or CATEGORIES))
    unknown = sorted(set(chosen) - set(CATEGORIES))
    if unknown:
        raise ValueError(f"--categories: unknown {', '.join(unknown)}; choose from {', '.join(CATEGORIES)}")
    counts = Counter(r.category for r in curated if r.category in chosen)
    if not counts:
        return {c: 1 / len(chosen) for c in chosen}
    if categories:
        average = sum(counts.values()) / len(counts)
        counts.update({c: average for c in chosen if not counts[c]})
    total = sum(counts.values())
    return {c: counts[c] / total for c in chosen if counts[c]}


def allocate(n: int, weights: dict[str, float]) -> Counter[str]:
    """Split `n` by weight with largest remainders: exact counts that sum to `n`."""
    total = sum(weights.values())
    if n <= 0 or total <= 0:
        return Counter()
    exact = {c: n * w / total for c, w in weights.items()}
    counts = Counter({c: int(x) for c, x in exact.items()})
    for c in sorted(exact, key=lambda c: (counts[c] - exact[c], c))[: n - sum(counts.values())]:
        counts[c] += 1
    return counts


def plan_jobs(n: int, existing: Counter[str], weights: dict[str, float], *, topics: Sequence[str],
              twins: bool = False, seed: int = 0) -> list[Job]:
    """Jobs that bring the output to exactly `n` records, filling the categories furthest below their share.

    With `twins`, a friction job also writes its benign look-alike and so fills two slots.
    """
    start = sum(existing.values())
    remaining = n - start
    if remaining <= 0:
        return []
    target = allocate(n, weights)
    short = {c: max(0, target[c] - existing[c]) for c in weights}
    counts = allocate(remaining, short if sum(short.values()) else weights)
    rng = random.Random(f"{seed}:{n}:{sorted(existing.items())}")
    order = [c for c in sorted(counts) for _ in range(counts[c])]
    rng.shuffle(order)
    shuffled_topics = list(topics) or ["everyday life"]
    rng.shuffle(shuffled_topics)
    jobs: list[Job] = []
    for category in order:
        if remaining <= 0:
            break
        pair = twins and category != "benign" and remaining >= 2
        jobs.append(Job(start + len(jobs), category, shuffled_topics[len(jobs) % len(shuffled_topics)], pair))
        remaining -= 2 if pair else 1
    return jobs


class Examples:
    """Curated records as few-shot material, per category."""

    def __init__(self, curated: Sequence[Record], k: int = 2):
        self.k = k
        self.by_category: dict[str, list[Record]] = {}
        for record in curated:
            self.by_category.setdefault(record.category, []).append(record)

    def prompts(self, category: str, rng: random.Random) -> str:
        pool = self.by_category.get(category, [])
        if not pool or self.k <= 0:
            return "(none given)"
        chosen = rng.sample(pool, min(self.k, len(pool)))
        return "\n".join(f"- {' '.join(r.user_input.split())}" for r in chosen)

    def answer(self, category: str, rng: random.Random) -> str:
        pool = self.by_category.get(category, [])
        if not pool or self.k <= 0:
            return "(none given)"
        return rng.choice(pool).final_answer
