"""The command line: exit codes, one-line errors, refused hostile input, deterministic output."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli_helpers import one_line_error, run

ROOT = Path(__file__).resolve().parents[1]
CASE01 = str(ROOT / "examples" / "case01-b12-179-metformin-deficient.ttl")
CASE10 = str(ROOT / "examples" / "case10-b12-120-pmol-folic-acid-1mg.ttl")
CASE59 = str(ROOT / "examples" / "case59-pregnant-folic-acid-normal-b12-negative.ttl")


def test_recommend_json_contract(capsys):
    code, out, _ = run(capsys, "recommend", CASE01, "--as-of", "2026-06-01", "-f", "json")
    assert code == 0
    d = json.loads(out)
    assert d["as_of"] == "2026-06-01"
    (p,) = d["patients"]
    assert set(p) >= {"patient", "findings", "recommendations", "violations", "conflicts", "unused"}
    rec = {i["id"]: i for i in p["recommendations"]}
    item = rec["TX-NONNEURO-LOADING"]
    assert set(item) >= {"id", "label", "sources", "because", "regimen"}
    assert all(set(s) >= {"document", "reference", "evidence"} for s in item["sources"])
    assert item["regimen"][0]["drug"] == "hydroxocobalamin"
    conflicts = {i["id"]: i for i in p["conflicts"]}
    assert len(conflicts["CONFLICT-LIFELONG-VS-REVERSIBLE"]["between"]) == 2


def test_violation_items_have_severity_and_message(capsys):
    code, out, _ = run(capsys, "recommend", CASE10, "--as-of", "2026-06-01", "-f", "json")
    (p,) = json.loads(out)["patients"]
    v = {i["id"]: i for i in p["violations"]}
    assert v["SAFETY-FOLATE-WITHOUT-B12"]["severity"] == "Violation"
    assert v["SAFETY-FOLATE-DOSE"]["severity"] == "Warning"
    assert v["SAFETY-FOLATE-WITHOUT-B12"]["message"]
    assert any(b.endswith("folic-acid") for b in v["SAFETY-FOLATE-WITHOUT-B12"]["because"])


def test_validate_exit_codes(capsys):
    assert run(capsys, "validate", CASE10, "--as-of", "2026-06-01")[0] == 1
    assert run(capsys, "validate", CASE59, "--as-of", "2026-06-01")[0] == 0


@pytest.mark.parametrize("fmt", ["text", "json", "turtle", "jsonld"])
def test_output_is_deterministic(capsys, fmt):
    a = run(capsys, "recommend", CASE10, CASE01, "--as-of", "2026-06-01", "-f", fmt)[1]
    b = run(capsys, "recommend", CASE01, CASE10, "--as-of", "2026-06-01", "-f", fmt)[1]
    assert a == b and a


def test_turtle_report_is_rdf_with_prov(capsys):
    import rdflib

    out = run(capsys, "recommend", CASE01, "--as-of", "2026-06-01", "-f", "turtle")[1]
    g = rdflib.Graph().parse(data=out, format="turtle")
    PROV = rdflib.Namespace("http://www.w3.org/ns/prov#")
    items = set(g.subjects(rdflib.URIRef("https://w3id.org/b12kg/statement"), None))
    assert items
    for item in items:
        assert g.value(item, PROV.wasGeneratedBy) is not None
        assert g.value(item, PROV.wasDerivedFrom) is not None


def test_output_file(tmp_path, capsys):
    target = tmp_path / "r.json"
    assert run(capsys, "recommend", CASE01, "--as-of", "2026-06-01", "-f", "json", "-o", str(target))[0] == 0
    assert json.loads(target.read_text())["patients"]


def write(tmp_path, name, text):
    p = tmp_path / name
    p.write_bytes(text if isinstance(text, bytes) else text.encode())
    return str(p)


BAD_INPUTS = {
    "malformed.ttl": ("@prefix b12: <https://w3id.org/b12kg/> .\nb12:p a b12:Patient ;\n  b12:birthDate \"1960 .\n", ["malformed.ttl:", "syntax"]),
    "remote-context.jsonld": ('{"@context": "http://example.org/context.jsonld", "@id": "http://ex/p", "http://ex/q": 1}', ["remote-context.jsonld", "remote @context"]),
    "xxe.rdf": ('<?xml version="1.0"?>\n<!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>\n<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description rdf:about="http://ex/a"><rdf:value>&x;</rdf:value></rdf:Description></rdf:RDF>', ["xxe.rdf", "entity"]),
    "garbage.ttl": (bytes(range(256)) * 4, ["garbage.ttl", "binary"]),
}


@pytest.mark.parametrize("name", sorted(BAD_INPUTS))
def test_bad_input_exits_2_with_one_line(tmp_path, capsys, name):
    text, needles = BAD_INPUTS[name]
    path = write(tmp_path, name, text)
    code, out, err = run(capsys, "recommend", path, "--as-of", "2026-06-01")
    assert code == 2
    line = one_line_error(err)
    for n in needles:
        assert n in line, line
    assert out == ""


def test_missing_file_and_bad_date(capsys):
    code, _, err = run(capsys, "recommend", "/nonexistent/p.ttl", "--as-of", "2026-06-01")
    assert code == 2 and "no such file" in one_line_error(err)
    code, _, err = run(capsys, "recommend", CASE01, "--as-of", "2026-13-45")
    assert code == 2 and "--as-of" in one_line_error(err)
    code, _, err = run(capsys, "recommend", CASE01, "-f", "pdf")
    assert code == 2 and "invalid choice" in one_line_error(err)


SNIPPET = """@prefix b12: <https://w3id.org/b12kg/> .
@prefix ex: <https://example.org/bad/> .
@prefix xsd: <http://www.w3.org/2001/XMLSchema#> .
ex:p a b12:Patient .
"""


def test_unknown_unit_is_reported_not_dropped(tmp_path, capsys):
    path = write(tmp_path, "unit.ttl", SNIPPET + 'ex:b a b12:TotalB12Result ; b12:subject ex:p ; b12:value 150 ; b12:unit "furlong" ; b12:date "2026-05-01"^^xsd:date .\n')
    code, out, _ = run(capsys, "recommend", path, "--as-of", "2026-06-01", "-f", "json")
    assert code == 0
    (p,) = json.loads(out)["patients"]
    assert "DX-B12-DEFICIENT" not in {i["id"] for i in p["findings"]}
    assert any(u["resource"] == "https://example.org/bad/b" and "furlong" in u["reason"] for u in p["unused"])
    assert any(ip["id"] == "INPUT-UNIT-CONVERTIBLE" and "furlong" in ip["message"] for ip in p["input_problems"])
    assert run(capsys, "validate", path, "--as-of", "2026-06-01")[0] == 1


def test_lab_without_value_end_before_start_future_date(tmp_path, capsys):
    path = write(tmp_path, "bad-records.ttl", SNIPPET + """
