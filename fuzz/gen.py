"""Input generators: valid, mutated and truncated FHIR bundles, NDJSON exports and Turtle patients.

Valid inputs are built from the shipped examples (examples/fhir/*.json, examples/fhir/bulk,
examples/*.ttl): a random subset of a patient's records, with values, units, dates and codes drawn
from what the examples use (the terminology the importer maps). Every choice is drawn through a
hypothesis ``data`` object so runs are reproducible from the seed.
"""
from __future__ import annotations

import copy
import json
import re
import uuid
from pathlib import Path

import pyoxigraph as ox
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
FHIR = EXAMPLES / "fhir"
B12 = "https://w3id.org/b12kg/"
XSD = "http://www.w3.org/2001/XMLSchema#"
RDF_TYPE = "http://www.w3.org/1999/02/22-rdf-syntax-ns#type"


# ------------------------------------------------------------------------------------------
# Corpus harvested once from the examples
# ------------------------------------------------------------------------------------------

def _walk(node, fn, path=()):
    fn(node, path)
    if isinstance(node, dict):
        for k, v in node.items():
            _walk(v, fn, path + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            _walk(v, fn, path + (i,))


class Corpus:
    def __init__(self) -> None:
        self.bundles: list[list[dict]] = []  # per example: [Patient, other resources...]
        for f in sorted(FHIR.glob("*.fhir.json")):
            d = json.loads(f.read_text(encoding="utf-8"))
            self.bundles.append([e["resource"] for e in d["entry"]])
        # bulk export: group by patient (Medication resources go with every patient that references them)
        bulk: dict[str, list[dict]] = {}
        meds: dict[str, dict] = {}
        for f in sorted((FHIR / "bulk").glob("*.ndjson")):
            for line in f.read_text(encoding="utf-8").splitlines():
                if not line.strip():
                    continue
                r = json.loads(line)
                if r["resourceType"] == "Patient":
                    bulk.setdefault(r["id"], []).insert(0, r)
                elif r["resourceType"] == "Medication":
                    meds[r["id"]] = r
                else:
                    ref = (r.get("subject") or {}).get("reference", "")
                    bulk.setdefault(ref.split("/")[-1].replace("urn:uuid:", ""), []).append(r)
        for pid, rs in bulk.items():
            text = json.dumps(rs)
            rs += [m for mid, m in meds.items() if mid in text]
            if rs and rs[0]["resourceType"] == "Patient":
                self.bundles.append(rs)
        # value pools: codings per resource type, quantities (value, unit) per code, dates
        self.codings: dict[str, list[dict]] = {}
        self.quantities: list[dict] = []
        self.dates: set[str] = set()
        self.strings: set[str] = set()
        for rs in self.bundles:
            for r in rs:
                rt = r["resourceType"]
                code = r.get("code") or r.get("medicationCodeableConcept")
                if isinstance(code, dict):
                    for c in code.get("coding", []):
                        if c not in self.codings.setdefault(rt, []):
                            self.codings[rt].append(c)

                def grab(node, path):
                    if isinstance(node, dict) and "value" in node and "unit" in node:
                        self.quantities.append(dict(node))
                    if isinstance(node, str) and len(node) >= 10 and node[:4].isdigit() and node[4] == "-":
                        self.dates.add(node)
                    elif isinstance(node, str) and path and path[-1] in ("code", "status", "unit", "text", "gender"):
                        self.strings.add(node)
                _walk(r, grab)
        self.dates_l = sorted(self.dates)
        self.strings_l = sorted(self.strings)
        self.units = sorted({q["unit"] for q in self.quantities})
        # Turtle patients
        self.turtle: list[tuple[str, list[ox.Triple]]] = []
        for f in sorted(EXAMPLES.glob("*.ttl")):
            base = f"https://example.org/b12kg/{f.name.split('-')[0]}/"
            self.turtle.append((base, list(ox.parse(path=str(f), format=ox.RdfFormat.TURTLE))))


_CORPUS: Corpus | None = None


def corpus() -> Corpus:
    global _CORPUS
    if _CORPUS is None:
        _CORPUS = Corpus()
    return _CORPUS


# ------------------------------------------------------------------------------------------
# Valid patients
# ------------------------------------------------------------------------------------------

_ID_COUNTER = iter(range(1, 2**62))


def _new_id(data) -> str:
    """A fresh id: the drawn part varies the shape, the counter keeps ids unique within a run
    (hypothesis often draws the same small integer twice, which would make duplicate-id inputs)."""
    drawn = data.draw(st.integers(0, 2**64 - 1), label="uuid")
    return str(uuid.UUID(int=(drawn << 64) | next(_ID_COUNTER)))


def _remap_ids(resources: list[dict], data) -> list[dict]:
    """Fresh ids for every resource (references follow), so generated patients never collide."""
    text = json.dumps(resources)
    for r in resources:
        if isinstance(r.get("id"), str) and len(r["id"]) >= 8:
            text = text.replace(r["id"], _new_id(data))
    return json.loads(text)


def _perturb_valid(r: dict, data, c: Corpus) -> None:
    """In-range changes: another value/unit/date/code of the kind the examples use."""
    rt = r["resourceType"]
    if rt in c.codings and data.draw(st.booleans(), label="recode"):
        coding = data.draw(st.sampled_from(c.codings[rt]), label="coding")
        key = "code" if "code" in r else "medicationCodeableConcept" if "medicationCodeableConcept" in r else None
        if key:
            r[key] = {"coding": [dict(coding)], "text": coding.get("display", coding["code"])}

    def visit(node, path):
        if isinstance(node, dict):
            if "value" in node and "unit" in node and isinstance(node["value"], (int, float)):
                if data.draw(st.booleans(), label="revalue"):
                    v = data.draw(st.one_of(st.integers(0, 2000), st.floats(0, 2000, allow_nan=False).map(lambda x: round(x, 2))), label="value")
                    node["value"] = v
            for k, v in list(node.items()):
                if isinstance(v, str) and len(v) >= 10 and v[:4].isdigit() and v[4] == "-" and k != "id":
                    if data.draw(st.integers(0, 3), label="redate") == 0:
                        node[k] = data.draw(st.dates(min_value=__import__("datetime").date(1990, 1, 1),
                                                     max_value=__import__("datetime").date(2026, 5, 31)), label="date").isoformat()
    _walk(r, visit)


def valid_fhir_patient(data) -> list[dict]:
    c = corpus()
    rs = copy.deepcopy(data.draw(st.sampled_from(c.bundles), label="example"))
    patient, rest = rs[0], rs[1:]
    keep = data.draw(st.lists(st.booleans(), min_size=len(rest), max_size=len(rest)), label="subset")
    kept = [r for r, k in zip(rest, keep) if k]
    # keep what the kept records reference (Medication, a Procedure in partOf): a dangling reference
    # is an input error by design, not a valid patient
    while True:
        text = json.dumps(kept)
        more = [r for r in rest if r not in kept and r.get("id") and r["id"] in text]
        if not more:
            break
        kept += more
    rest = [r for r in rest if r in kept]
    for r in rest:
        _perturb_valid(r, data, c)
    return _remap_ids([patient] + rest, data)


def bundle_bytes(resources: list[dict]) -> bytes:
    return json.dumps({"resourceType": "Bundle", "type": "collection",
                       "entry": [{"fullUrl": f"urn:uuid:{r.get('id')}", "resource": r} for r in resources]},
                      indent=1, ensure_ascii=False).encode("utf-8")


def ndjson_bytes(resources: list[dict]) -> bytes:
    # NDJSON references use "Patient/<id>", as a Bulk Data export does
    types = {r.get("id"): r.get("resourceType") for r in resources if isinstance(r, dict)}
    lines = [re.sub(r'"urn:uuid:([^"]*)"', lambda m: f'"{types.get(m.group(1), "Patient")}/{m.group(1)}"',
                    json.dumps(r, ensure_ascii=False)) for r in resources]
    return ("\n".join(lines) + "\n").encode("utf-8")


def _remap_turtle(base: str, triples: list[ox.Triple], data) -> list[ox.Triple]:
    new = f"https://example.org/b12kg/fuzz-{_new_id(data)}/"

    def t(term):
        if isinstance(term, ox.NamedNode) and term.value.startswith(base):
            return ox.NamedNode(new + term.value[len(base):])
        return term
    return [ox.Triple(t(x.subject), t(x.predicate), t(x.object)) for x in triples]


def valid_turtle_patient(data) -> list[ox.Triple]:
    c = corpus()
    base, triples = data.draw(st.sampled_from(c.turtle), label="ttl-example")
    patient = {x.subject for x in triples if x.predicate.value == RDF_TYPE and x.object.value == B12 + "Patient"}
    subjects = sorted({x.subject.value for x in triples if x.subject not in patient})
    keep = set(s for s, k in zip(subjects, data.draw(st.lists(st.booleans(), min_size=len(subjects), max_size=len(subjects)), label="ttl-subset")) if k)
    out = []
    for x in triples:
        if x.subject not in patient and x.subject.value not in keep:
            continue
        o = x.object
        if isinstance(o, ox.Literal) and o.datatype.value in (XSD + "integer", XSD + "decimal") and data.draw(st.integers(0, 2), label="ttl-revalue") == 0:
            o = ox.Literal(str(data.draw(st.integers(0, 2000), label="ttl-value")), datatype=o.datatype)
        elif isinstance(o, ox.Literal) and o.datatype.value == XSD + "date" and data.draw(st.integers(0, 3), label="ttl-redate") == 0:
            import datetime
            o = ox.Literal(data.draw(st.dates(datetime.date(1990, 1, 1), datetime.date(2026, 5, 31)), label="ttl-date").isoformat(), datatype=o.datatype)
        out.append(ox.Triple(x.subject, x.predicate, o))
    return _remap_turtle(base, out, data)


def turtle_bytes(triples: list[ox.Triple]) -> bytes:
    return ox.serialize(triples, format=ox.RdfFormat.TURTLE, prefixes={"b12": B12, "xsd": XSD})


# ------------------------------------------------------------------------------------------
# Mutations
# ------------------------------------------------------------------------------------------

WEIRD_STRINGS = ["", " ", "\u0000", "\ud7ff\ufffd", "é\u0301", "𝔅𝟙𝟚", "\u202e" + "lmth.exe", "a" * 5000,
                 "2026-02-30", "2026-13-01", "0000-00-00", "9999-12-31T25:61:61Z", "-2026-01-01", "2026",
                 "Patient/", "Patient/../../etc/passwd", "urn:uuid:", "#", "pg/mL", "mmol/L", "furlong",
                 "NaN", "Infinity", "1e309", "-0", "<script>", '"; DROP', "@prefix", "_:b0"]
WEIRD_NUMBERS = [0, -1, -0.0, 1e308, -1e308, 10**30, -10**30, 2**63, 1e-320, 0.1 + 0.2, 12345678901234567890.5]


def weird_value(data):
    return data.draw(st.one_of(
        st.sampled_from(WEIRD_STRINGS),
        st.sampled_from(WEIRD_NUMBERS),
        st.text(max_size=30),
        st.integers(),
        st.floats(allow_nan=False, allow_infinity=False),
        st.none(), st.booleans(),
        st.just([]), st.just({}),
        st.recursive(st.none() | st.integers() | st.text(max_size=5),
                     lambda ch: st.lists(ch, max_size=3) | st.dictionaries(st.text(max_size=5), ch, max_size=3), max_leaves=10),
    ), label="weird")


def _paths(node, path=()):
    out = [path]
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, path + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, path + (i,))
    return out


