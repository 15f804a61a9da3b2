"""The FHIR R4 importer: Bundles, single resources, Bulk Data NDJSON and folders of them give the
same report as the equivalent Turtle patient; every terminology binding maps; nothing read is lost;
bad input is one line and exit 2.

Reasoner runs are batched (one evaluation for many patients) to keep the suite fast.
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pyoxigraph as ox
import pytest

from reasoner import recommend
from reasoner.load import PatientData, load_sources
from tests.cli_helpers import one_line_error, run

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
FHIR_EXAMPLES = EXAMPLES / "fhir"
BULK = FHIR_EXAMPLES / "bulk"
ACCEPTANCE = ROOT / "tests" / "acceptance"
DATA = ROOT / "tests" / "data" / "fhir"
AS_OF = "2026-06-01"

B12 = "https://w3id.org/b12kg/"
RDF_TYPE = "http://www.w3.org/1999/02/22-rdf-syntax-ns#type"
PROV_DERIVED = "http://www.w3.org/ns/prov#wasDerivedFrom"
LOINC, SCT, RX, LOCAL, UCUM = ("http://loinc.org", "http://snomed.info/sct", "http://www.nlm.nih.gov/research/umls/rxnorm",
                               "https://w3id.org/b12kg/CodeSystem/local", "http://unitsofmeasure.org")


def case_of(path: Path) -> str:
    return path.name.split("-")[0]


def patient_of(data: PatientData) -> str:
    (p,) = {q.subject.value for q in data.quads if q.predicate.value == RDF_TYPE and q.object.value == B12 + "Patient"}
    return p


def triples(data: PatientData) -> set[tuple[str, str, str]]:
    return {(q.subject.value, q.predicate.value, q.object.value) for q in data.quads}


def accounted(data: PatientData) -> None:
    """Every record read is used or listed as unused (notes are about used records)."""
    unused = [u.resource for u in data.unused if not u.note]
    assert len(unused) == len(set(unused)), unused
    assert not set(unused) & set(data.used)
    assert {u.resource for u in data.unused if u.note} <= set(data.used)
    assert len(data.used) + len(unused) == data.resources_read, (len(data.used), unused, data.resources_read)


# ---------------------------------------------------------------------------------------------
# Examples: Turtle and FHIR give the same catalog identifiers; acceptance cases pass through FHIR
# ---------------------------------------------------------------------------------------------

TTL = sorted(EXAMPLES.glob("*.ttl"))
BUNDLES = sorted(FHIR_EXAMPLES.glob("*.fhir.json"))


@pytest.fixture(scope="module")
def reports(kb):
    """One evaluation each: all Turtle examples, all FHIR bundles (the acceptance bundles among them,
    byte for byte), the bulk export."""
    return {
        "turtle": recommend(TTL, AS_OF, kb=kb),
        "fhir": recommend(BUNDLES, AS_OF, kb=kb),
        "bulk": recommend([BULK], AS_OF, kb=kb),
    }


def test_every_turtle_example_has_a_fhir_twin():
    assert {case_of(p) for p in TTL} == {case_of(p) for p in BUNDLES}
    for f in ACCEPTANCE.glob("*.fhir.json"):  # the six acceptance bundles are shipped verbatim
        assert (FHIR_EXAMPLES / f.name).read_bytes() == f.read_bytes()


def test_turtle_and_fhir_give_the_same_identifiers(reports):
    turtle_patient = {case_of(p): patient_of(load_sources([str(p)])) for p in TTL}
    bulk_patients = {p["patient"] for p in reports["bulk"].patients}
    assert len(bulk_patients) >= 4
    seen_in_bulk = 0
    for bundle in BUNDLES:
        case = case_of(bundle)
        fhir_patient = patient_of(load_sources([str(bundle)]))
        expected = reports["turtle"].ids(turtle_patient[case])
        assert expected, case
        assert reports["fhir"].ids(fhir_patient) == expected, (case, reports["fhir"].ids(fhir_patient) ^ expected)
        if fhir_patient in bulk_patients:  # the same patient, exported as NDJSON in other record shapes
            seen_in_bulk += 1
            assert reports["bulk"].ids(fhir_patient) == expected, (case, reports["bulk"].ids(fhir_patient) ^ expected)
    assert seen_in_bulk == len(bulk_patients)


def test_fhir_examples_use_every_record(reports):
    for key in ("fhir", "bulk"):
        for p in reports[key].patients:
            assert p["patient"].startswith("urn:fhir:Patient/")
            assert p["unused"] == [], (key, p["patient"], p["unused"])
            assert p["input_problems"] == [], (key, p["patient"], p["input_problems"])


@pytest.mark.parametrize("expected", sorted(ACCEPTANCE.glob("*.expected.json")), ids=case_of)
def test_acceptance_case_through_fhir(reports, expected):
    spec = json.loads(expected.read_text(encoding="utf-8"))
    assert spec["as_of"] == AS_OF
    bundle = expected.with_name(expected.name.replace(".expected.json", ".fhir.json"))
    assert (FHIR_EXAMPLES / bundle.name).read_bytes() == bundle.read_bytes()
    fired = reports["fhir"].ids(patient_of(load_sources([str(bundle)])))
    assert not set(spec["must"]) - fired, f"missing: {sorted(set(spec['must']) - fired)}"
    assert not set(spec["must_not"]) & fired, f"must not fire: {sorted(set(spec['must_not']) & fired)}"


def test_because_points_back_to_fhir_resources(reports):
    ids = set()
    for p in reports["fhir"].patients:
        for key in ("findings", "recommendations", "violations", "conflicts"):
            for item in p[key]:
                assert item["because"], item["id"]
                for fact in item["because"]:
                    assert fact.startswith("urn:fhir:"), fact
                    ids.add(fact.split("/", 1)[0])
    assert {"urn:fhir:Observation", "urn:fhir:Condition", "urn:fhir:MedicationStatement", "urn:fhir:Procedure"} <= ids


@pytest.mark.parametrize("source", BUNDLES + [BULK, DATA / "unused.json", DATA / "mixed.ndjson"], ids=lambda p: p.name)
def test_used_plus_unused_is_everything_read(source):
    data = load_sources([str(source)])
    assert data.resources_read > 0
    accounted(data)
    if source.suffix == ".json" and source.parent == FHIR_EXAMPLES:
        raw = json.loads(source.read_text())
        assert data.resources_read == len(raw["entry"])


def test_bulk_export_reads_several_files_and_patients():
    data = load_sources([str(BULK)])
    names = {p.name for p in BULK.iterdir()}
    assert {"Patient.ndjson", "Observation.ndjson", "Condition.ndjson", "MedicationStatement.ndjson"} <= names
    lines = sum(1 for f in BULK.glob("*.ndjson") for ln in f.read_text().splitlines() if ln.strip())
    assert data.resources_read == lines
    assert len({q.object.value for q in data.quads if q.predicate.value == B12 + "subject"}) >= 4
    accounted(data)


# ---------------------------------------------------------------------------------------------
# Terminology: every binding of the ontology's code systems maps (no codes in Python)
# ---------------------------------------------------------------------------------------------


def _ontology_bindings(kb):
    q = lambda text: list(kb.ontology_store.query(  # noqa: E731
        "PREFIX b12: <https://w3id.org/b12kg/> PREFIX skos: <http://www.w3.org/2004/02/skos/core#> "
        "PREFIX owl: <http://www.w3.org/2002/07/owl#> PREFIX rdfs: <http://www.w3.org/2000/01/rdf-schema#> " + text,
        use_default_graph_as_union=True))
    systems = {r["prefix"].value: r["system"].value for r in q("SELECT ?system ?prefix WHERE { ?cs a b12:CodeSystem ; b12:fhirSystem ?system ; b12:iriPrefix ?prefix }")}

    def split(code_iri):
        for prefix, system in systems.items():
            if code_iri.startswith(prefix):
                return system, code_iri[len(prefix):]
        raise AssertionError(f"{code_iri}: in no code system of the ontology")

    concepts = [(r["concept"].value, split(r["code"].value), r["lab"].value == "true", r["proc"].value == "true",
                 r["obs"].value == "true", r["unit"].value if r["unit"] is not None else None) for r in q("""
        SELECT DISTINCT ?concept ?code ?lab ?proc ?obs ?unit WHERE {
          ?concept skos:exactMatch|b12:unverifiedCode ?code ; a owl:Class .
          BIND(EXISTS { ?concept rdfs:subClassOf* b12:LabResult } AS ?lab)
          BIND(EXISTS { ?concept rdfs:subClassOf* b12:Procedure } AS ?proc)
          BIND(EXISTS { ?concept rdfs:subClassOf* b12:CodedObservation } AS ?obs)
          OPTIONAL { ?concept rdfs:subClassOf* ?k . ?k b12:canonicalUnit ?unit }
        } ORDER BY ?concept ?code""")]
    individuals = [(r["ind"].value, split(r["code"].value), r["kind"].value) for r in q("""
        SELECT DISTINCT ?ind ?code ?kind WHERE {
          ?ind skos:exactMatch|b12:unverifiedCode ?code ; a owl:NamedIndividual .
          BIND(IF(EXISTS { ?ind a/rdfs:subClassOf* b12:Drug }, "drug", IF(EXISTS { ?ind a/rdfs:subClassOf* b12:Route }, "route", "value")) AS ?kind)
        } ORDER BY ?ind ?code""")]
    return concepts, individuals


def test_terminology_md_codes_are_bound_in_the_ontology(kb):
    concepts, individuals = _ontology_bindings(kb)
    bound = {c for _, c, *_ in concepts} | {c for _, c, _ in individuals}
    text = (ROOT / "docs" / "guideline" / "TERMINOLOGY.md").read_text(encoding="utf-8")
    wanted = set()
    for section in re.split(r"^## ", text, flags=re.M)[1:]:
        title = section.splitlines()[0]
        system = LOINC if "LOINC" in title else RX if "RxNorm" in title else SCT
        for line in section.splitlines():
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if not line.startswith("|") or len(cells) < 2 or cells[0] in ("concept",) or set(cells[0]) <= set("-"):
                continue
            wanted |= {(LOCAL, m) for m in re.findall(r"local `([a-z0-9-]+)`", cells[1])}
            rest = re.sub(r"local `[^`]+`|\([^)]*\)", "", cells[1])
            wanted |= {(system, m) for m in re.findall(r"\b(\d+(?:-\d)?)\b", rest)}
        if title.startswith("Dosage") or title.startswith("Shapes"):
            wanted |= {(SCT, m) for m in re.findall(r"SNOMED (\d+)|(?<=, )(\d{6,})(?= \w)", section) for m in m if m}
        if title.startswith("Guideline-specific"):
            wanted |= {(LOCAL, m) for m in re.findall(r"`([a-z0-9-]+)`", section)}
    assert len(wanted) > 80
    assert not wanted - bound, sorted(wanted - bound)


def test_every_binding_maps(kb, tmp_path):
    """One minimal resource per code of the ontology's code systems; the importer recognises each."""
    concepts, individuals = _ontology_bindings(kb)
    pid = "urn:uuid:00000000-0000-4000-8000-000000000000"
    subject = {"reference": pid}
    entries = [{"fullUrl": pid, "resource": {"resourceType": "Patient", "id": "terminology"}}]
    expect: list[tuple[str, str, str]] = []
    resection = None

    def add(resource):
        entries.append({"resource": resource})
        return f"urn:fhir:{resource['resourceType']}/{resource['id']}"

    def cc(system, code):
        return {"coding": [{"system": system, "code": code}]}

    for n, (concept, (system, code), lab, proc, obs, unit) in enumerate(concepts):
        rid = f"c{n}"
        if concept == B12 + "IlealResectionLength":
            continue  # below, partOf a procedure
        if lab:
            iri = add({"resourceType": "Observation", "id": rid, "status": "final", "code": cc(system, code), "subject": subject,
                       "effectiveDateTime": "2026-05-01", "valueQuantity": {"value": 1, "system": UCUM, "code": unit or "1"}})
        elif proc:
            iri = add({"resourceType": "Procedure", "id": rid, "status": "completed", "code": cc(system, code), "subject": subject,
                       "performedDateTime": "2020-01-01"})
            if concept == B12 + "IlealResection":
                resection = iri
        elif obs:
            iri = add({"resourceType": "Observation", "id": rid, "status": "final", "code": cc(system, code), "subject": subject,
                       "effectiveDateTime": "2026-05-01"})
        else:
            iri = add({"resourceType": "Condition", "id": rid, "code": cc(system, code), "subject": subject, "onsetDateTime": "2025-01-01"})
        expect.append((iri, RDF_TYPE, concept))
    assert resection
    for n, (concept, (system, code), *_rest) in enumerate(concepts):
        if concept == B12 + "IlealResectionLength":
            iri = add({"resourceType": "Observation", "id": f"length{n}", "status": "final", "code": cc(system, code),
                       "subject": subject, "partOf": [{"reference": resection.replace("urn:fhir:", "")}],
                       "effectiveDateTime": "2020-01-01", "valueQuantity": {"value": 250, "system": UCUM, "code": "mm"}})
            expect += [(iri, RDF_TYPE, concept), (resection, B12 + "resectedLengthCm", "25"), (resection, PROV_DERIVED, iri)]
    for n, (ind, (system, code), kind) in enumerate(individuals):
        rid = f"i{n}"
        if kind == "drug":
            iri = add({"resourceType": "MedicationStatement", "id": rid, "status": "active", "medicationCodeableConcept": cc(system, code),
                       "subject": subject, "effectivePeriod": {"start": "2026-01-01"}})
            expect.append((iri, B12 + "drug", ind))
        elif kind == "route":
            iri = add({"resourceType": "MedicationStatement", "id": rid, "status": "active",
                       "medicationCodeableConcept": cc(RX, "6809"), "subject": subject, "effectivePeriod": {"start": "2026-01-01"},
                       "dosage": [{"route": cc(system, code)}]})
            expect.append((iri, B12 + "route", ind))
        else:
            iri = add({"resourceType": "Observation", "id": rid, "status": "final", "code": cc(LOCAL, "hiv-test"), "subject": subject,
                       "effectiveDateTime": "2026-05-01", "valueCodeableConcept": cc(system, code)})
            expect.append((iri, B12 + "resultValue", ind))
    assert len(expect) > 100
    path = tmp_path / "terminology.json"
    path.write_text(json.dumps({"resourceType": "Bundle", "type": "collection", "entry": entries}))
    data = load_sources([str(path)])
    got = triples(data)
    assert not [e for e in expect if e not in got]
    assert not data.unused, data.unused
    accounted(data)


