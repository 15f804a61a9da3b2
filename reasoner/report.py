"""The report graph and its views (JSON, text, Turtle, JSON-LD).

The report graph (named graph b12g:report) is the result; every view below is computed from it
and the ontology, so JSON, text and RDF always agree. Output is deterministic: rows are sorted.
"""
from __future__ import annotations

import json
from collections import defaultdict

import pyoxigraph as ox

from .pipeline import Evaluation, engine_query
from .vocab import G_REPORT, PREFIXES, RDF_TYPE, b12

KIND_KEYS = {
    "https://w3id.org/b12kg/Finding": "findings",
    "https://w3id.org/b12kg/Recommendation": "recommendations",
    "https://w3id.org/b12kg/SafetyViolation": "violations",
    "https://w3id.org/b12kg/SourceConflict": "conflicts",
}
SEVERITY = {"http://www.w3.org/ns/shacl#Violation": "Violation", "http://www.w3.org/ns/shacl#Warning": "Warning", "http://www.w3.org/ns/shacl#Info": "Info"}


def report_stage(ev: Evaluation) -> None:
    quads = []
    for name in ("report-items", "report-derivations", "report-because", "report-citations", "report-states"):
        quads += [ox.Quad(t.subject, t.predicate, t.object, G_REPORT) for t in ev.query(engine_query(name))]
    for u in ev.unused:
        node = ox.NamedNode(u.resource)
        quads.append(ox.Quad(node, b12("unusedReason"), ox.Literal(u.reason), G_REPORT))
        quads.append(ox.Quad(node, RDF_TYPE, b12("UnusedRecord"), G_REPORT))
    ev.backend.extend(quads)


def _v(term):
    return None if term is None else term.value


def _num(text: str):
    f = float(text)
    return int(f) if f.is_integer() else f


def _statement_tables(ev: Evaluation):
    """Citations, regimens and conflict sides of every statement: ontology data, computed once per
    knowledge base (they do not depend on the patients)."""
    cached = getattr(ev.kb, "_statement_tables", None)
    if cached is None:
        cached = _compute_statement_tables(ev)
        ev.kb._statement_tables = cached
    return cached


def _compute_statement_tables(ev: Evaluation):
    citations = defaultdict(list)
    for r in ev.query(engine_query("citations")):
        citations[r["st"].value].append(
            {
                "document": r["title"].value,
                "document_id": r["docId"].value,
                "reference": _v(r["reference"]) or "",
                "evidence": _v(r["evidence"]) or "not graded in the source",
            }
        )
    for lst in citations.values():
        lst.sort(key=lambda c: (c["document_id"], c["reference"], c["evidence"]))
    regimens = defaultdict(dict)
    for r in ev.query(engine_query("regimens")):
        reg = regimens[r["st"].value].setdefault(r["reg"].value, {})
        for key, var in (
            ("label", "label"), ("drug", "drugLabel"), ("dose", "dose"), ("dose_min", "doseMin"),
            ("dose_max", "doseMax"), ("unit", "unit"), ("route", "routeLabel"), ("frequency", "freqLabel"),
            ("duration", "duration"), ("until", "stop"), ("for_life", "forLife"), ("step", "order"),
            ("assumption", "assumption"),
        ):
            val = _v(r[var])
            if val is None:
                continue
            if key in ("dose", "dose_min", "dose_max"):
                val = _num(val)
            elif key == "step":
                val = int(val)
            elif key == "for_life":
                val = val == "true"
            reg[key] = val
    regimen_lists = {
        st: sorted(regs.values(), key=lambda g: (g.get("step", 0), g.get("label", ""), g.get("drug", "")))
        for st, regs in regimens.items()
    }
    between = defaultdict(list)
    for r in ev.query(engine_query("between")):
        between[r["st"].value].append(r["otherId"].value)
    return citations, regimen_lists, between


