"""A short property-based fuzz run (fuzz/run.py, fixed seed): every generated FHIR bundle, NDJSON
export and Turtle patient — valid, mutated or truncated — goes through recommend, validate and
convert without a traceback, with one-line errors, exact record accounting, deterministic output,
order-independent reports and patients that do not affect each other. See docs/reliability.md."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

pytest.importorskip("hypothesis")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fuzz.run import run_fuzz  # noqa: E402

N, SEED = 100, 20261123


def test_fuzz_properties_hold():
    stats = run_fuzz(N, seed=SEED)
    assert sum(stats.tried.values()) == N
    assert {k.split("-")[0] for k in stats.tried} == {"fhir", "ndjson", "turtle"}
    report = "\n".join(f"{f.signature}\n{f.case.kind}-{f.case.variant}: {f.case.blob[:400]!r}" for f in stats.failures[:5])
    assert not stats.failures, report


# ---------------------------------------------------------------------------------------------
# Hostile inputs found while fuzzing that are handled correctly today (one-line error or a report)
# ---------------------------------------------------------------------------------------------

_P = '{"resourceType":"Patient","id":"p1","birthDate":"1960-01-01"}'
_OBS = ('{"resourceType":"Observation","id":"o1","status":"final","code":{"coding":[{"system":"http://loinc.org",'
        '"code":"2132-9"}]},"subject":{"reference":"Patient/p1"},"effectiveDateTime":"2026-05-20",'
        '"valueQuantity":{"value":VALUE,"unit":"pg/mL","system":"http://unitsofmeasure.org","code":"pg/mL"}}')


def _bundle(*resources: str) -> bytes:
    return ('{"resourceType":"Bundle","type":"collection","entry":['
            + ",".join('{"resource":%s}' % r for r in resources) + "]}").encode("utf-8")


HOSTILE = {
    "deep-json.json": b'{"resourceType":"Bundle","type":"collection","entry":' + b"[" * 20000 + b"]" * 20000 + b"}",
    "deep-line.ndjson": b'{"a":' * 20000 + b"1" + b"}" * 20000 + b"\n",
    "deep-list.ttl": b"<urn:a> <urn:b> " + b"( " * 5000 + b")" * 5000 + b" .\n",
    "deep-bnode.ttl": b"<urn:a> <urn:b> " + b"[ <urn:c> " * 5000 + b"1" + b" ]" * 5000 + b" .\n",
    "empty.json": b"",
    "bom.json": b"\xef\xbb\xbf" + _bundle(_P, _OBS.replace("VALUE", "179")),
    "nan.json": _bundle(_P, _OBS.replace("VALUE", "NaN")),
    "5000-digits.json": _bundle(_P, _OBS.replace("VALUE", "9" * 5000)),
    "negative.json": _bundle(_P, _OBS.replace("VALUE", "-5")),
    "1e18.json": _bundle(_P, _OBS.replace("VALUE", "1e18")),
    "impossible-date.json": _bundle(_P, _OBS.replace("VALUE", "179").replace("2026-05-20", "2026-02-30")),
    "year-99999.json": _bundle(_P.replace("1960-01-01", "99999-01-01")),
    "surrogate-id.json": _bundle(_P.replace('"p1"', '"\\ud800"')),
    "duplicate-id.json": _bundle(_P, _OBS.replace("VALUE", "179"), _OBS.replace("VALUE", "179")),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_input_is_handled(name, tmp_path):
    from fuzz.harness import Case, Stats, check_case

    kind = {".json": "fhir", ".ndjson": "ndjson", ".ttl": "turtle"}[Path(name).suffix]
    failures = check_case(Case(kind, "hostile", HOSTILE[name]), str(tmp_path), Stats())
    assert not failures, [f.signature for f in failures]


def test_fuzz_regressions_f1_f2_f3(tmp_path, capsys):
    """F1: a value of 1e19 or more; F2/F3: a literal b12:subject — reported, never a traceback."""
    from reasoner.cli import main

    ttl = tmp_path / "f2.ttl"
    ttl.write_text("""@prefix b12: <https://w3id.org/b12kg/> . @prefix xsd: <http://www.w3.org/2001/XMLSchema#> .
<urn:ex:p> a b12:Patient .
<urn:ex:a> a b12:TotalB12Result ; b12:subject "42" ; b12:value 240 ; b12:unit "ng/L" ; b12:date "2026-05-25"^^xsd:date .
<urn:ex:b> a b12:TotalB12Result ; b12:subject "a b" ; b12:value 240 ; b12:unit "ng/L" ; b12:date "2026-05-25"^^xsd:date .
<urn:ex:c> a b12:TotalB12Result ; b12:subject <urn:ex:p> ; b12:value 1e19 ; b12:unit "pg/mL" ; b12:date "2026-05-25"^^xsd:date .
""")
    assert main(["recommend", str(ttl), "--as-of", "2026-06-01", "-f", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    problems = {(ip["resource"], ip["id"]) for p in out["patients"] for ip in p["input_problems"]}
    assert ("urn:ex:a", "INPUT-RECORD-SUBJECT") in problems and ("urn:ex:b", "INPUT-RECORD-SUBJECT") in problems
    assert [p["patient"] for p in out["patients"] if p["patient"]] == ["urn:ex:p"]
    (p,) = [p for p in out["patients"] if p["patient"] == "urn:ex:p"]
    assert {i["id"] for i in p["findings"]} == {"DX-B12-UNLIKELY"}  # 1e19 pg/mL is converted, not a crash


def test_fuzz_command_hostile_mode():
    """``python fuzz/run.py --hostile`` (which also generates the --large inputs on the fly) runs the
    hostile cases of fuzz/hostile.py in child processes and prints one line per run with the outcome,
    exit code, wall time and peak RSS; the full set is tests/test_hostile.py."""
    import subprocess

    root = Path(__file__).resolve().parents[1]
    proc = subprocess.run([sys.executable, str(root / "fuzz" / "run.py"), "--hostile", "--only", "^(empty-file|dev-zero)$", "--no-strace"],
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = [ln for ln in proc.stdout.splitlines() if ln.startswith("ok ")]
    assert len(rows) == 4, proc.stdout
    assert all("refused" in r and "exit=2" in r and " MB " in r for r in rows), rows
    assert "connections to the test server: 0; runs with a problem: 0" in proc.stdout