# ---------------------------------------------------------------------------------------------
# Units at the B12 boundaries, through FHIR
# ---------------------------------------------------------------------------------------------


def test_b12_unit_boundaries_through_fhir(tmp_path, kb):
    cases = {"b179": ("2132-9", 179, "pg/mL", "DX-B12-DEFICIENT"), "b180": ("2132-9", 180, "pg/mL", "DX-B12-INDETERMINATE"),
             "b132": ("14685-2", 132, "pmol/L", "DX-B12-DEFICIENT"), "b133": ("14685-2", 133, "pmol/L", "DX-B12-INDETERMINATE"),
             "b180ng": ("2132-9", 180.0, "ng/L", "DX-B12-INDETERMINATE"),
             "b179text": ("2132-9", 179, "pg/mL", "DX-B12-DEFICIENT"),  # human-readable unit only, no UCUM code
             "furlong": ("2132-9", 150, "furlong", None)}
    lines = []
    for pid, (code, value, unit, _) in cases.items():
        quantity = {"value": value, "unit": unit} if pid in ("b179text", "furlong") else {"value": value, "unit": unit, "system": UCUM, "code": unit}
        lines.append({"resourceType": "Patient", "id": pid, "gender": "female", "birthDate": "1970-01-01"})
        lines.append({"resourceType": "Observation", "id": f"{pid}-b12", "status": "final", "code": {"coding": [{"system": LOINC, "code": code}]},
                      "subject": {"reference": f"Patient/{pid}"}, "effectiveDateTime": "2026-05-20", "valueQuantity": quantity})
    path = tmp_path / "boundaries.ndjson"
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    report = recommend(str(path), AS_OF, kb=kb)
    # a unit that cannot be converted: kept as b12:unit, reported by the pipeline, no B12 category
    (furlong,) = [p for p in report.patients if p["patient"] == "urn:fhir:Patient/furlong"]
    assert any("furlong" in u["reason"] and u["resource"] == "urn:fhir:Observation/furlong-b12" for u in furlong["unused"])
    assert any(ip["id"] == "INPUT-UNIT-CONVERTIBLE" for ip in furlong["input_problems"])
    assert not report.ids("urn:fhir:Patient/furlong") & {"DX-B12-DEFICIENT", "DX-B12-INDETERMINATE", "DX-B12-UNLIKELY"}
    del cases["furlong"]
    for pid, (_, value, unit, expected) in cases.items():
        ids = report.ids(f"urn:fhir:Patient/{pid}")
        other = {"DX-B12-DEFICIENT", "DX-B12-INDETERMINATE", "DX-B12-UNLIKELY"} - {expected}
        assert expected in ids, (value, unit, ids)
        assert not ids & other, (value, unit, ids & other)


