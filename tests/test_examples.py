"""The shipped examples: each Turtle patient gives every identifier in its ``must`` list and none in
its ``must_not`` list (examples/<case>.expected.json; the six worked cases come from the project's
acceptance set, tests/acceptance/)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from reasoner import recommend

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "examples").glob("*.expected.json"))


@pytest.mark.parametrize("expected", EXAMPLES, ids=lambda p: p.name.split("-")[0])
def test_example(kb, expected):
    spec = json.loads(expected.read_text(encoding="utf-8"))
    ttl = expected.with_name(expected.name.replace(".expected.json", ".ttl"))
    report = recommend(ttl, spec["as_of"], kb=kb)
    assert len(report.patients) == 1
    fired = report.ids()
    assert not set(spec["must"]) - fired, f"missing: {sorted(set(spec['must']) - fired)}"
    assert not set(spec["must_not"]) & fired, f"must not fire: {sorted(set(spec['must_not']) & fired)}"


def test_acceptance_expectations_are_the_shipped_ones():
    """examples/ keeps the acceptance expectations verbatim (no local edits to make tests pass)."""
    for f in (ROOT / "tests" / "acceptance").glob("*.expected.json"):
        assert (ROOT / "examples" / f.name).read_text() == f.read_text()


def test_every_report_item_names_a_source_and_facts(kb):
    report = recommend(sorted((ROOT / "examples").glob("*.ttl")), "2026-06-01", kb=kb)
    assert len(report.patients) == len(list((ROOT / "examples").glob("*.ttl")))
    for p in report.patients:
        for key in ("findings", "recommendations", "violations", "conflicts"):
            for item in p[key]:
                assert item["sources"], f"{p['patient']} {item['id']}: no source"
                assert all(s["document"] for s in item["sources"])
                assert item["because"], f"{p['patient']} {item['id']}: no patient facts"
                assert item["rule"], f"{p['patient']} {item['id']}: no rule"


def test_examples_use_every_record(kb):
    """Well-formed examples leave nothing unused and raise no input problem (regression: B12
    products were once listed as 'unknown drug')."""
    report = recommend(sorted((ROOT / "examples").glob("*.ttl")), "2026-06-01", kb=kb)
    for p in report.patients:
        assert p["unused"] == [], p["patient"]
        assert p["input_problems"] == [], p["patient"]
