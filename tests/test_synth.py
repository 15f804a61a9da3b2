"""The synthetic cohort generator (reasoner/synth.py, `b12kg synth`): deterministic, streamed,
valid Turtle / N-Triples / FHIR NDJSON that the reasoner reads without input problems, and a
cohort in which every one of the 64 catalog identifiers fires."""
from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import inspect
import io
import re
import subprocess
import sys
import tracemalloc
from pathlib import Path

import pyoxigraph as ox
import pytest

from reasoner import recommend, synth, synth_cli
from reasoner.errors import UsageError
from reasoner.load import load_sources, parse_rdf

ROOT = Path(__file__).resolve().parent.parent
AS_OF = synth.DEFAULT_AS_OF
#: Patients per recommend() call in the coverage test: the pipeline is fastest per patient in
#: batches of about a hundred (some rules and shapes grow faster than linearly with the batch).
BATCH = 100


def catalog_ids() -> set[str]:
    text = (ROOT / "docs" / "guideline" / "CATALOG.md").read_text(encoding="utf-8")
    return set(re.findall(r"^\| ([A-Z]+-[A-Z0-9]+(?:-[A-Z0-9]+)*) \|", text, re.M))


def turtle(n: int, seed: int = 1, **kw) -> str:
    buf = io.StringIO()
    synth.write("turtle", n, seed, AS_OF, buf, **kw)
    return buf.getvalue()


def evaluate(patients: list[synth.Patient], seed: int = 1):
    buf = io.StringIO()
    synth.write_turtle(iter(patients), buf, seed=seed, as_of=AS_OF)
    return recommend(parse_rdf("synth.ttl", buf.getvalue().encode("utf-8"), fmt="turtle"), AS_OF)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="b12kg")
    sub = p.add_subparsers(dest="command")
    synth_cli.add_parser(sub)
    return p


def run_cli(*argv: str) -> int:
    args = parser().parse_args(["synth", *argv])
    return args.handler(args)


class _Sink:
    """A write-only text stream that keeps nothing but a byte count."""

    def __init__(self):
        self.chars = 0

    def write(self, text: str) -> int:
        self.chars += len(text)
        return len(text)


def _digest(directory: Path) -> str:
    h = hashlib.sha256()
    for f in sorted(directory.iterdir()):
        h.update(f.name.encode() + b"\0" + f.read_bytes())
    return h.hexdigest()


# --------------------------------------------------------------------------------------------


def test_catalog_has_64_identifiers():
    assert len(catalog_ids()) == 64


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path):
    a, b, c = turtle(300, 1), turtle(300, 1), turtle(300, 2)
    assert a == b
    assert a != c
    # not only the IRIs differ: the clinical content does
    strip = lambda t: re.sub(r"syn:p\d+(-[\w-]+)?|synth/s\d+/", "", t)  # noqa: E731
    assert strip(a) != strip(c)
    for fmt in ("ntriples",):
        x, y = io.StringIO(), io.StringIO()
        synth.write(fmt, 100, 7, AS_OF, x)
        synth.write(fmt, 100, 7, AS_OF, y)
        assert x.getvalue() == y.getvalue()
    synth.write("fhir-ndjson", 100, 7, AS_OF, tmp_path / "a")
    synth.write("fhir-ndjson", 100, 7, AS_OF, tmp_path / "b")
    synth.write("fhir-ndjson", 100, 8, AS_OF, tmp_path / "c")
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b") != _digest(tmp_path / "c")


def test_a_patient_does_not_depend_on_the_cohort_size():
    small = list(synth.generate(30, 3))
    assert synth.generate_patient(17, 3) == small[16]
    big = list(synth.generate(60, 3))
    assert [p.records for p in big[:30]] == [p.records for p in small]


def test_generator_streams_in_little_memory():
    gen = synth.generate(20_000, 1)
    assert inspect.isgenerator(gen)
    gen.close()
    # tracemalloc slows allocation-heavy code about 15-fold, so it watches 2,000 patients: the
    # writer's peak stays far below what holding them would take (about 4 MB)
    sink = _Sink()
    tracemalloc.start()
    try:
        triples = synth.write_turtle(synth.generate(2_000, 1), sink, seed=1, as_of=AS_OF)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1024 * 1024, f"peak {peak / 2**20:.2f} MiB"
    assert 30 <= triples / 2_000 <= 40, triples / 2_000  # about 30-40 triples per patient
    # 20,000 patients in a fresh process: the resident set grows by less than 50 MB
    code = (
        "import resource\n"
        "from reasoner import synth\n"
        "class Sink:\n"
        "    def write(self, text): return len(text)\n"
        "base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "triples = synth.write_turtle(synth.generate(20000, 1), Sink(), seed=1, as_of=synth.DEFAULT_AS_OF)\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base, triples)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr
    grown_kib, triples = map(int, done.stdout.split())
    assert grown_kib < 50 * 1024, f"grew by {grown_kib / 1024:.1f} MiB"
    assert 30 <= triples / 20_000 <= 40