ex:b a b12:TotalB12Result ; b12:subject ex:p ; b12:unit "ng/L" ; b12:date "2026-05-01"^^xsd:date .
ex:m a b12:MedicationUse ; b12:subject ex:p ; b12:drug b12:metformin ; b12:dose 500 ; b12:doseUnit "mg" ; b12:route b12:oral ;
    b12:frequency b12:daily ; b12:startDate "2026-03-01"^^xsd:date ; b12:endDate "2026-01-01"^^xsd:date .
ex:n a b12:MedicationUse ; b12:subject ex:p ; b12:drug b12:folicAcid ; b12:dose 1 ; b12:frequency b12:daily ; b12:startDate "2026-09-01"^^xsd:date .
""")
    code, out, _ = run(capsys, "validate", path, "--as-of", "2026-06-01", "-f", "json")
    assert code == 1
    (p,) = json.loads(out)["patients"]
    got = {(ip["resource"].rsplit("/", 1)[-1], ip["id"]) for ip in p["input_problems"]}
    assert ("b", "INPUT-LAB-VALUE") in got
    assert ("m", "INPUT-END-BEFORE-START") in got
    assert ("n", "INPUT-FUTURE-DATE") in got
    assert ("n", "INPUT-MEDICATION") in got  # no route
    assert ("n", "INPUT-DOSE-UNIT") in got


def test_excluded_and_unknown_records_are_listed_as_unused(tmp_path, capsys):
    path = write(tmp_path, "unused.ttl", SNIPPET + """
ex:refuted a b12:PerniciousAnaemia ; b12:subject ex:p ; b12:verificationStatus b12:refuted .
ex:odd a b12:Condition ; b12:subject ex:p ; b12:code <http://snomed.info/id/999999999> .
""")
    code, out, _ = run(capsys, "recommend", path, "--as-of", "2026-06-01", "-f", "json")
    (p,) = json.loads(out)["patients"]
    reasons = {u["resource"].rsplit("/", 1)[-1]: u["reason"] for u in p["unused"]}
    assert "refuted" in reasons["refuted"]
    assert "999999999" in reasons["odd"]
    assert "TX-PERNICIOUS-ANAEMIA-LIFELONG" not in {i["id"] for i in p["recommendations"]}


def test_console_script_no_traceback(tmp_path):
    bad = write(tmp_path, "bad.ttl", "this is not turtle")
    proc = subprocess.run([sys.executable, "-m", "reasoner", "recommend", bad], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and proc.stderr.count("\n") == 1