# ---------------------------------------------------------------------------------------------
# Not used as facts: excluded statuses, unknown codes, unusable values; all reported
# ---------------------------------------------------------------------------------------------


def test_excluded_and_unusable_records_are_reported_not_used(capsys):
    code, out, err = run(capsys, "recommend", DATA / "unused.json", "--as-of", AS_OF, "-f", "json")
    assert code == 0, err
    patients = {p["patient"]: p for p in json.loads(out)["patients"]}
    assert set(patients) == {"urn:fhir:Patient/u1", ""}  # "": an unreferenced Medication belongs to no patient
    p = patients["urn:fhir:Patient/u1"]
    reasons = {}
    for u in p["unused"] + patients[""]["unused"]:
        reasons.setdefault(u["resource"].rsplit("/", 1)[-1], []).append(u["reason"])
    expected = {
        "pa-refuted": "refuted", "neuropathy-error": "entered-in-error", "b12-error": "entered-in-error",
        "hydroxo-cancelled": "cancelled", "metformin-not-taken": "not-taken", "gastrectomy-not-done": "not-done",
        "odd": "999999999", "visit": "Encounter", "b12-no-unit": "no UCUM", "b12-text": "valueString",
        "b12-less-than": "not an exact value", "b12-nonnumeric": "not a number", "unreferenced": "not referenced",
        "metformin-product": "matched by display text",
    }
    for rid, needle in expected.items():
        assert any(needle in r for r in reasons.get(rid, [])), (rid, reasons.get(rid))
    ids = {i["id"] for k in ("findings", "recommendations", "violations", "conflicts") for i in p[k]}
    assert "DX-B12-DEFICIENT" in ids  # the one good B12 result (150 pg/mL) is used
    assert not {"TX-PERNICIOUS-ANAEMIA-LIFELONG", "TX-LIFELONG-IRREVERSIBLE"} & ids  # refuted PA, not-done gastrectomy
    because = {f for k in ("findings", "recommendations") for i in p[k] for f in i["because"]}
    assert "urn:fhir:Observation/b12-good" in because
    assert not {"urn:fhir:Observation/b12-error", "urn:fhir:Condition/pa-refuted"} & because
    data = load_sources([str(DATA / "unused.json")])
    assert sorted(data.used) == ["urn:fhir:MedicationStatement/metformin-product", "urn:fhir:Observation/b12-good", "urn:fhir:Patient/u1"]
    accounted(data)


