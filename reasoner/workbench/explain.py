"""``b12kg explain PATIENT… --id ID``: why a finding, recommendation, violation or conflict fired
for a patient (the facts -> inferred classes -> derived states -> rule -> item -> sources), or,
when it did not fire, which of its conditions the patient fails.

Formats: ``text`` (an indented tree, then the conditions checked), ``dot`` and ``mermaid`` (the
derivation graph; for an identifier that did not fire, the graph of its conditions) and ``json``.
"""
from __future__ import annotations

import json

from ..errors import UsageError
from ..output import write_output as _write

FORMATS = ("text", "dot", "mermaid", "json")


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "explain",
        help="why an identifier fired for a patient (derivation tree or graph), or why it did not",
        description="Explain one catalog identifier for each patient (or the one named by --patient): "
        "the derivation from the patient's facts to the item and its sources when it fired; "
        "otherwise the rule's conditions, each checked against the patient.",
    )
    p.add_argument("inputs", nargs="+", metavar="PATIENT", help="patient data files (Turtle, N-Triples, JSON-LD, RDF/XML)")
    p.add_argument("--id", dest="item_id", required=True, metavar="ID", help="catalog identifier, e.g. TX-NEURO-LOADING")
    p.add_argument("--patient", default=None, metavar="IRI", help="the patient to explain (IRI, or its unique last segment); default: every patient")
    p.add_argument("--as-of", dest="as_of", default=None, help="evaluation date YYYY-MM-DD (default: today)")
    p.add_argument("--input-format", default=None, help="force the input format (turtle, nt, jsonld, xml)")
    p.add_argument("-f", "--format", default="text", choices=FORMATS)
    p.add_argument("-o", "--output", default="-", help="output file (default: stdout)")
    p.set_defaults(handler=run)


def run(args) -> int:
    from ..api import default_kb, recommend
    from ..derivation import ontology

    item_id = _check_id(ontology(default_kb()).statements, args.item_id)
    report = recommend(args.inputs, args.as_of, input_format=args.input_format)
    text = explain(report, item_id, args.patient, args.format)
    _write(text, args.output)
    return 0


def _check_id(statements, item_id: str) -> str:
    cand = item_id.strip()
    for prefix in ("https://w3id.org/b12kg/statement/", "stmt:"):
        if cand.startswith(prefix):
            cand = cand[len(prefix):]
    for c in (cand, cand.upper()):
        if c in statements:
            return c
    raise UsageError(f"--id: unknown identifier '{item_id}' (not a catalog identifier; see docs/guideline/CATALOG.md)")


def select_patients(report, patient: str | None) -> list[str]:
    known = [p["patient"] for p in report.patients if p["patient"]]
    if not known:
        raise UsageError("no patient in the input")
    if patient is None:
        return known
    if patient in known:
        return [patient]
    tail = patient.strip("<>")
    hits = [p for p in known if p == tail or p.endswith("/" + tail) or p.endswith("#" + tail)]
    if len(hits) == 1:
        return hits
    if len(hits) > 1:
        raise UsageError(f"--patient: '{patient}' matches {len(hits)} patients; give the full IRI")
    raise UsageError(f"--patient: no patient '{patient}' in the input")


def explain(report, item_id: str, patient: str | None = None, fmt: str = "text") -> str:
    """The explanation of ``item_id`` for the selected patients, in one of ``FORMATS``."""
    from .. import derivation as d

    item_id = _check_id(d.ontology(report.evaluation.kb).statements, item_id)
    if fmt not in FORMATS:
        raise UsageError(f"unknown format '{fmt}'")
    patients = select_patients(report, patient)
    parts = []
    for p in patients:
        fired = d.find_item(report, p, item_id) is not None
        graph = d.derivation_graph(report, p, item_id) if fired else None
        w = d.why_not(report, p, item_id)
        parts.append((p, fired, graph, w))
    if fmt == "text":
        blocks = []
        for p, fired, graph, w in parts:
            if fired:
                blocks.append(f"Why {item_id} fired\n" + d.tree_text(graph) + "\n" + d.why_not_text(w))
            else:
                blocks.append(f"Why {item_id} did not fire\n" + d.why_not_text(w))
        return "\n".join(blocks)
    if fmt == "json":
        out = {"as_of": report.data["as_of"], "id": item_id, "explanations": []}
        for p, fired, graph, w in parts:
            entry = {"patient": p, "fired": fired, "conditions": w.to_json()}
            if graph is not None:
                entry["derivation"] = d.graph_json(graph)
            out["explanations"].append(entry)
        return json.dumps(out, indent=2, ensure_ascii=False, default=str) + "\n"
    graph = d.compose(g if g is not None else d.why_not_graph(w) for _p, _f, g, w in parts)
    if fmt == "dot":
        return d.to_dot(graph, name=f"{item_id}")
    return d.to_mermaid(graph)


