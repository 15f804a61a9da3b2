"""`b12kg verify`: the project's own cases pass through it, JUnit XML is valid, and wrong or
malformed cases give exit 1 (with a <failure> naming the identifier) or exit 2 (one line)."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from reasoner.cli import main

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
CASES = ROOT / "tests" / "cases"
#: A subset of tests/cases (the whole set runs in tests/test_catalog_cases.py): one file per category.
CASE_SUBSET = ["DX-B12-DEFICIENT", "TX-NONNEURO-LOADING", "PAIN-FIRST-LINE", "MON-POTASSIUM-48H",
               "SAFETY-FOLATE-WITHOUT-B12", "INFO-LIFELONG", "CONFLICT-NEURO-LOADING"]
CASE01 = "case01-b12-179-metformin-deficient"


@pytest.fixture(autouse=True)
def _in_project(monkeypatch):
    monkeypatch.chdir(ROOT)  # case files are shown relative to the working directory


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main(["verify", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def _junit(path: Path) -> ET.Element:
    root = ET.parse(path).getroot()
    assert root.tag == "testsuites"
    return root


def test_examples_and_cases_pass_with_junit(tmp_path, capsys):
    subset = tmp_path / "cases"
    subset.mkdir()
    for ident in CASE_SUBSET:
        shutil.copy(CASES / f"{ident}.toml", subset)
    junit = tmp_path / "verify.xml"
    code, out, err = run(capsys, EXAMPLES, subset, "--junit", junit)
    assert code == 0, out + err
    root = _junit(junit)
    suites = root.findall("testsuite")
    examples = sorted(EXAMPLES.rglob("*.expected.json"))
    assert len(suites) == len(examples) + len(CASE_SUBSET)
    import tomllib

    n_toml = sum(len(tomllib.loads((CASES / f"{i}.toml").read_text())["case"]) for i in CASE_SUBSET)
    # one test case per patient file: the Turtle sibling, plus the FHIR twin examples/fhir/<stem>.fhir.json if any
    n_examples = sum(1 + (EXAMPLES / "fhir" / p.name.replace(".expected.json", ".fhir.json")).is_file() for p in examples)
    assert len(root.findall("testsuite/testcase")) == n_examples + n_toml
    assert root.get("tests") == str(n_examples + n_toml)
    assert root.get("failures") == "0" and root.get("errors") == "0"
    for s in suites:
        assert s.get("failures") == "0" and s.get("errors") == "0"
        assert int(s.get("tests")) == len(s.findall("testcase")) >= 1
    assert not root.findall(".//failure") and not root.findall(".//error")
    # the text table: header, rows, summary
    assert out.splitlines()[0].split()[:5] == ["case", "identifier", "expected", "got", "result"]
    assert f"examples/{CASE01}.expected.json::case01" in out
    assert "0 failed, 0 errors" in out


def test_every_example_has_its_own_suite(tmp_path, capsys):
    junit = tmp_path / "ex.xml"
    code, out, err = run(capsys, EXAMPLES, "--junit", junit, "--failures-only")
    assert code == 0, out + err
    names = {s.get("name") for s in _junit(junit).findall("testsuite")}
    assert names == {f"examples/{p.name}" for p in EXAMPLES.glob("*.expected.json")}


def test_wrong_case_fails_and_names_the_identifier(tmp_path, capsys):
    spec = json.loads((EXAMPLES / f"{CASE01}.expected.json").read_text())
    spec["must"].append("TX-NEURO-LOADING")  # no neurological involvement: it does not fire
    spec["must_not"].remove("TX-NEURO-LOADING")
    spec["patient"] = str(EXAMPLES / f"{CASE01}.ttl")
    case = tmp_path / "wrong.case.json"
    case.write_text(json.dumps(spec))
    junit = tmp_path / "wrong.xml"
    code, out, err = run(capsys, case, "--junit", junit)
    assert code == 1
    assert "TX-NEURO-LOADING" in out and "FAIL" in out
    root = _junit(junit)
    assert root.get("failures") == "1"
    failures = root.findall("testsuite/testcase/failure")
    assert len(failures) == 1
    assert "TX-NEURO-LOADING" in failures[0].get("message")
    assert "DX-B12-DEFICIENT" not in failures[0].get("message")  # only what is wrong


def test_toml_case_unexpected_identifier(tmp_path, capsys):
    case = tmp_path / "X.toml"
    case.write_text('''[[case]]
name = "deficient B12 does fire the finding"
turtle = \'\'\'
ex:b12 a b12:TotalB12Result ; b12:value 179 ; b12:unit "pg/mL" ; b12:date "2026-05-20"^^xsd:date .
\'\'\'
fires = ["TX-NONNEURO-LOADING"]
silent = ["DX-B12-DEFICIENT"]
''')
    code, out, err = run(capsys, case, "-f", "json")
    assert code == 1
    data = json.loads(out)
    c = data["files"][0]["cases"][0]
    assert c["status"] == "fail" and c["unexpected"] == ["DX-B12-DEFICIENT"] and c["missing"] == []
    assert data["summary"] == {"files": 1, "cases": 1, "passed": 0, "failed": 1, "errors": 0}


def test_as_of_override(tmp_path, capsys):
    # TX-NONNEURO-LOADING fires for a deficient B12 result; judged in 2020 the result is in the future
    code, out, _ = run(capsys, CASES / "TX-NONNEURO-LOADING.toml", "--as-of", "2020-01-01", "-f", "json")
    assert code == 1
    assert all(c["as_of"] == "2020-01-01" for c in json.loads(out)["files"][0]["cases"])


@pytest.mark.parametrize("content,fragment", [
    ('{"as_of": "2026-06-01", "must": [', "invalid JSON"),
    ('{"as_of": "2026-06-01", "must": ["DX-B12-DEFICIENT"]}', "no patient"),
    ('{"as_of": "2026-06-01", "must": ["DX-B12-DEFICIENT"], "patient": "missing.ttl"}', "not found"),
    ('{"as_of": "2026-06-01", "must": ["DX-NOT-A-THING"], "patient": "p.ttl"}', "not a catalog identifier"),
    ('{"as_of": "01/06/2026", "must": ["DX-B12-DEFICIENT"], "patient": "p.ttl"}', "not a date"),
    ('{"as_of": "2026-06-01", "patient": "p.ttl"}', "no 'must'"),
])
def test_bad_case_file_exits_2_with_one_line(tmp_path, capsys, content, fragment):
    (tmp_path / "p.ttl").write_text("")
    case = tmp_path / "bad.case.json"
    case.write_text(content)
    code, out, err = run(capsys, case)
    assert code == 2
    assert out == ""
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith("b12kg: error: ") and fragment in err and "bad.case.json" in err


def test_bad_toml_and_missing_path_exit_2(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text("[[case]\nname = 1")
    code, _, err = run(capsys, bad)
    assert code == 2 and "invalid TOML" in err and len(err.strip().splitlines()) == 1
    code, _, err = run(capsys, tmp_path / "nothere.case.json")
    assert code == 2 and "no such file" in err


def test_unreadable_patient_is_an_error_not_a_crash(tmp_path, capsys):
    """A patient that cannot be read (here a broken FHIR bundle) is reported as that case's error."""
    (tmp_path / "p.fhir.json").write_text('{"resourceType": "Bundle", "entry": [')
    (tmp_path / "p.expected.json").write_text('{"as_of": "2026-06-01", "must": ["DX-B12-DEFICIENT"], "must_not": []}')
    (tmp_path / "empty.ttl").write_text("# no patient here\n")
    (tmp_path / "q.case.json").write_text('{"as_of": "2026-06-01", "must": ["DX-B12-DEFICIENT"], "patient": "empty.ttl"}')
    junit = tmp_path / "e.xml"
    code, out, err = run(capsys, tmp_path, "--junit", junit)
    assert code == 1, err
    assert "Traceback" not in out + err
    root = _junit(junit)
    assert root.get("errors") == "2" and root.get("failures") == "0"
    assert len(root.findall("testsuite/testcase/error")) == 2
    assert "ERROR" in out


def test_cli_entry_point_one_line_error(tmp_path):
    bad = tmp_path / "bad.case.json"
    bad.write_text("{")
    proc = subprocess.run([sys.executable, "-m", "reasoner", "verify", str(bad)], capture_output=True, text=True)
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