def test_turtle_and_ntriples_parse_to_the_same_graph():
    n = 200
    text = turtle(n)
    store = ox.Store()
    store.bulk_load(text.encode("utf-8"), format=ox.RdfFormat.TURTLE)
    nt = io.StringIO()
    count = synth.write("ntriples", n, 1, AS_OF, nt)
    from_nt = {ox.Triple(q.subject, q.predicate, q.object)
               for q in ox.parse(nt.getvalue().encode("utf-8"), format=ox.RdfFormat.N_TRIPLES)}
    from_ttl = {ox.Triple(q.subject, q.predicate, q.object) for q in store}
    assert from_ttl == from_nt
    assert len(from_nt) == count
    rows = list(store.query("""
        PREFIX b12: <https://w3id.org/b12kg/>
        SELECT (COUNT(?p) AS ?n) WHERE { ?p a b12:Patient }"""))
    assert int(rows[0]["n"].value) == n
    # every record belongs to a patient of the cohort; no date lies after the as-of date
    late = list(store.query(f"""
        PREFIX b12: <https://w3id.org/b12kg/>
        PREFIX xsd: <http://www.w3.org/2001/XMLSchema#>
        SELECT ?s ?d WHERE {{ ?s ?p ?d . FILTER(datatype(?d) = xsd:date && ?d > "{AS_OF.isoformat()}"^^xsd:date) }}"""))
    assert late == []
    orphans = list(store.query("""
        PREFIX b12: <https://w3id.org/b12kg/>
        SELECT ?r WHERE { ?r b12:subject ?p . FILTER NOT EXISTS { ?p a b12:Patient } }"""))
    assert orphans == []


def test_boundary_values_and_units_occur():
    text = turtle(3000)
    for value in ("179", "180", "350", "351"):
        assert re.search(rf'b12:value {value} ; b12:unit "(ng/L|pg/mL)"', text), value
    for unit in ("ng/L", "pg/mL", "pmol/L", "nmol/L", "umol/L"):
        assert f'b12:unit "{unit}"' in text
    for freq in ("alternateDays", "threeTimesWeekly", "every2Months", "monthly", "daily", "once"):
        assert f"b12:frequency b12:{freq}" in text
    for drug in ("hydroxocobalamin", "cyanocobalamin", "methylcobalamin", "folicAcid", "metformin"):
        assert f"b12:drug b12:{drug}" in text
    assert "b12:route b12:sublingual" in text and "b12:resectedLengthCm" in text
    assert "b12:code sct:" in text and "b12:drug rxnorm:" in text  # records named by code


def test_fhir_ndjson_is_read_whole_by_the_importer(tmp_path):
    out = tmp_path / "export"
    counts = synth.write("fhir-ndjson", 200, 1, AS_OF, out)
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{t}.ndjson" for t in synth.FHIR_FILES)
    lines = sum(len(p.read_text(encoding="utf-8").splitlines()) for p in out.iterdir())
    assert lines == sum(counts.values())
    assert counts["Patient"] == 200 and all(counts[t] > 0 for t in synth.FHIR_FILES)
    data = load_sources([str(out)])
    unused = [u for u in data.unused if not u.note]
    assert data.resources_read == lines
    assert len(data.used) + len(unused) == data.resources_read
    assert data.unused == [], data.unused[:5]  # well-formed: nothing unused, not even a note


def test_fhir_and_turtle_give_the_same_report(tmp_path):
    n = 100
    ttl = tmp_path / "cohort.ttl"
    ttl.write_text(turtle(n), encoding="utf-8")
    synth.write("fhir-ndjson", n, 1, AS_OF, tmp_path / "export")
    from_ttl = recommend(str(ttl), AS_OF)
    from_fhir = recommend(str(tmp_path / "export"), AS_OF)
    a = {p["patient"].rsplit("/", 1)[1]: from_ttl.ids(p["patient"]) for p in from_ttl.patients}
    b = {p["patient"].rsplit("-", 1)[1]: from_fhir.ids(p["patient"]) for p in from_fhir.patients}
    assert len(a) == n and a == b
    for report in (from_ttl, from_fhir):
        assert all(not p["input_problems"] and not p["unused"] for p in report.patients)