# ---------------------------------------------------------------------------------------------
# Bad input: exit 2, one line naming the file and the resource (or line), no traceback
# ---------------------------------------------------------------------------------------------

BAD = {
    "invalid-json.json": ["invalid-json.json:6:5:", "invalid JSON"],
    "no-resourcetype.json": ["no-resourcetype.json:", "not a FHIR R4 resource", "no resourceType"],
    "unknown-resourcetype.json": ["unknown-resourcetype.json:", "not a FHIR R4 resource", "LabResult"],
    "bad-structure.json": ["bad-structure.json:", "Observation/b12-1", "not FHIR R4", "code"],
    "dangling-reference.json": ["dangling-reference.json:", "Observation/b12-1", "Patient/nobody", "no resource"],
    "impossible-date.json": ["impossible-date.json:", "Observation/b12-feb30", "2026-02-30", "impossible date"],
    "all-broken.ndjson": ["all-broken.ndjson:1:", "nothing could be read", "invalid JSON"],
}


@pytest.mark.parametrize("name", sorted(BAD))
@pytest.mark.parametrize("command", ["recommend", "convert"])
def test_bad_input_exits_2_with_one_line(capsys, name, command):
    args = [command, DATA / name] + (["--as-of", AS_OF] if command == "recommend" else [])
    code, out, err = run(capsys, *args)
    assert code == 2
    line = one_line_error(err)
    assert line.startswith("b12kg: error: ")
    for needle in BAD[name]:
        assert needle in line, (needle, line)
    assert out == ""