def to_dict(ev: Evaluation) -> dict:
    citations, regimens, between = _statement_tables(ev)
    because = defaultdict(set)
    for r in ev.query(engine_query("because")):
        because[r["item"].value].add(r["fact"].value)
    rules = {}
    for r in ev.query(engine_query("item-rules")):
        rules[r["item"].value] = _v(r["file"]) or r["rule"].value
    patients: dict[str, dict] = {}
    for r in ev.query(engine_query("patients")):
        patients.setdefault(r["patient"].value, _empty(r["patient"].value))
    for r in ev.query(engine_query("items")):
        p = r["patient"].value
        st = "https://w3id.org/b12kg/statement/" + r["id"].value
        item = {
            "id": r["id"].value,
            "label": r["label"].value,
            "sources": citations.get(st, []),
            "because": sorted(because.get(r["item"].value, ())),
            "rule": rules.get(r["item"].value, ""),
            "iri": r["item"].value,
        }
        key = KIND_KEYS[r["kind"].value]
        if key == "violations":
            item["severity"] = SEVERITY.get(_v(r["severity"]), "Violation")
            item["message"] = _v(r["message"]) or item["label"]
        if key == "recommendations" and (st in regimens or r["id"].value.startswith(("TX-", "PAIN-"))):
            item["regimen"] = regimens.get(st, [])
        if key == "conflicts":
            item["between"] = sorted(between.get(st, []))
        patients.setdefault(p, _empty(p))[key].append(item)
    for u in ev.unused:
        target = patients.get(u.patient) if u.patient else None
        entry = {"resource": u.resource, "reason": u.reason}
        if target is None:
            patients.setdefault("", _empty(""))["unused"].append(entry)
        else:
            target["unused"].append(entry)
    for r in ev.query(engine_query("input-problems")):
        p = _v(r["patient"]) or ""
        patients.setdefault(p, _empty(p))["input_problems"].append(
            {"id": r["id"].value, "resource": r["resource"].value, "message": r["message"].value,
             "severity": SEVERITY.get(r["severity"].value, "Violation")}
        )
    for p in patients.values():
        for key in ("findings", "recommendations", "violations", "conflicts"):
            p[key].sort(key=lambda i: i["id"])
        p["unused"] = sorted({(u["resource"], u["reason"]) for u in p["unused"]})
        p["unused"] = [{"resource": a, "reason": b} for a, b in p["unused"]]
        p["input_problems"].sort(key=lambda i: (i["resource"], i["id"], i["message"]))
    ordered = [patients[k] for k in sorted(patients) if k != ""]
    if "" in patients:
        ordered.append(patients[""])
    return {"as_of": ev.as_of.isoformat(), "patients": ordered}


def _empty(p: str) -> dict:
    return {"patient": p, "findings": [], "recommendations": [], "violations": [], "conflicts": [], "unused": [], "input_problems": []}


def to_json(ev: Evaluation) -> str:
    return json.dumps(to_dict(ev), indent=2, ensure_ascii=False, sort_keys=False) + "\n"


def to_text(ev: Evaluation) -> str:
    d = to_dict(ev)
    out = [f"b12kg report, as of {d['as_of']}"]
    titles = (("findings", "Findings"), ("recommendations", "Recommendations"), ("violations", "Safety violations"), ("conflicts", "Source conflicts"))
    for p in d["patients"]:
        out.append("")
        out.append(f"Patient {p['patient'] or '(records without a patient)'}")
        for key, title in titles:
            if not p[key]:
                continue
            out.append(f"  {title}:")
            for item in p[key]:
                head = f"    {item['id']}: {item['label']}"
                if key == "violations":
                    head += f" [{item['severity']}]"
                if key == "conflicts":
                    head += f" (between {' and '.join(item['between'])})"
                out.append(head)
                if key == "violations" and item.get("message"):
                    out.append(f"      {item['message']}")
                for reg in item.get("regimen", []):
                    out.append(f"      regimen: {reg.get('label', '')}")
                srcs = "; ".join(
                    f"{s['document_id']}" + (f" ref {s['reference']}" if s["reference"] else "")
                    + (f" ({s['evidence']})" if s["evidence"] != "not graded in the source" else "")
                    for s in item["sources"]
                )
                out.append(f"      sources: {srcs}")
                out.append(f"      because: {', '.join(item['because']) or '-'}")
                out.append(f"      rule: {item['rule']}")
        if p["input_problems"]:
            out.append("  Input problems:")
            for ip in p["input_problems"]:
                out.append(f"    {ip['id']} {ip['resource']}: {ip['message']}")
        if p["unused"]:
            out.append("  Not used:")
            for u in p["unused"]:
                out.append(f"    {u['resource']}: {u['reason']}")
    return "\n".join(out) + "\n"


def to_rdf(ev: Evaluation, fmt: str) -> str:
    import rdflib

    from .classify import to_rdflib

    g = rdflib.Graph()
    for k, v in PREFIXES.items():
        g.bind(k, v)
    for q in ev.backend.quads(graph=G_REPORT):
        g.add((to_rdflib(q.subject), to_rdflib(q.predicate), to_rdflib(q.object)))
    ctx = "https://w3id.org/b12kg/run/context"
    g.add((rdflib.URIRef(ctx), rdflib.URIRef("https://w3id.org/b12kg/asOf"), rdflib.Literal(ev.as_of.isoformat(), datatype=rdflib.XSD.date)))
    if fmt == "turtle":
        return g.serialize(format="turtle")
    if fmt == "jsonld":
        return g.serialize(format="json-ld", context={k: v for k, v in PREFIXES.items()}, indent=2)
    if fmt == "nt":
        return "".join(sorted(g.serialize(format="nt").splitlines(keepends=True)))
    raise ValueError(fmt)