def test_each_coverage_profile_fires_what_it_names():
    k = 25
    patients = [synth.generate_patient((i + 1) * k, 5, AS_OF, coverage_every=k) for i in range(len(synth.COVERAGE_PROFILES))]
    assert [p.profile for p in patients] == [label for label, _ in synth.COVERAGE_PROFILES]
    report = evaluate(patients, seed=5)
    known = catalog_ids()
    ns = synth.cohort_namespace(5)
    for p in patients:
        named = set(re.findall(r"\b[A-Z]+-[A-Z0-9]+(?:-[A-Z0-9]+)+\b", p.profile))
        assert named and named <= known, p.profile
        fired = report.ids(ns + p.local)
        assert named <= fired, (p.profile, named - fired)


def test_cohort_fires_every_catalog_identifier():
    n = 500  # with the default coverage stratum (every 25th patient) every profile appears
    patients = synth.generate(n, 1, AS_OF)
    fired: dict[str, int] = {}
    batch: list[synth.Patient] = []
    for p in patients:
        batch.append(p)
        if len(batch) == BATCH:
            _collect(evaluate(batch), fired)
            batch = []
    if batch:
        _collect(evaluate(batch), fired)
    missing = catalog_ids() - set(fired)
    assert not missing, f"never fired in {n} patients: {sorted(missing)}"


def _collect(report, fired: dict[str, int]) -> None:
    for p in report.patients:
        assert not p["input_problems"] and not p["unused"], (p["patient"], p["input_problems"], p["unused"])
        for i in report.ids(p["patient"]):
            fired[i] = fired.get(i, 0) + 1


# --------------------------------------------------------------------------------------------
# the command


def test_cli_writes_turtle_ntriples_and_fhir(tmp_path, capsys):
    assert run_cli("--n", "20", "--seed", "4", "-o", str(tmp_path / "c.ttl")) == 0
    assert run_cli("--n", "20", "--seed", "4", "-o", str(tmp_path / "c.nt")) == 0
    assert run_cli("--n", "20", "--seed", "4", "--format", "fhir-ndjson", "-o", str(tmp_path / "fhir")) == 0
    assert run_cli("--n", "20", "--seed", "4") == 0  # stdout
    out = capsys.readouterr().out
    assert out == (tmp_path / "c.ttl").read_text(encoding="utf-8")
    assert out.startswith("# b12kg synthetic cohort: seed 4")
    nt = (tmp_path / "c.nt").read_text(encoding="utf-8")
    assert nt.startswith("<https://example.org/b12kg/synth/s4/p000001> ")
    assert (tmp_path / "fhir" / "Patient.ndjson").read_text(encoding="utf-8").count("\n") == 20
    assert run_cli("--n", "20", "--seed", "4", "-o", str(tmp_path / "fhir2") + "/") == 0  # a directory: FHIR
    assert _digest(tmp_path / "fhir2") == _digest(tmp_path / "fhir")
    assert run_cli("--n", "5", "--as-of", "2024-01-31", "-o", str(tmp_path / "old.ttl")) == 0
    dates = re.findall(r'"(\d{4}-\d{2}-\d{2})"\^\^xsd:date', (tmp_path / "old.ttl").read_text(encoding="utf-8"))
    assert dates and max(dates) <= "2024-01-31"


def test_cli_usage_errors(tmp_path):
    with pytest.raises(UsageError):
        run_cli("--n", "5", "--format", "fhir-ndjson")  # a directory is needed
    (tmp_path / "file").write_text("x")
    with pytest.raises(UsageError):
        run_cli("--n", "5", "--format", "fhir-ndjson", "-o", str(tmp_path / "file"))
    with pytest.raises(UsageError):
        run_cli("--n", "5", "--as-of", "yesterday")
    with pytest.raises(UsageError):
        run_cli("--n", "-1")


def test_registered_in_the_main_cli_when_listed():
    from reasoner import cli

    if "reasoner.synth_cli" not in cli.COMMAND_MODULES:
        pytest.skip("reasoner.synth_cli is not yet in reasoner.cli.COMMAND_MODULES")
    args = cli.build_parser().parse_args(["synth", "--n", "3"])
    assert args.handler is synth_cli.run
    assert dt.date.fromisoformat(args.as_of) == AS_OF
