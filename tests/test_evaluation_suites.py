"""Vendored suites and the curated test split: counts, tags, licences, stratified limits."""
from __future__ import annotations

from collections import Counter

import pytest

from evaluation.suites import SuiteError, load_suite, stratified, suite_names
from pushback.paths import SUITES_DIR
from pushback.records import BEHAVIOURS


def test_vendored_suites_are_complete_and_tagged():
    original, contrast, xstest = load_suite("coconot_original"), load_suite("coconot_contrast"), load_suite("xstest")
    assert (len(original), len(contrast), len(xstest)) == (1001, 379, 450)
    assert all(p.warranted for p in original) and not any(p.warranted for p in contrast)
    assert Counter(p.warranted for p in xstest) == {False: 250, True: 200}
    assert all(p.warranted == p.category.startswith("contrast_") for p in xstest)
    assert len(load_suite("coconot")) == 1380
    every = original + contrast + xstest
    assert len({p.id for p in every}) == len(every)
    assert {p.expected for p in every} <= set(BEHAVIOURS)
    assert all((p.expected == "comply") == (not p.warranted) for p in every)
    assert Counter(p.category for p in original) == {"safety": 395, "incomplete": 225, "unsupported": 157,
                                                     "indeterminate": 142, "humanizing": 82}


def test_licences_and_attribution_travel_with_the_data():
    assert "MIT License" in (SUITES_DIR / "coconot" / "LICENSE").read_text()
    assert "Attribution 4.0 International" in (SUITES_DIR / "xstest" / "LICENSE").read_text()
    assert "MIT License" in (SUITES_DIR / "chatgpt_refusals" / "LICENSE").read_text()
    assert "37d405b88624b2512b4ad44efa4067a73713aeec" in (SUITES_DIR / "chatgpt_refusals" / "SOURCE.txt").read_text()
    readme = (SUITES_DIR / "README.md").read_text()
    assert "Brahman" in readme and "Röttger" in readme and "CC-BY-4.0" in readme and "Reuter & Schulze" in readme


def test_curated_suite_is_the_dataset_test_split():
    from pushback.splits import curated_split

    _, test = curated_split()
    suite = load_suite("curated")
    assert [p.id for p in suite] == [r.id for r in test]
    assert all(p.warranted == (p.expected != "comply") for p in suite)


def test_a_limit_draws_every_stratum_deterministically():
    full = load_suite("coconot")
    strata = {(p.warranted, p.category) for p in full}
    picked = load_suite("coconot", limit=len(strata), seed=3)
    assert {(p.warranted, p.category) for p in picked} == strata
    assert [p.id for p in picked] == [p.id for p in load_suite("coconot", limit=len(strata), seed=3)]
    assert [p.id for p in picked] != [p.id for p in load_suite("coconot", limit=len(strata), seed=4)]
    small = stratified(full, 4, seed=0)
    assert Counter(p.warranted for p in small) == {True: 2, False: 2}
    assert len(load_suite("xstest", limit=10_000)) == 450


def test_unknown_suite_is_named():
    with pytest.raises(SuiteError, match="unknown suite 'nope'"):
        load_suite("nope")
    assert set(suite_names()) == {"curated", "coconot", "coconot_original", "coconot_contrast", "xstest", "pressure"}