def _get(node, path):
    for p in path:
        node = node[p]
    return node


def mutate_json(doc, data, c: Corpus):
    """1-4 mutations anywhere in a JSON document: drop, retype, weird value, unknown code, wrong unit,
    impossible date, deep nesting, duplicate."""
    for _ in range(data.draw(st.integers(1, 4), label="n-mutations")):
        paths = [p for p in _paths(doc) if p]
        if not paths:
            break
        path = data.draw(st.sampled_from(paths), label="path")
        parent, key = _get(doc, path[:-1]), path[-1]
        op = data.draw(st.sampled_from(["drop", "weird", "weird", "retype", "unknown-code", "wrong-unit",
                                        "bad-date", "nest", "duplicate", "resourcetype", "huge"]), label="op")
        cur = parent[key]
        if op == "drop":
            del parent[key]
        elif op == "weird":
            parent[key] = weird_value(data)
        elif op == "retype":
            parent[key] = [cur] if not isinstance(cur, list) else {"0": cur} if data.draw(st.booleans()) else json.dumps(cur)
        elif op == "unknown-code":
            parent[key] = {"coding": [{"system": data.draw(st.sampled_from(["http://loinc.org", "http://snomed.info/sct", "urn:x"])),
                                       "code": data.draw(st.text(min_size=0, max_size=12))}]}
        elif op == "wrong-unit":
            parent[key] = {"value": data.draw(st.sampled_from(WEIRD_NUMBERS + [179, 5.2])),
                           "unit": data.draw(st.sampled_from(c.units + ["furlong", "", "mg/dL/s", "10*12/L"])),
                           "system": "http://unitsofmeasure.org",
                           "code": data.draw(st.sampled_from(c.units + ["furlong", "", "[ft_i]", "%{x"]))}
        elif op == "bad-date":
            parent[key] = data.draw(st.sampled_from(["2026-02-30", "2025-02-29", "2026-00-10", "1850-01-01", "2999-01-01",
                                                     "2026-06-01T24:00:00Z", "2026-1-1", "20260601", "2026-06-01T10:00:00+25:00",
                                                     "0001-01-01", "9999-12-31", "2026-06"]))
        elif op == "nest":
            v = cur
            for _ in range(data.draw(st.integers(1, 200), label="depth")):
                v = [v] if data.draw(st.booleans()) else {"x": v}
            parent[key] = v
        elif op == "duplicate" and isinstance(parent, list):
            parent.append(copy.deepcopy(cur))
        elif op == "huge":  # an out-of-range number where a quantity value is expected
            targets = [p for p in paths if p[-1] == "value" and isinstance(_get(doc, p), (int, float))]
            if targets:
                t = data.draw(st.sampled_from(targets), label="huge-path")
                _get(doc, t[:-1])["value"] = data.draw(st.sampled_from([10**18, 10**19, -10**19, 10**25, 1e30, -1e300, 1e-30, 10**100]), label="huge-value")
        elif op == "resourcetype":
            parent[key] = {"resourceType": data.draw(st.sampled_from(["Patient", "Observation", "Bundle", "Basic", "Nope", ""]))}
    return doc


