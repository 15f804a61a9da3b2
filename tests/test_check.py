"""`b12kg check`, the encoding quality report: clean on the shipped encoding, every QC check fires
on its fixture (tests/qc/<check-id>.ttl), and broken copies of the project exit 1 naming the
problem. HermiT runs twice in this file: on the shipped encoding and on a copy with an
unsatisfiable class."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from reasoner.cli import main
from reasoner.owl import OwlCheck
from reasoner.workbench import check as qc

ROOT = Path(__file__).resolve().parents[1]
QC_DIR = ROOT / "queries" / "qc"
FIXTURES = ROOT / "tests" / "qc"
HAVE_JAVA = shutil.which("java") is not None
FAST = ("--no-owl", "--no-cooccurrence")


def run(capsys, *args) -> tuple[int, str, str]:
    code = main(["check", *map(str, args)])
    out, err = capsys.readouterr()
    return code, out, err


def run_json(capsys, *args) -> tuple[int, dict]:
    code, out, err = run(capsys, *args, "-f", "json")
    assert "Traceback" not in err
    return code, json.loads(out)


def rows(data: dict, check: str, severity: str | None = None) -> list[dict]:
    return [p for p in data["problems"] if p["check"] == check and (severity is None or p["severity"] == severity)]


def all_check_ids() -> list[str]:
    return sorted(qc.all_checks(QC_DIR))


# ---- the shipped encoding -----------------------------------------------------------------------


def test_shipped_encoding_is_clean(capsys):
    """The whole check, HermiT and co-firing included: exit 0 and no ERROR row."""
    code, data = run_json(capsys)
    errors = [p for p in data["problems"] if p["severity"] == "ERROR"]
    assert errors == [], "\n".join(f"{p['check']} {p['entity']}: {p['message']}" for p in errors)
    assert code == 0
    assert data["summary"]["errors"] == 0
    if HAVE_JAVA:
        assert {"owl-inconsistent", "owl-unsatisfiable"} <= set(data["summary"]["checks_run"])
    else:
        assert any(p["check"] == "skipped" and "Java" in p["message"] for p in data["problems"])
    # every co-firing TX pair of the shipped cases is declared (ontology/relations.ttl or a CONFLICT)
    assert rows(data, "tx-cofire-undeclared") == []
    assert set(data["checks"]) == set(all_check_ids())


@pytest.fixture(scope="module")
def shipped():
    return qc.check(ROOT, owl=False, cooccurrence=False)


@pytest.mark.parametrize("check_id", [c for c, s in qc.load_profile(QC_DIR / "profile.tsv").items() if s == "ERROR"])
def test_shipped_encoding_has_no_rows_for_error_check(shipped, check_id):
    found = [p for p in shipped.problems if p.check == check_id]
    assert found == [], "\n".join(f"{p.entity}: {p.message}" for p in found)


# ---- the checks and their fixtures --------------------------------------------------------------


def test_every_check_has_profile_fixture_and_header():
    profile = qc.load_profile(QC_DIR / "profile.tsv")
    checks = qc.all_checks(QC_DIR)
    assert set(profile) == set(checks), "profile.tsv and the checks differ"
    assert len(checks) >= 30
    for cid, c in checks.items():
        assert (FIXTURES / f"{cid}.ttl").is_file(), f"tests/qc/{cid}.ttl is missing"
        assert c.problem and c.solution, cid
    assert {p.stem for p in FIXTURES.glob("*.ttl")} == set(checks)
    assert set(profile.values()) <= {"ERROR", "WARN", "INFO"}


_STUB = {
    # the OWL checks are run on their fixture without the JVM (HermiT runs in the tests below)
    "owl-inconsistent": lambda g: OwlCheck(False, [], ""),
    "owl-unsatisfiable": lambda g: OwlCheck(True, ["https://w3id.org/b12kg/QcImpossibleRoute"], ""),
}


@pytest.mark.parametrize("check_id", all_check_ids())
def test_check_fires_on_its_fixture(check_id):
    graph = qc.QCGraph.from_turtle(FIXTURES / f"{check_id}.ttl")
    report = qc.run_checks(graph, QC_DIR, only={check_id}, reasoner=_STUB.get(check_id))
    found = [p for p in report.problems if p.check == check_id]
    assert found, f"{check_id} found nothing in tests/qc/{check_id}.ttl"
    assert all(p.entity and p.message for p in found)
    assert {p.severity for p in found} == {qc.load_profile(QC_DIR / "profile.tsv")[check_id]}


def test_band_gap_fixture_names_both_bands_and_the_value():
    report = qc.run_checks(qc.QCGraph.from_turtle(FIXTURES / "band-gap.ttl"), QC_DIR, only={"band-gap"})
    (p,) = report.problems
    assert "band:total-b12-deficient" in p.entity + p.message
    assert "band:total-b12-indeterminate" in p.message
    assert "180" in p.message


def test_owl_inconsistency_names_the_individual_and_the_axiom():
    report = qc.run_checks(qc.QCGraph.from_turtle(FIXTURES / "owl-inconsistent.ttl"), QC_DIR,
                           only={"owl-inconsistent"}, reasoner=_STUB["owl-inconsistent"])
    (p,) = report.problems
    assert p.entity == "b12:qcRoute"
    assert "b12:QcInjectedRoute DisjointWith b12:QcOralRoute" in p.message


def test_cofiring_on_a_subset_of_cases():
    from reasoner.api import default_kb

    severe = """
