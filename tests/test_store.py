"""The embedded store and cohort evaluation: load once, evaluate from the store, stream NDJSON/CSV,
use both cores, survive a failing patient, never duplicate on reload."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from reasoner import cohort, recommend
from reasoner.store import PatientStore
from tests.cli_helpers import one_line_error, run

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
    for url, why in [("http://[::1", "Invalid IPv6 URL"), ("http://localhost:99999/x", "Port out of range"), ("http:///x", "invalid URL")]:
        for command in (["load", EXAMPLES[0]], ["recommend", "--as-of", "2026-06-01"]):
            code, _, err = run(capsys, *command, "--store", url)
            assert code == 2 and why in one_line_error(err), (url, command, err)


# ---- staging: the on-disk grouping is split_by_patient's grouping -----------------------------

ODD = """@prefix b12: <https://w3id.org/b12kg/> .
@prefix ex: <https://example.org/odd/> .
ex:p1 a b12:Patient ; b12:hasRecord ex:r3 .
ex:r1 b12:subject ex:p1 ; b12:dose [ b12:value 5 ; b12:unit [ b12:code "mg" ] ] ; b12:relatedTo ex:p2 .
ex:r2 b12:subject ex:p1 ; b12:drug ex:shared .
ex:r3 b12:date "2026-01-01" ; b12:next ex:chain1 .
ex:chain1 b12:next ex:chain2 . ex:chain2 b12:next ex:chain1 .
ex:shared b12:label "shared by two patients" .
ex:p2 a b12:Patient ; b12:note ex:behindp2 .
ex:behindp2 b12:label "reached only from p2" .
ex:r4 b12:subject ex:p2 ; b12:drug ex:shared ; b12:subject ex:p3 .
ex:p3 b12:hasRecord ex:p1 .
ex:lonely b12:label "belongs to nobody" ; b12:next ex:lonely2 .
ex:lonely2 b12:label "nor this" .
ex:r5 b12:subject "not a node" ; b12:value 1 .
_:anon b12:subject ex:p4 .
_:anon b12:value 7 .
ex:p4 b12:sex b12:female .
"""


def _staged_groups(st, batch_size=2):
    groups: dict[str, list[str]] = {}
    for chunk, rows in st.groups(batch_size):
        for p in chunk:
            groups.setdefault(p, [])
        for p, triple in rows:
            groups[p].append(triple)
    return {p: sorted(v) for p, v in groups.items()}, sorted(st.unassigned())


def _split_groups(data):
    from reasoner.store import split_by_patient

    from reasoner.store import nt_term

    groups, unassigned = split_by_patient(data.quads)
    text = lambda q: f"{q.subject} {q.predicate} {nt_term(q.object)}"  # noqa: E731
    return {p: sorted(text(q) for q in v) for p, v in groups.items()}, sorted(text(q) for q in unassigned)


@pytest.mark.parametrize("batch_size", [1, 2, 200])
def test_staging_groups_exactly_as_split_by_patient(tmp_path, batch_size):
    from reasoner.load import load_sources
    from reasoner.store import Staging

    odd = tmp_path / "odd.ttl"
    odd.write_text(ODD, encoding="utf-8")
    fhir = ROOT / "tests" / "data" / "fhir"
    inputs = [str(odd), str(odd), str(ROOT / "tests" / "data" / "population.ttl"), *EXAMPLES[:3],
              str(fhir / "mixed.ndjson"), str(fhir / "unused.json")]
    data = load_sources(inputs)
    expected = _split_groups(data)
    assert expected[1], "the odd input has triples that belong to no patient"
    assert len(expected[0]) > 10
    with Staging.from_data(data) as st:
        assert _staged_groups(st, batch_size) == expected
    with Staging.from_sources(inputs) as st:  # RDF files streamed from disk, FHIR read by load_sources
        assert _staged_groups(st, batch_size) == expected
        assert sorted(u.resource for u in st.unused) == sorted(u.resource for u in data.unused)


def test_staged_rdf_errors_are_those_of_the_loader(tmp_path):
    from reasoner.errors import InputError
    from reasoner.load import load_sources
    from reasoner.store import Staging

    bad = tmp_path / "bad.ttl"
    bad.write_text("@prefix ex: <https://example.org/> .\nex:a ex:b ex:c .\nex:a ex:b ", encoding="utf-8")
    with pytest.raises(InputError) as loader:
        load_sources([str(bad)])
    with pytest.raises(InputError) as staged:
        Staging.from_sources([str(bad)])
    assert str(staged.value) == str(loader.value)
    for name, content in [("bin.ttl", b"\x00\x01 not rdf"), ("empty.ttl", b""), ("blank.nt", b" \n\n"),
                          ("latin1.ttl", "<https://example.org/a> <https://example.org/b> \"caf\xe9\" .".encode("latin-1"))]:
        f = tmp_path / name
        f.write_bytes(content)
        with pytest.raises(InputError) as loader:
            load_sources([str(f)])
        with pytest.raises(InputError) as staged:
            Staging.from_sources([str(f)])
        assert str(staged.value) == str(loader.value)


def test_staging_reads_a_bom_and_blank_nodes_as_the_loader_does(tmp_path):
    from reasoner.load import load_sources
    from reasoner.store import Staging

    f = tmp_path / "bom.ttl"
    f.write_bytes(b"\xef\xbb\xbf" + ODD.encode("utf-8"))
    g = tmp_path / "plain.ttl"
    g.write_text(ODD, encoding="utf-8")
    for path in (f, g):
        expected = _split_groups(load_sources([str(path)]))
        with Staging.from_sources([str(path)]) as st:
            assert _staged_groups(st) == expected


def test_staging_leaves_nothing_on_disk(tmp_path, monkeypatch):
    from reasoner.store import Staging

    monkeypatch.setenv("SQLITE_TMPDIR", str(tmp_path))
    with Staging.from_sources(EXAMPLES) as st:
        assert st.patient_count() == len(EXAMPLES)
        assert list(tmp_path.iterdir()) == []  # the database file is already unlinked


TRIPLE_TERMS = """@prefix b12: <https://w3id.org/b12kg/> .
@prefix ex: <https://example.org/> .
@prefix xsd: <http://www.w3.org/2001/XMLSchema#> .
ex:p1 a b12:Patient ; b12:birthDate "1960-01-01"^^xsd:date .
ex:r1 a b12:TotalB12Result ; b12:subject ex:p1 ; b12:value 150 ; b12:unit "ng/L" ;
      b12:date "2026-05-20"^^xsd:date ; ex:source <<( ex:lab ex:says _:x )>> .
