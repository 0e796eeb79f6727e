"""The curated seed set keeps its promises: valid, balanced, twinned, varied, and disjoint from
the public evaluation prompts it will be measured on."""
from __future__ import annotations

import re
from collections import Counter, defaultdict

import pytest

from pushback.files import iter_jsonl
from pushback.paths import SUITES_DIR, curated_files
from pushback.records import PERSONAS, normalise, read_collection

NEAR_DUPLICATE = 0.6


@pytest.fixture(scope="module")
def records():
    found, problems = read_collection(curated_files())
    assert not problems, "\n".join(map(str, problems[:20]))
    return found


def trigrams(text: str) -> frozenset:
    words = re.findall(r"[a-z0-9']+", normalise(text))
    return frozenset(zip(words, words[1:], words[2:])) or frozenset([tuple(words)])


def jaccard(a: frozenset, b: frozenset) -> float:
    return len(a & b) / len(a | b)


def similar_pairs(left: list[frozenset], right: list[frozenset] | None = None):
    """Pairs (i, j, score) at or above the threshold; an inverted index keeps it fast."""
    right_side = left if right is None else right
    index = defaultdict(set)
    for j, grams in enumerate(right_side):
        for gram in grams:
            index[gram].add(j)
    for i, grams in enumerate(left):
        candidates = set().union(*(index[g] for g in grams))
        for j in candidates:
            if right is None and j <= i:
                continue
            score = jaccard(grams, right_side[j])
            if score >= NEAR_DUPLICATE:
                yield i, j, score


def eval_prompts() -> list[str]:
    """XSTest and CoCoNot prompts as vendored in data/suites (the suites `pushback eval` runs)."""
    files = [SUITES_DIR / name for name in ("xstest.jsonl", "coconot_original.jsonl", "coconot_contrast.jsonl")]
    missing = [str(f) for f in files if not f.exists()]
    assert not missing, f"vendored suites missing: {missing}"
    return [row["prompt"] for path in files for row in iter_jsonl(path)]


def test_size_and_balance(records):
    n = len(records)
    assert n >= 600
    share = {c: k / n for c, k in Counter(r.category for r in records).items()}
    assert set(share) == {"false_premise", "harmful", "risky", "ambiguous", "sycophancy", "benign"}
    assert all(s >= 0.12 for s in share.values()), share
    assert share["benign"] >= 0.20, share


def test_benign_twins(records):
    by_id = {r.id: r for r in records}
    twinned = {r.metadata.twin_of for r in records if r.metadata.twin_of}
    assert all(by_id[t].category != "benign" for t in twinned)
    assert all(r.category == "benign" for r in records if r.metadata.twin_of)
    assert len(twinned) >= 100


def test_personas_and_provenance(records):
    order = {p: i for i, p in enumerate(PERSONAS)}
    for r in records:
        kinds = [a.agent_type for a in r.agents]
        assert 3 <= len(kinds) <= 6, r.id
        assert kinds == sorted(kinds, key=order.get), f"{r.id}: personas out of relay order {kinds}"
        assert r.metadata.source == "curated" and r.metadata.topic
    assert len({r.metadata.topic for r in records}) >= 15


def test_no_exact_or_near_duplicates(records):
    grams = [trigrams(r.user_input) for r in records]
    twins = {frozenset((r.id, r.metadata.twin_of)) for r in records if r.metadata.twin_of}
    clashes = [(records[i].user_input, records[j].user_input, round(s, 2)) for i, j, s in similar_pairs(grams)
               if frozenset((records[i].id, records[j].id)) not in twins]
    assert not clashes, clashes[:10]
    assert len({normalise(r.final_answer) for r in records}) == len(records)


def test_no_overlap_with_evaluation_prompts(records):
    prompts = eval_prompts()
    assert len(prompts) > 1500
    exact = {normalise(p) for p in prompts} & {normalise(r.user_input) for r in records}
    assert not exact
    clashes = [(records[i].user_input, prompts[j]) for i, j, _ in
               similar_pairs([trigrams(r.user_input) for r in records], [trigrams(p) for p in prompts])]
    assert not clashes, clashes[:10]


def test_the_pairs_are_distinct_answers(records):
    """The eager baseline is not the friction answer (except benign, where both just help)."""
    for r in records:
        if r.category != "benign":
            assert normalise(r.baseline_answer) != normalise(r.final_answer), r.id
