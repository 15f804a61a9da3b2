"""The fast SHACL-SPARQL validator (Oxigraph) and pySHACL (the reference engine) give identical
results: on the examples, the population, bad input, and a sample of the catalog cases merged
into one multi-patient graph."""
from __future__ import annotations

import datetime as dt
import tomllib
from collections import defaultdict
from pathlib import Path


from reasoner import pipeline as P
from reasoner.load import load_sources, parse_rdf
from reasoner.validate import run_engine
from tests.patients import patient_turtle

ROOT = Path(__file__).resolve().parents[1]


def evaluated(kb, data, as_of):
    ev = P.new_evaluation(kb, data, as_of)
    P.exclude_records(ev)
    P.run_strata(ev, -(10**6), 0)
    P.classify_stage(ev)
    P.units_stage(ev)
    P.run_strata(ev, 0, 90)
    return ev


def assert_parity(ev):
    fast = run_engine(ev, "fast")
    reference = run_engine(ev, "pyshacl")
    assert fast == reference
    return fast


def test_parity_examples_and_population(kb):
    files = [str(p) for p in sorted((ROOT / "examples").glob("*.ttl"))] + [str(ROOT / "tests" / "data" / "population.ttl")]
    results = assert_parity(evaluated(kb, load_sources(files), dt.date(2026, 6, 1)))
    assert {r.identifier for r in results} >= {"SAFETY-FOLATE-WITHOUT-B12", "SAFETY-ORAL-IN-MALABSORPTION"}


def test_parity_bad_input(kb):
    text = """@prefix b12: <https://w3id.org/b12kg/> . @prefix ex: <https://example.org/bad/> . @prefix xsd: <http://www.w3.org/2001/XMLSchema#> .
ex:p a b12:Patient ; b12:sex ex:robot ; b12:birthDate "yesterday" .
ex:b a b12:TotalB12Result ; b12:subject ex:p ; b12:unit "ng/L", "pg/mL" ; b12:date "2026-05-01"^^xsd:date .
ex:v a b12:TotalB12Result ; b12:subject ex:p ; b12:value 150, 160 ; b12:date "2026-05-01"^^xsd:date .
ex:u a b12:TotalB12Result ; b12:subject ex:p ; b12:value 150 ; b12:unit "furlong" ; b12:date "2026-05-01" .
ex:m a b12:MedicationUse ; b12:subject ex:p, ex:q ; b12:drug b12:metformin ; b12:dose "lots" ; b12:startDate "2026-03-01"^^xsd:date ; b12:endDate "2026-01-01"^^xsd:date .
ex:n a b12:MedicationUse ; b12:drug b12:folicAcid ; b12:dose 1 ; b12:doseUnit "parsec" ; b12:startDate "2026-09-01"^^xsd:date .
"""
    results = assert_parity(evaluated(kb, parse_rdf("bad.ttl", text.encode()), dt.date(2026, 6, 1)))
    ids = {r.identifier for r in results}
    assert ids >= {"INPUT-LAB-VALUE", "INPUT-LAB-UNIT", "INPUT-UNIT-CONVERTIBLE", "INPUT-LAB-DATE", "INPUT-MEDICATION",
                   "INPUT-DOSE-UNIT", "INPUT-DOSE-CONVERTIBLE", "INPUT-END-BEFORE-START", "INPUT-FUTURE-DATE",
                   "INPUT-RECORD-SUBJECT", "INPUT-PATIENT"}


def test_parity_catalog_case_sample(kb):
    groups: dict[str, list[str]] = defaultdict(list)
    cases = []
    for f in sorted((ROOT / "tests" / "cases").glob("*.toml")):
        for i, case in enumerate(tomllib.loads(f.read_text(encoding="utf-8")).get("case", [])):
            cases.append((f.stem, i, case))
    for n, (stem, i, case) in enumerate(cases[::4]):
        ns = f"https://example.org/parity/{stem}/{i}/"
        ttl = patient_turtle(f"@prefix exq: <{ns}> .\n" + case["turtle"].replace("ex:", "exq:"), patient=ns + "p")
        groups[case.get("as_of", "2026-06-01")].append(ttl)
    assert sum(len(v) for v in groups.values()) > 50
    for as_of, ttls in groups.items():
        data = load_sources([])
        for k, ttl in enumerate(ttls):
            one = parse_rdf(f"case{k}.ttl", ttl.encode())
            data.quads.extend(one.quads)
        assert_parity(evaluated(kb, data, dt.date.fromisoformat(as_of)))


def test_parity_synthetic_cohort_1000(kb, tmp_path):
    """The 1,000-patient synthetic cohort (b12kg synth --seed 1), in batches of 100 as the cohort
    path evaluates it: the fast validator and pySHACL agree on every result."""
    from reasoner.cli import main
    from reasoner.store import split_by_patient

    cohort = tmp_path / "cohort.ttl"
    assert main(["synth", "--n", "1000", "--seed", "1", "-o", str(cohort)]) == 0
    data = load_sources([str(cohort)])
    groups, _ = split_by_patient(data.quads)
    patients = sorted(groups)
    assert len(patients) == 1000
    total = 0
    for i in range(0, len(patients), 100):
        batch = load_sources([])
        batch.quads = [q for p in patients[i:i + 100] for q in groups[p]]
        total += len(assert_parity(evaluated(kb, batch, dt.date(2026, 6, 1))))
    assert total > 100


