"""Every catalog identifier: a case where it fires and a near miss where it must not.

Cases are data files (tests/cases/<ID>.toml), walked by one parametrised test. A case lists
the identifier under test in ``fires`` or ``silent`` (and may add more identifiers to each).
"""
from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from reasoner import recommend_text
from tests.patients import PATIENT, patient_turtle

CASES_DIR = Path(__file__).parent / "cases"
CATALOG = Path(__file__).resolve().parents[1] / "docs" / "guideline" / "CATALOG.md"


def load_cases():
    out = []
    for f in sorted(CASES_DIR.glob("*.toml")):
        data = tomllib.loads(f.read_text(encoding="utf-8"))
        for i, case in enumerate(data.get("case", [])):
            out.append(pytest.param(f.stem, data, case, id=f"{f.stem}::{case.get('name', i)}"))
    return out


@pytest.mark.parametrize("ident,spec,case", load_cases())
def test_case(kb, ident, spec, case):
    as_of = case.get("as_of", spec.get("as_of", "2026-06-01"))
    report = recommend_text(patient_turtle(case["turtle"]), as_of, kb=kb)
    fired = report.ids(PATIENT)
    fires = set(case.get("fires", []))
    silent = set(case.get("silent", []))
    assert ident in fires | silent, f"case '{case.get('name')}' does not say whether {ident} fires"
    assert fires <= fired, f"expected to fire but did not: {sorted(fires - fired)}; fired: {sorted(fired)}"
    assert not (silent & fired), f"expected silent but fired: {sorted(silent & fired)}"


def catalog_ids() -> list[str]:
    text = CATALOG.read_text(encoding="utf-8") if CATALOG.exists() else ""
    return sorted(set(re.findall(r"^\| ((?:DX|TX|PAIN|MON|SAFETY|INFO|CONFLICT)-[A-Z0-9-]+)", text, re.M)))


def test_every_identifier_has_fire_and_near_miss():
    ids = catalog_ids() or sorted(p.stem for p in CASES_DIR.glob("*.toml"))
    missing = []
    for ident in ids:
        f = CASES_DIR / f"{ident}.toml"
        if not f.exists():
            missing.append(f"{ident}: no case file")
            continue
        cases = tomllib.loads(f.read_text(encoding="utf-8")).get("case", [])
        if not any(ident in c.get("fires", []) for c in cases):
            missing.append(f"{ident}: no case where it fires")
        if not any(ident in c.get("silent", []) for c in cases):
            missing.append(f"{ident}: no near miss where it is silent")
    assert not missing, "\n".join(missing)