ex:b12 a b12:TotalB12Result ; b12:value 150 ; b12:unit "ng/L" ; b12:date "2026-05-20"^^xsd:date .
ex:ax a b12:Ataxia ; b12:onset "2026-04-01"^^xsd:date .
"""
    plain = """
ex:b12 a b12:TotalB12Result ; b12:value 150 ; b12:unit "ng/L" ; b12:date "2026-04-20"^^xsd:date .
"""
    cases = [{"label": "severe", "turtle": severe, "as_of": "2026-06-01"},
             {"label": "plain", "turtle": plain, "as_of": "2026-05-01"},
             {"label": "broken", "turtle": "ex:x a b12:TotalB12Result ; b12:value", "as_of": "2026-06-01"},
             {"label": "severe again", "turtle": severe, "as_of": "2026-06-01"}]
    failures = []
    pairs = qc.cofiring_pairs(ROOT, default_kb(), cases, examples=False, failures=failures)
    assert [label for label, _ in failures] == ["broken"]
    assert pairs[("TX-IM-SEVERE-SCHEDULE", "TX-NEURO-LOADING")] == ("severe", 2)
    assert pairs[("TX-NONNEURO-LOADING", "TX-NONNEURO-MAINTENANCE")] == ("plain", 1)
    assert ("TX-NEURO-LOADING", "TX-NONNEURO-LOADING") not in pairs  # the cases do not leak into each other


# ---- broken copies of the project ---------------------------------------------------------------


@pytest.fixture
def project(tmp_path) -> Path:
    for d in ("ontology", "shapes", "queries", "docs", "examples"):
        shutil.copytree(ROOT / d, tmp_path / d)
    shutil.copytree(ROOT / "tests" / "cases", tmp_path / "tests" / "cases")
    return tmp_path


def test_statement_without_source_is_an_error(capsys, project):
    import rdflib

    path = project / "ontology" / "guideline.ttl"
    g = rdflib.Graph().parse(path, format="turtle")
    stmt = rdflib.URIRef("https://w3id.org/b12kg/statement/TX-NEURO-LOADING")
    cit = rdflib.URIRef("https://w3id.org/b12kg/citation")
    for c in list(g.objects(stmt, cit)):
        g.remove((stmt, cit, c))
        g.remove((c, None, None))
    path.write_text(g.serialize(format="turtle"), encoding="utf-8")
    code, data = run_json(capsys, "--root", project, *FAST)
    assert code == 1
    found = rows(data, "statement-missing-source", "ERROR")
    assert [p["entity"] for p in found] == ["stmt:TX-NEURO-LOADING"]


def test_gap_between_b12_bands_is_an_error(capsys, project):
    path = project / "ontology" / "parameters.ttl"
    text = path.read_text(encoding="utf-8")
    old = "b12:lowerInclusive 180.0 ; b12:upperInclusive 350.0"
    assert old in text
    path.write_text(text.replace(old, "b12:lowerExclusive 180.0 ; b12:upperInclusive 350.0"), encoding="utf-8")
    code, out, _ = run(capsys, "--root", project, *FAST)
    assert code == 1
    gap = [ln for ln in out.splitlines() if ln.startswith("ERROR") and "band-gap" in ln]
    assert len(gap) == 1, out
    assert "band:total-b12-deficient" in gap[0] and "band:total-b12-indeterminate" in gap[0] and "180" in gap[0]


def test_file_derived_problems(capsys, project):
    """What the QC graph learns from files: the IRIs a rule uses, unreadable case files, mentions."""
    rule = project / "queries" / "rules" / "catalog" / "TX-ORAL-MILD.rq"
    rule.write_text(rule.read_text(encoding="utf-8").replace("b12:PeripheralNeuropathyPresent", "b12:PeripheralNeuropathyPresnt"),
                    encoding="utf-8")
    (project / "tests" / "cases" / "TX-BROKEN.toml").write_text("[[case]]\nname = \n", encoding="utf-8")
    (project / "tests" / "cases" / "PAIN-CIPN-DULOXETINE.toml").unlink()
    for f in (project / "examples").glob("*.expected.json"):  # they name it too (in must_not)
        f.unlink()
    code, data = run_json(capsys, "--root", project, *FAST)
    assert code == 1
    undeclared = rows(data, "query-undeclared-iri", "ERROR")
    assert [p["entity"] for p in undeclared] == ["rule:TX-ORAL-MILD"]
    assert "b12:PeripheralNeuropathyPresnt" in undeclared[0]["message"]
    assert [p["entity"] for p in rows(data, "test-file-unreadable", "ERROR")] == ["tests/cases/TX-BROKEN.toml"]
    untested = {p["entity"] for p in rows(data, "catalog-untested", "ERROR")}
    assert untested == {"rule:PAIN-CIPN-DULOXETINE"}


@pytest.mark.skipif(not HAVE_JAVA, reason="HermiT needs Java")
def test_undeclared_cofiring_pairs_are_found(capsys, project):
    """Conflicts found, not only declared: without ontology/relations.ttl the two IM loading
    schedules co-fire in severe cases undeclared; a pair declared as a conflict is not reported."""
    (project / "ontology" / "relations.ttl").unlink()
    code, data = run_json(capsys, "--root", str(project), "--no-owl", "--check", "tx-cofire-undeclared")
    cofire = rows(data, "tx-cofire-undeclared", "WARN")
    assert any(p["entity"] == "stmt:TX-IM-SEVERE-SCHEDULE" and "stmt:TX-NEURO-LOADING" in p["message"]
               and "tests/cases/" in p["message"] for p in cofire), cofire
    assert not any(p["entity"] == "stmt:TX-NEURO-LOADING" and "stmt:TX-ORAL-MILD" in p["message"] for p in cofire)


def test_unsatisfiable_class_is_named_with_its_axioms(capsys, project):
    shutil.copy(FIXTURES / "owl-unsatisfiable.ttl", project / "ontology" / "zz-qc-unsatisfiable.ttl")
    code, data = run_json(capsys, "--root", project, "--no-cooccurrence")
    assert code == 1
    (p,) = rows(data, "owl-unsatisfiable", "ERROR")
    assert p["entity"] == "b12:QcImpossibleRoute"
    assert "b12:QcImpossibleRoute SubClassOf b12:QcOralRoute" in p["message"]
    assert "b12:QcInjectedRoute DisjointWith b12:QcOralRoute" in p["message"]


# ---- the command line ---------------------------------------------------------------------------


def test_table_is_the_default_with_a_summary_line(capsys):
    code, out, _ = run(capsys, *FAST)
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split()[:4] == ["SEVERITY", "CHECK", "ENTITY", "MESSAGE"]
    assert lines[-1].startswith("b12kg check: 0 errors,")
    body = [ln for ln in lines[1:] if ln[:5] in ("ERROR", "WARN ", "INFO ")]
    order = {"ERROR": 0, "WARN": 1, "INFO": 2}
    keys = [(order[ln.split()[0]], ln.split()[1], ln.split()[2]) for ln in body]
    assert keys == sorted(keys)
    assert any("--no-owl" in ln and "skipped" in ln for ln in body)


@pytest.mark.parametrize("fmt", ["tsv", "md", "json"])
def test_other_formats_and_output_file(capsys, tmp_path, fmt):
    out_file = tmp_path / f"report.{fmt}"
    code, out, _ = run(capsys, *FAST, "-f", fmt, "-o", out_file)
    assert code == 0 and out == ""
    text = out_file.read_text(encoding="utf-8")
    if fmt == "tsv":
        head, *body = text.splitlines()
        assert head == "severity\tcheck\tentity\tmessage"
        assert body and all(len(ln.split("\t")) == 4 for ln in body)
    elif fmt == "md":
        assert "| severity | check | entity | message |" in text and "**0 errors," in text
    else:
        data = json.loads(text)
        assert data["summary"]["errors"] == 0 and data["problems"]


def test_without_java_owl_is_skipped_with_an_info_row(capsys, monkeypatch):
    monkeypatch.setattr(qc, "java_available", lambda: False)
    code, data = run_json(capsys, "--no-cooccurrence")
    assert code == 0
    skipped = rows(data, "skipped", "INFO")
    assert any("Java" in p["message"] for p in skipped)
    assert "owl-unsatisfiable" not in data["summary"]["checks_run"]


@pytest.mark.parametrize("args", [["-f", "xml"], ["--root", "/nonexistent/b12kg"], ["--check", "no-such-check", *FAST]])
def test_usage_errors_exit_2(capsys, args):
    code, out, err = run(capsys, *args)
    assert code == 2
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in err