ex:r2 b12:subject <<( ex:a ex:b "c" )>> .
"""


def test_rdf12_triple_terms_are_staged_and_stored(tmp_path, capsys):
    """str() of a pyoxigraph triple term is not N-Triples; staging writes <<( … )>> (was a
    traceback in load and an error entry in cohort runs). A triple term is no patient."""
    import pyoxigraph as ox

    from reasoner.load import load_sources
    from reasoner.store import Staging

    f = tmp_path / "terms.ttl"
    f.write_text(TRIPLE_TERMS, encoding="utf-8")
    expected = _split_groups(load_sources([str(f)]))
    assert list(expected[0]) == ["https://example.org/p1"] and len(expected[1]) == 1
    with Staging.from_sources([str(f)]) as st:
        assert _staged_groups(st) == expected
    store = tmp_path / "store"
    code, _, err = run(capsys, "load", f, "--store", store)
    assert code == 0 and "loaded 1 patients" in err, err
    terms = [q.object for q in PatientStore(store).store.quads_for_pattern(None, ox.NamedNode("https://example.org/source"), None, None)]
    assert len(terms) == 1 and isinstance(terms[0], ox.Triple) and str(terms[0].predicate) == "<https://example.org/says>"
    code, out, _ = run(capsys, "recommend", f, "--as-of", "2026-06-01", "-f", "ndjson")
    lines = [json.loads(line) for line in out.splitlines()]
    assert [p["patient"] for p in lines] == ["https://example.org/p1", ""]
    assert not any("error" in p for p in lines)
    assert "DX-B12-DEFICIENT" in {i["id"] for i in lines[0]["findings"]}
    # b12kg query writes triple terms as <<( … )>> in tables and in CONSTRUCT output
    for form in ("SELECT ?o", "CONSTRUCT { ?s ?p ?o }"):
        q = tmp_path / "terms.rq"
        q.write_text(f"{form} WHERE {{ ?s ?p ?o . FILTER(isTriple(?o)) }}", encoding="utf-8")
        code, out, err = run(capsys, "query", q, "--store", store)
        assert code == 0, err
        assert "<<( <https://example.org/a> <https://example.org/b> \"c\" )>>" in out, out