def mutate_turtle(triples: list[ox.Triple], data) -> bytes:
    triples = list(triples)
    text_patches = []
    for _ in range(data.draw(st.integers(1, 4), label="ttl-n-mutations")):
        if not triples:
            break
        i = data.draw(st.integers(0, len(triples) - 1), label="ttl-index")
        x = triples[i]
        op = data.draw(st.sampled_from(["drop", "literal", "datatype", "class", "iri", "bnode", "raw", "huge"]), label="ttl-op")
        if op == "huge":  # an out-of-range b12:value / b12:dose
            nums = [j for j, y in enumerate(triples) if isinstance(y.object, ox.Literal) and y.object.datatype.value in (XSD + "integer", XSD + "decimal")]
            if nums:
                i = data.draw(st.sampled_from(nums), label="ttl-huge-index")
                x = triples[i]
                op = "datatype"
        if op == "drop":
            triples.pop(i)
        elif op == "literal":
            v = data.draw(st.one_of(st.sampled_from(WEIRD_STRINGS), st.text(max_size=20)), label="ttl-lex")
            dt = data.draw(st.sampled_from([XSD + "integer", XSD + "decimal", XSD + "date", XSD + "string", XSD + "dateTime", XSD + "boolean"]))
            try:
                triples[i] = ox.Triple(x.subject, x.predicate, ox.Literal(v, datatype=ox.NamedNode(dt)))
            except (ValueError, TypeError):
                pass
        elif op == "datatype":
            n = data.draw(st.sampled_from(WEIRD_NUMBERS + [-5, 10**19, 10**400]), label="ttl-num")
            triples[i] = ox.Triple(x.subject, x.predicate, ox.Literal(str(n), datatype=ox.NamedNode(XSD + "decimal")))
        elif op == "class":
            triples[i] = ox.Triple(x.subject, ox.NamedNode(RDF_TYPE), ox.NamedNode(B12 + data.draw(st.sampled_from(
                ["Patient", "TotalB12Result", "MedicationUse", "Nope", "HaemoglobinResult", "Condition", ""]))))
        elif op == "iri":
            triples[i] = ox.Triple(x.subject, x.predicate, ox.NamedNode(B12 + data.draw(st.text(alphabet="abcXYZ-_0", max_size=8))))
        elif op == "bnode":
            triples[i] = ox.Triple(ox.BlankNode(), x.predicate, x.object)
        elif op == "raw":
            text_patches.append(data.draw(st.sampled_from([
                "\n<urn:x> <urn:y> \"\\uD800\" .\n", "\n@base <rel> .\n", "\n<urn:x> <urn:y> \"x\"@en-- .\n",
                "\n[] a <https://w3id.org/b12kg/Patient> .\n", "\n" + "(" * 300 + ")" * 300 + " <urn:p> 1 .\n",
                "\n<urn:a> <urn:b> " + "[ <urn:c> " * 300 + "1" + " ]" * 300 + " .\n",
                "\n<urn:x> <https://w3id.org/b12kg/subject> <urn:x> .\n"])))
    return ox.serialize(triples, format=ox.RdfFormat.TURTLE) + "".join(text_patches).encode("utf-8")


def truncate(blob: bytes, data) -> bytes:
    if not blob:
        return blob
    return blob[:data.draw(st.integers(0, len(blob) - 1), label="cut")]