# ---- OWL classification: the compiled fast path and the reference reasoner -----------------------


def _classified_both(kb, data, as_of):
    """Classify the same facts with the compiled TBox and with ``reasonable``; return both sets."""
    import pyoxigraph as ox

    from reasoner.classify import classify, classify_fast
    from reasoner.vocab import G_DATA, G_INFERRED

    ev = P.new_evaluation(kb, data, as_of)
    P.exclude_records(ev)
    P.run_strata(ev, -(10**6), 0)
    quads = ev.backend.quads(graph=G_DATA)
    nodes = {q.subject.value for q in quads if isinstance(q.subject, ox.NamedNode)}
    facts = [q.triple for q in quads] + [q.triple for q in ev.backend.quads(graph=G_INFERRED)]
    return set(classify_fast(kb.compiled_tbox, kb.tbox_rdflib, facts, nodes)), set(classify(kb.tbox_rdflib, facts, nodes))


def test_classify_parity_examples_and_every_case(kb):
    """Every example and every catalog case (merged per as-of date): identical inferred triples."""
    assert kb.compiled_tbox.supported, "the ontology uses an OWL construct the compiled classifier lacks"
    files = [str(p) for p in sorted((ROOT / "examples").glob("*.ttl"))] + [str(ROOT / "tests" / "data" / "population.ttl")]
    fast, reference = _classified_both(kb, load_sources(files), dt.date(2026, 6, 1))
    assert fast == reference and len(fast) > 300
    groups: dict[str, list[str]] = defaultdict(list)
    for f in sorted((ROOT / "tests" / "cases").glob("*.toml")):
        for i, case in enumerate(tomllib.loads(f.read_text(encoding="utf-8")).get("case", [])):
            ns = f"https://example.org/owl-parity/{f.stem}/{i}/"
            ttl = patient_turtle(f"@prefix exq: <{ns}> .\n" + case["turtle"].replace("ex:", "exq:"), patient=ns + "p")
            groups[case.get("as_of", "2026-06-01")].append(ttl)
    assert sum(len(v) for v in groups.values()) > 500
    for as_of, ttls in groups.items():
        data = load_sources([])
        for k, ttl in enumerate(ttls):
            data.quads.extend(parse_rdf(f"case{k}.ttl", ttl.encode()).quads)
        fast, reference = _classified_both(kb, data, dt.date.fromisoformat(as_of))
        assert fast == reference


def test_classify_parity_synthetic_cohort(kb, tmp_path):
    from reasoner.cli import main

    cohort = tmp_path / "cohort.ttl"
    assert main(["synth", "--n", "1000", "--seed", "3", "-o", str(cohort)]) == 0
    fast, reference = _classified_both(kb, load_sources([str(cohort)]), dt.date(2026, 6, 1))
    assert fast == reference and len(fast) > 10000


def test_classify_fast_falls_back_on_schema_triples(kb):
    """Patient data carrying OWL/RDFS vocabulary is classified by the reference reasoner: the
    compiled TBox would miss what such triples add."""
    text = """@prefix b12: <https://w3id.org/b12kg/> . @prefix ex: <https://example.org/s/> .
@prefix rdfs: <http://www.w3.org/2000/01/rdf-schema#> .
ex:p a b12:Patient . ex:Odd rdfs:subClassOf b12:Patient . ex:q a ex:Odd ."""
    data = parse_rdf("schema.ttl", text.encode())
    triples = [(q.subject.value, q.predicate.value, q.object.value) for q in data.quads]
    assert not kb.compiled_tbox.accepts(triples)
    fast, reference = _classified_both(kb, data, dt.date(2026, 6, 1))
    assert fast == reference
    assert any(t.subject.value.endswith("/q") and t.object.value.endswith("Patient") for t in fast)


def test_guards_do_not_change_reports(kb, tmp_path, monkeypatch):
    """Skipping rules and shape queries whose guard classes have no instance (reasoner.guard)
    gives the same report as running every query: on the examples one by one, and on a
    500-patient synthetic cohort evaluated at once."""
    from reasoner.cli import main
    from reasoner.report import to_dict

    guarded = [r for r in kb.rules if kb.rule_guards[r.id]]
    assert len(guarded) > 30
    cohort = tmp_path / "cohort.ttl"
    assert main(["synth", "--n", "500", "--seed", "5", "-o", str(cohort)]) == 0
    inputs = [[str(p)] for p in sorted((ROOT / "examples").glob("*.ttl"))] + [[str(cohort)]]

    def reports():
        return [to_dict(P.evaluate(kb, load_sources(files), dt.date(2026, 6, 1))) for files in inputs]

    with_guards = reports()
    monkeypatch.setattr(P, "USE_GUARDS", False)
    assert reports() == with_guards