def test_bad_json_shapes_exit_2(tmp_path, capsys):
    cases = {
        "array.json": ("[1, 2]", "not a FHIR R4 resource"),
        "empty.json": ("", "empty file"),
        "nan.json": ('{"resourceType": "Observation", "id": "x", "valueQuantity": {"value": NaN}}', "invalid JSON"),
        "entry.json": ('{"resourceType": "Bundle", "type": "collection", "entry": {"resource": {}}}', "entry"),
        "bad-id.json": ('{"resourceType": "Patient", "id": "a b"}', "not a valid FHIR id"),
        "birth.json": ('{"resourceType": "Patient", "id": "p", "birthDate": "1960-13-01"}', "Patient/p"),
        "ref.json": ('{"resourceType": "Condition", "id": "c", "subject": {"reference": "urn:uuid:00000000-0000-0000-0000-000000000000"},'
                     ' "code": {"coding": [{"system": "http://snomed.info/sct", "code": "91019004"}]}}', "Condition/c"),
    }
    for name, (text, needle) in cases.items():
        path = tmp_path / name
        path.write_text(text)
        code, out, err = run(capsys, "convert", path)
        assert code == 2, (name, out)
        line = one_line_error(err)
        assert name in line and needle in line, line


def test_console_script_bad_fhir_no_traceback():
    proc = subprocess.run([sys.executable, "-m", "reasoner", "recommend", str(DATA / "impossible-date.json"), "--as-of", AS_OF],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and proc.stderr.count("\n") == 1
    assert "Observation/b12-feb30" in proc.stderr


def test_ndjson_with_a_broken_line_reads_the_rest(capsys):
    code, out, err = run(capsys, "recommend", DATA / "mixed.ndjson", "--as-of", AS_OF, "-f", "json")
    assert code == 0, err
    patients = {p["patient"]: p for p in json.loads(out)["patients"]}
    assert {"urn:fhir:Patient/m1", "urn:fhir:Patient/m2"} <= set(patients)
    m1 = patients["urn:fhir:Patient/m1"]
    assert "DX-B12-DEFICIENT" in {i["id"] for i in m1["findings"]}  # line 3, after the broken line 4 too
    assert "DX-B12-UNLIKELY" in {i["id"] for i in patients["urn:fhir:Patient/m2"]["findings"]}  # line 10
    unused = [u for p in patients.values() for u in p["unused"]]
    broken = [u for u in unused if u["resource"].endswith("mixed.ndjson#line=4")]
    assert broken and "line 4" in broken[0]["reason"] and "invalid JSON" in broken[0]["reason"]
    assert any(u["resource"] == "urn:fhir:Observation/m2-b12-feb30" and "line 7" in u["reason"] and "2026-02-30" in u["reason"] for u in unused)
    assert any(u["resource"] == "urn:fhir:Observation/m2-hb" and "line 8" in u["reason"] and "Patient/ghost" in u["reason"] for u in unused)
    assert any(u["resource"] == "urn:fhir:Encounter/m1-visit" and "Encounter" in u["reason"] for u in unused)


def test_folder_with_a_bad_file_reads_the_others(tmp_path):
    for f in ("case01-b12-179-metformin-deficient.fhir.json", "case10-b12-120-pmol-folic-acid-1mg.fhir.json"):
        (tmp_path / f).write_bytes((FHIR_EXAMPLES / f).read_bytes())
    (tmp_path / "broken.json").write_text('{"resourceType": "Bundle", "entry": [')
    (tmp_path / "manifest.json").write_text('{"transactionTime": "2026-05-31T00:00:00Z", "output": []}')
    data = load_sources([str(tmp_path)])
    assert len({q.subject.value for q in data.quads if q.object.value == B12 + "Patient"}) == 2
    reasons = {u.resource.rsplit("/", 1)[-1]: u.reason for u in data.unused}
    assert "invalid JSON" in reasons["broken.json"] and "manifest.json" in reasons["manifest.json"]
    accounted(data)
    empty = tmp_path / "nothing"
    empty.mkdir()
    (empty / "a.ndjson").write_text("not json\n")
    with pytest.raises(Exception, match="nothing could be read"):
        load_sources([str(empty)])


# ---------------------------------------------------------------------------------------------
# Record shapes (TERMINOLOGY.md "Shapes a record may take") and the converted RDF
# ---------------------------------------------------------------------------------------------


def _shapes_bundle() -> dict:
    P = "urn:uuid:11111111-2222-4333-8444-"

    def u(n):
        return f"{P}{n:012d}"

    subject = {"reference": u(1)}
    cc = lambda s, c, d=None: {"coding": [{"system": s, "code": c, **({"display": d} if d else {})}]}  # noqa: E731
    res = [
        {"resourceType": "Patient", "gender": "female", "birthDate": "1990-02-03"},
        # single dose: MedicationAdministration; completed statement with count 1 and a same-day period
        {"resourceType": "MedicationAdministration", "status": "completed", "medicationCodeableConcept": cc(LOCAL, "hydroxocobalamin"),
         "subject": subject, "effectiveDateTime": "2026-04-10T10:00:00+02:00",
         "dosage": {"route": cc(SCT, "78421000"), "dose": {"value": 1, "unit": "mg", "system": UCUM, "code": "mg"}}},
        {"resourceType": "MedicationStatement", "status": "completed", "medicationCodeableConcept": cc(LOCAL, "hydroxocobalamin"),
         "subject": subject, "effectivePeriod": {"start": "2026-03-01", "end": "2026-03-01"},
         "dosage": [{"timing": {"repeat": {"count": 1}}, "route": cc(SCT, "78421000"),
                     "doseAndRate": [{"doseQuantity": {"value": 1000, "unit": "ug", "system": UCUM, "code": "ug"}}]}]},
        # pregnancy as Condition and as Observation; diet; local guideline observation without value
        {"resourceType": "Condition", "code": cc(SCT, "77386006"), "subject": subject, "onsetDateTime": "2026-02-01",
         "clinicalStatus": cc("http://terminology.hl7.org/CodeSystem/condition-clinical", "active")},
        {"resourceType": "Observation", "status": "final", "code": cc(SCT, "169750002"), "subject": subject, "effectiveDateTime": "2026-05-01"},
        {"resourceType": "Observation", "status": "final", "code": cc(SCT, "1255165006"), "subject": subject, "effectiveDateTime": "2025-01-01"},
        {"resourceType": "Observation", "status": "final", "code": cc(LOCAL, "symptom-recurrence"), "subject": subject,
         "effectiveDateTime": "2026-05-20"},
        # screening test negative; SPEP with interpretation N only; MMA with flag and reference range in other units
        {"resourceType": "Observation", "status": "final", "code": cc(LOCAL, "hepatitis-c-test"), "subject": subject,
         "effectiveDateTime": "2026-05-02", "valueCodeableConcept": cc(SCT, "260385009", "Negative")},
        {"resourceType": "Observation", "status": "final", "code": cc(LOINC, "33358-3"), "subject": subject, "effectiveDateTime": "2026-05-02",
         "interpretation": [cc("http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation", "N")]},
        {"resourceType": "Observation", "status": "final", "code": cc(LOINC, "13964-2"), "subject": subject,
         "effectivePeriod": {"start": "2026-05-03T08:00:00Z", "end": "2026-05-04T08:00:00Z"},
         "valueQuantity": {"value": 480, "unit": "nmol/L", "system": UCUM, "code": "nmol/L"},
         "interpretation": [cc("http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation", "H")],
         "referenceRange": [{"low": {"value": 0.07, "code": "umol/L"}, "high": {"value": 0.4, "code": "umol/L"}}]},
        # resection with its length (Observation partOf) and a gastrectomy with the documented extension
        {"resourceType": "Procedure", "status": "completed", "code": cc(SCT, "17988003"), "subject": subject, "performedPeriod": {"start": "2019-09-12"}},
        {"resourceType": "Observation", "status": "final", "code": cc(LOCAL, "ileal-resection-length"), "subject": subject,
         "partOf": [{"reference": u(11)}], "valueQuantity": {"value": 0.3, "unit": "m", "system": UCUM, "code": "m"}},
        {"resourceType": "Procedure", "status": "completed", "code": cc(SCT, "17988003"), "subject": subject, "performedDateTime": "2018-01-01",
         "extension": [{"url": "https://w3id.org/b12kg/fhir/StructureDefinition/resected-length",
                        "valueQuantity": {"value": 15, "unit": "cm", "system": UCUM, "code": "cm"}}]},
        # frequencies: not an individual (every 14 days), days of week, a MedicationRequest; a contained Medication
        {"resourceType": "MedicationStatement", "status": "active", "medicationCodeableConcept": cc(LOCAL, "hydroxocobalamin"),
         "subject": subject, "effectivePeriod": {"start": "2026-01-01"},
         "dosage": [{"timing": {"repeat": {"frequency": 1, "period": 14, "periodUnit": "d"}}, "route": cc(SCT, "78421000")}]},
        {"resourceType": "MedicationStatement", "status": "active", "medicationReference": {"reference": "#med"},
         "contained": [{"resourceType": "Medication", "id": "med", "code": cc(RX, "000000", "Cyanocobalamin 1 MG/ML Injectable Solution")}],
         "subject": subject, "effectivePeriod": {"start": "2026-05-01"},
         "dosage": [{"timing": {"repeat": {"dayOfWeek": ["mon", "wed", "fri"]}}, "route": cc(SCT, "78421000")}]},
        {"resourceType": "MedicationRequest", "status": "active", "intent": "order", "medicationCodeableConcept": cc(RX, "4511"),
         "subject": subject, "authoredOn": "2026-05-05T12:00:00Z",
         "dosageInstruction": [{"timing": {"repeat": {"frequency": 1, "period": 1, "periodUnit": "d"}}, "route": cc(SCT, "26643006"),
                                "doseAndRate": [{"doseQuantity": {"value": 5, "unit": "mg", "system": UCUM, "code": "mg"}}]}]},
    ]
    entries = []
    for n, r in enumerate(res, start=1):
        entries.append({"fullUrl": u(n), "resource": r, "request": {"method": "POST", "url": r["resourceType"]}})
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


def test_record_shapes(tmp_path):
    path = tmp_path / "shapes.json"
    path.write_text(json.dumps(_shapes_bundle()))
    data = load_sources([str(path)])
    got = triples(data)
    u = lambda n: f"urn:uuid:11111111-2222-4333-8444-{n:012d}"  # noqa: E731  (no ids: the fullUrl names each record)
    date = lambda d: d  # noqa: E731
    want = [
        (u(2), B12 + "frequency", B12 + "once"), (u(2), B12 + "startDate", date("2026-04-10")), (u(2), B12 + "endDate", "2026-04-10"),
        (u(2), B12 + "drug", B12 + "hydroxocobalamin"), (u(2), B12 + "route", B12 + "intramuscular"), (u(2), B12 + "dose", "1"),
        (u(3), B12 + "frequency", B12 + "once"), (u(3), B12 + "endDate", "2026-03-01"), (u(3), B12 + "doseUnit", "ug"),
        (u(4), RDF_TYPE, B12 + "Pregnancy"), (u(4), B12 + "onset", "2026-02-01"), (u(4), B12 + "clinicalStatus", B12 + "active"),
        (u(5), RDF_TYPE, B12 + "Breastfeeding"), (u(5), B12 + "date", "2026-05-01"),
        (u(6), RDF_TYPE, B12 + "VeganDiet"), (u(6), B12 + "date", "2025-01-01"),
        (u(7), RDF_TYPE, B12 + "SymptomRecurrence"), (u(7), B12 + "date", "2026-05-20"),
        (u(8), RDF_TYPE, B12 + "HepatitisCTestResult"), (u(8), B12 + "resultValue", B12 + "negative"),
        (u(9), RDF_TYPE, B12 + "SPEPResult"), (u(9), B12 + "interpretation", B12 + "normal"),
        (u(10), B12 + "value", "480"), (u(10), B12 + "unit", "nmol/L"), (u(10), B12 + "date", "2026-05-03"),
        (u(10), B12 + "interpretation", B12 + "high"), (u(10), B12 + "referenceHigh", "400"), (u(10), B12 + "referenceLow", "70"),
        (u(11), RDF_TYPE, B12 + "IlealResection"), (u(11), B12 + "date", "2019-09-12"), (u(11), B12 + "resectedLengthCm", "30"),
        (u(11), PROV_DERIVED, u(12)), (u(12), RDF_TYPE, B12 + "IlealResectionLength"),
        (u(13), B12 + "resectedLengthCm", "15"),
        (u(14), B12 + "frequency", u(14) + "/frequency"), (u(14) + "/frequency", B12 + "intervalDays", "14"),
        (u(15), B12 + "drug", B12 + "cyanocobalamin"), (u(15), B12 + "frequency", B12 + "threeTimesWeekly"),
        (u(15), PROV_DERIVED, u(15) + "#med"),
        (u(16), B12 + "drug", B12 + "folicAcid"), (u(16), B12 + "startDate", "2026-05-05"), (u(16), B12 + "frequency", B12 + "daily"),
    ]
    missing = [w for w in want if w not in got]
    assert not missing, missing
    assert (u(12), B12 + "date", "2019-09-12") not in got  # no date on the length observation: none invented
    notes = [x for x in data.unused if x.note]
    assert [x.resource for x in data.unused if not x.note] == []
    assert any(x.resource == u(15) and "matched by display text" in x.reason for x in notes)
    accounted(data)


def test_convert_prints_turtle_with_provenance(capsys):
    case62 = FHIR_EXAMPLES / "case62-ileal-resection-oral-b12.fhir.json"
    code, out, err = run(capsys, "convert", case62, "-f", "turtle")
    assert code == 0 and err == ""
    assert out.startswith("# b12kg convert: 8 records read, 8 used, 0 not used\n")
    store = ox.Store()
    store.load(out.encode(), format=ox.RdfFormat.TURTLE)
    (proc,) = [t.subject.value for t in store.quads_for_pattern(None, ox.NamedNode(RDF_TYPE), ox.NamedNode(B12 + "IlealResection"))]
    assert proc.startswith("urn:fhir:Procedure/")
    (length,) = [t.object.value for t in store.quads_for_pattern(ox.NamedNode(proc), ox.NamedNode(B12 + "resectedLengthCm"), None)]
    assert length == "35"  # 350 mm
    (derived,) = [t.object.value for t in store.quads_for_pattern(ox.NamedNode(proc), ox.NamedNode(PROV_DERIVED), None)]
    assert derived.startswith("urn:fhir:Observation/")
    again = run(capsys, "convert", case62)[1]
    assert again == out
    code, nt, _ = run(capsys, "convert", case62, "-f", "nt")
    assert code == 0 and len([ln for ln in nt.splitlines() if ln and not ln.startswith("#")]) == len(store)


def test_content_detection_not_only_extension(tmp_path, capsys):
    bundle = (FHIR_EXAMPLES / "case01-b12-179-metformin-deficient.fhir.json").read_bytes()
    (tmp_path / "export.txt").write_bytes(b"\xef\xbb\xbf" + bundle)  # BOM, odd extension
    one = json.loads(bundle)["entry"][0]["resource"]
    (tmp_path / "patient.dat").write_text(json.dumps(one))  # a single resource
    lines = [json.dumps(e["resource"]).replace('"urn:uuid:', '"Patient/') for e in json.loads(bundle)["entry"]]
    (tmp_path / "bulk.json").write_text("\n".join(lines) + "\n")  # NDJSON content in a .json file
    for name in ("export.txt", "patient.dat", "bulk.json"):
        data = load_sources([str(tmp_path / name)])
        assert data.used, name
        accounted(data)
    assert len(load_sources([str(tmp_path / "bulk.json")]).used) == len(lines)
    code, out, _ = run(capsys, "convert", EXAMPLES / "case01-b12-179-metformin-deficient.ttl")
    assert code == 0 and "b12:TotalB12Result" in out  # RDF input converts too


def test_active_statement_dated_by_a_point_in_time_is_ongoing(tmp_path, kb):
    """An active MedicationStatement with effectiveDateTime and no timing is a use that started then
    (still current), not a single dose; a completed one is a single dose (regression)."""
    from reasoner import recommend

    def bundle(status):
        return {"resourceType": "Bundle", "type": "collection", "entry": [
            {"resource": {"resourceType": "Patient", "id": "p"}},
            {"resource": {"resourceType": "Condition", "id": "pa", "subject": {"reference": "Patient/p"},
                          "code": {"coding": [{"system": "http://snomed.info/sct", "code": "84027009"}]},
                          "onsetDateTime": "2019-01-01"}},
            {"resource": {"resourceType": "MedicationStatement", "id": "m", "status": status, "subject": {"reference": "Patient/p"},
                          "medicationCodeableConcept": {"coding": [{"system": "https://w3id.org/b12kg/CodeSystem/local", "code": "hydroxocobalamin"}]},
                          "effectiveDateTime": "2026-03-01",
                          "dosage": [{"route": {"coding": [{"system": "http://snomed.info/sct", "code": "78421000"}]},
                                      "doseAndRate": [{"doseQuantity": {"value": 1, "unit": "mg", "system": "http://unitsofmeasure.org", "code": "mg"}}]}]}},
        ]}

    active = tmp_path / "active.json"
    active.write_text(json.dumps(bundle("active")))
    done = tmp_path / "done.json"
    done.write_text(json.dumps(bundle("completed")))
    assert "SAFETY-DISCONTINUED-LIFELONG" not in recommend(active, "2026-06-01", kb=kb).ids()
    assert "SAFETY-DISCONTINUED-LIFELONG" in recommend(done, "2026-06-01", kb=kb).ids()
