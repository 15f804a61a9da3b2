"""The informaticians' queries (queries/*.rq), each run on a small multi-patient graph."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from reasoner import recommend
from reasoner.query import run_query_file

ROOT = Path(__file__).resolve().parents[1]
POP = "https://example.org/b12kg/population/"


@pytest.fixture(scope="module")
def population(kb):
    return recommend([ROOT / "tests" / "data" / "population.ttl"], "2026-06-01", kb=kb)


@pytest.fixture(scope="module")
def examples(kb):
    return recommend(sorted((ROOT / "examples").glob("*.ttl")), "2026-06-01", kb=kb)


def rows(report, name):
    out = run_query_file(report, str(ROOT / "queries" / name), "tsv").splitlines()
    header = out[0].split("\t")
    return [dict(zip(header, line.split("\t"))) for line in out[1:]]


def patients(report, name):
    return {r["patient"] for r in rows(report, name)}


def test_every_query_has_a_question_header():
    for q in (ROOT / "queries").glob("*.rq"):
        assert q.read_text().startswith("# Question:"), q.name


def test_metformin_without_b12_result(population):
    assert patients(population, "metformin-without-b12-result.rq") == {POP + "a"}


def test_neuropathy_indeterminate_no_mma(population):
    assert patients(population, "neuropathy-indeterminate-b12-no-mma.rq") == {POP + "d"}


def test_folic_acid_without_b12(population):
    assert patients(population, "folic-acid-without-b12.rq") == {POP + "g"}


def test_violations(population):
    found = {(r["patient"], r["id"]) for r in rows(population, "violations.rq")}
    assert (POP + "g", "SAFETY-FOLATE-WITHOUT-B12") in found
    assert not any(p == POP + "f" and i == "SAFETY-FOLATE-WITHOUT-B12" for p, i in found)


def test_recommendations_with_sources(population):
    rs = rows(population, "recommendations-with-sources.rq")
    mine = [r for r in rs if r["patient"] == POP + "a" and r["id"] == "DX-ORDER-B12"]
    assert mine and all(r["document"] for r in mine)


def test_monitoring_plan(examples):
    plan = rows(examples, "monitoring-plan.rq")
    assert {r["id"] for r in plan if r["patient"].endswith("case45/patient")} >= {"MON-POTASSIUM-48H", "MON-NEURO-EXAM-WEEKLY"}
    assert all(r["id"].startswith("MON-") for r in plan)


def test_facts_behind_recommendation(examples):
    facts = rows(examples, "facts-behind-recommendation.rq")
    case45 = {r["fact"] for r in facts if r["patient"].endswith("case45/patient")}
    assert "https://example.org/b12kg/case45/paraesthesia" in case45


def test_source_conflicts(examples):
    sides = rows(examples, "source-conflicts.rq")
    case45 = [r for r in sides if r["patient"].endswith("case45/patient") and r["id"] == "CONFLICT-NEURO-LOADING"]
    assert len(case45) >= 2, "both sides of the conflict are listed"
    assert all(r["documents"] for r in case45)


# ---- refused before the engine sees the text: b12kg query never reaches the network ----------

@pytest.mark.parametrize("text", [
    "SELECT * { SERVICE <http://127.0.0.1:9/sparql> { ?s ?p ?o } }",
    "select * { service silent <http://127.0.0.1:9/sparql> { ?s ?p ?o } }",
    "SELECT * { ?s ?p ?o . SERVICE<http://127.0.0.1:9/sparql>{ ?s ?p ?o } }",
    # an escape inside an IRI once split it, so the '#' after it hid the rest of the line
    "PREFIX ex: <http://example.org/\\u0041#> SELECT * WHERE { SERVICE <http://127.0.0.1:9/sparql> { ?s ?p ?o } }",
    "SELECT * { ?s ?p ?o .SERVICE <http://127.0.0.1:9/sparql> { ?s ?p ?o } }",
])
def test_service_is_refused(examples, tmp_path, text):
    from reasoner.errors import InputError

    q = tmp_path / "federated.rq"
    q.write_text(text, encoding="utf-8")
    with pytest.raises(InputError, match="SERVICE .* refused"):
        run_query_file(examples, str(q))


def test_service_in_a_comment_or_string_is_not_refused(examples, tmp_path):
    q = tmp_path / "near_miss.rq"
    q.write_text('# no SERVICE here\nSELECT ?x { BIND("SERVICE <http://127.0.0.1:9/>" AS ?x) }', encoding="utf-8")
    assert "SERVICE <http://127.0.0.1:9/>" in run_query_file(examples, str(q))


def test_service_inside_an_escaped_iri_or_a_local_name_is_not_refused(examples, tmp_path):
    q = tmp_path / "near_miss.rq"
    q.write_text('PREFIX fhir: <http://hl7.org/fhir/>\n'
                 'SELECT ?x { BIND(<http://x/\\u0041/service> AS ?x) FILTER(?x != fhir:service) }', encoding="utf-8")
    assert "http://x/A/service" in run_query_file(examples, str(q))


def test_ask_answers_true_or_false(examples, tmp_path):
    q = tmp_path / "ask.rq"
    q.write_text("ASK { ?p a b12:Patient }", encoding="utf-8")
    assert run_query_file(examples, str(q)) == "true\n"
    q.write_text("ASK { ?p a b12:NoSuchClass }", encoding="utf-8")
    assert run_query_file(examples, str(q)) == "false\n"


def test_update_and_engine_failures_are_one_line_errors(tmp_path, capsys):
    from tests.cli_helpers import one_line_error, run

    example = ROOT / "examples" / "case01-b12-179-metformin-deficient.ttl"
    cases = {
        "update.rq": ("INSERT DATA { <urn:a> <urn:b> <urn:c> }", "INSERT is an update"),
        "service.rq": ("SELECT * { SERVICE <http://127.0.0.1:9/sparql> { ?s ?p ?o } }", "SERVICE"),
        "syntax.rq": ("SELECT * { ?s ?p }", "SPARQL syntax error"),
        "latin1.rq": (b"SELECT * { ?s ?p \"\xe9\" }", "not UTF-8"),
    }
    fifo = tmp_path / "fifo.rq"
    os.mkfifo(fifo)  # never opened for writing: reading it would block for ever
    code, _, err = run(capsys, "query", fifo, example, "--as-of", "2026-06-01")
    assert code == 2 and "FIFO" in one_line_error(err)
    for name, (text, expected) in cases.items():
        q = tmp_path / name
        q.write_bytes(text if isinstance(text, bytes) else text.encode())
        code, out, err = run(capsys, "query", q, example, "--as-of", "2026-06-01")
        assert code == 2, (name, out, err)
        line = one_line_error(err)
        assert name in line and expected in line, line


def test_a_long_chain_of_operators_is_refused_before_the_engine(examples, tmp_path):
    """10,000 chained operators crash pyoxigraph (a segfault, no message); over 2,000 are refused."""
    from reasoner.errors import InputError

    q = tmp_path / "chain.rq"
    for chain in ("+".join(["1"] * 10000), "-".join(["1"] * 10000), " && ".join(["true"] * 5000)):
        q.write_text(f"SELECT ({chain} AS ?x) {{}}", encoding="utf-8")
        with pytest.raises(InputError, match="more than 2000 operators"):
            run_query_file(examples, str(q))
    q.write_text("SELECT (" + "+".join(["1"] * 500) + " AS ?x) {}", encoding="utf-8")
    assert "500" in run_query_file(examples, str(q))
