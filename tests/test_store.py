"""The embedded store and cohort evaluation: load once, evaluate from the store, stream NDJSON/CSV,
use both cores, survive a failing patient, never duplicate on reload."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from reasoner import cohort, recommend
from reasoner.store import PatientStore
from tests.cli_helpers import run

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted(str(p) for p in (ROOT / "examples").glob("*.ttl"))


@pytest.fixture(scope="module")
def direct(kb):
    return recommend(EXAMPLES, "2026-06-01", kb=kb)


def test_store_gives_the_same_report_as_direct_evaluation(tmp_path, capsys, direct):
    store = str(tmp_path / "store")
    assert run(capsys, "load", *EXAMPLES, "--store", store)[0] == 0
    code, out, _ = run(capsys, "recommend", "--store", store, "--as-of", "2026-06-01", "-f", "ndjson", "--jobs", "2")
    assert code == 0
    lines = [json.loads(line) for line in out.splitlines()]
    assert [p["patient"] for p in lines] == sorted(p["patient"] for p in direct.patients)
    for p in lines:
        ids = {i["id"] for k in cohort.KEYS for i in p[k]}
        assert ids == direct.ids(p["patient"]), p["patient"]
        assert p["as_of"] == "2026-06-01"


def test_reload_does_not_duplicate_and_results_are_queryable(tmp_path, capsys):
    store = str(tmp_path / "store")
    run(capsys, "load", *EXAMPLES, "--store", store)
    first = len(PatientStore(store).store)
    run(capsys, "load", *EXAMPLES, "--store", store)
    assert len(PatientStore(store).store) == first
    run(capsys, "recommend", "--store", store, "--as-of", "2026-06-01", "-f", "csv")
    after_one = len(PatientStore(store).store)
    run(capsys, "recommend", "--store", store, "--as-of", "2026-06-01", "-f", "csv")
    assert len(PatientStore(store).store) == after_one
    code, out, _ = run(capsys, "query", str(ROOT / "queries" / "violations.rq"), "--store", store, "-f", "tsv")
    assert code == 0 and "SAFETY-FOLATE-WITHOUT-B12" in out


def test_jobs_and_batch_size_do_not_change_the_output(capsys):
    a = run(capsys, "recommend", *EXAMPLES, "--as-of", "2026-06-01", "-f", "ndjson", "--jobs", "1", "--batch-size", "1")[1]
    b = run(capsys, "recommend", *EXAMPLES, "--as-of", "2026-06-01", "-f", "ndjson", "--jobs", "2", "--batch-size", "4")[1]
    assert a == b and len(a.splitlines()) == len(EXAMPLES)


def test_csv_summary(capsys):
    code, out, _ = run(capsys, "recommend", *EXAMPLES, "--as-of", "2026-06-01", "-f", "csv")
    rows = out.splitlines()
    assert rows[0].startswith("patient,findings,recommendations,violations,conflicts")
    assert len(rows) == len(EXAMPLES) + 1
    assert any("case10" in r and "SAFETY-FOLATE-WITHOUT-B12" in r for r in rows)


def test_a_failing_patient_does_not_stop_the_run(monkeypatch, kb):
    real = cohort._evaluate

    def flaky(nquads, unused, as_of, keep, shacl):
        if b"case45" in nquads:
            raise RuntimeError("simulated failure")
        return real(nquads, unused, as_of, keep, shacl)

    monkeypatch.setattr(cohort, "_evaluate", flaky)
    from reasoner.load import load_sources

    batches = cohort.batches_from_data(load_sources(EXAMPLES), batch_size=4)
    import datetime as dt

    results = [p for got, _ in cohort.run_cohort(batches, dt.date(2026, 6, 1), jobs=1) for p in got]
    assert len(results) == len(EXAMPLES)
    failed = [p for p in results if "error" in p]
    assert [p["patient"] for p in failed] == ["https://example.org/b12kg/case45/patient"]
    assert "simulated failure" in failed[0]["error"]
    assert all("recommendations" in p for p in results if "error" not in p)


def test_validate_over_store_exit_code(tmp_path, capsys):
    store = str(tmp_path / "store")
    ok = [p for p in EXAMPLES if "case59" in p]
    run(capsys, "load", *ok, "--store", store)
    assert run(capsys, "validate", "--store", store, "--as-of", "2026-06-01", "-f", "ndjson")[0] == 0
    bad = [p for p in EXAMPLES if "case10" in p]
    assert run(capsys, "validate", *bad, "--store", store, "--as-of", "2026-06-01", "-f", "ndjson")[0] == 1


def test_store_usage_errors(tmp_path, capsys):
    code, _, err = run(capsys, "query", str(ROOT / "queries" / "violations.rq"), "--store", str(tmp_path / "missing"))
    assert code == 2 and "no such store" in err
    code, _, err = run(capsys, "recommend", "-f", "ndjson")
    assert code == 2 and "--store" in err
