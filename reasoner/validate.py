"""SHACL validation: input-validity and safety shapes over facts + inferences.

Safety results become report items (b12:SafetyViolation) linked to their statement, the patient,
the facts the shape named (sh:value) and the shape. Input-validity results become b12:InputProblem
items naming the record and the problem.
"""
from __future__ import annotations

from collections import defaultdict

import pyoxigraph as ox
import rdflib
from rdflib.namespace import SH as RSH

from .classify import to_rdflib
from .vocab import BASE, DCTERMS, ENGINE, G_INFERRED, RDF_TYPE, SH, STATEMENT, b12, prov


def data_graph(ev) -> rdflib.Graph:
    g = rdflib.Graph()
    for q in ev.store:
        g.add((to_rdflib(q.subject), to_rdflib(q.predicate), to_rdflib(q.object)))
    return g


def run_pyshacl(ev) -> rdflib.Graph:
    from pyshacl import validate

    _conforms, results, text = validate(
        data_graph(ev),
        shacl_graph=ev.kb.shapes_rdflib,
        inference="none",
        advanced=True,
        allow_warnings=True,
    )
    if not isinstance(results, rdflib.Graph):
        from .errors import KnowledgeBaseError

        raise KnowledgeBaseError(f"shapes/: pySHACL cannot run the shapes: {' '.join(str(text).split())[:300]}")
    return results


def _term(node) -> ox.NamedNode | ox.Literal:
    if isinstance(node, rdflib.Literal):
        if node.language:
            return ox.Literal(str(node), language=node.language)
        return ox.Literal(str(node), datatype=ox.NamedNode(str(node.datatype))) if node.datatype else ox.Literal(str(node))
    return ox.NamedNode(str(node))


def validate_stage(ev, engine: str = "pyshacl") -> None:
    results = run_pyshacl(ev)
    shapes = ev.kb.shapes_rdflib
    ident = rdflib.URIRef(DCTERMS + "identifier")
    grouped: dict[tuple[str, str], dict] = {}
    values: dict[tuple[str, str], list] = defaultdict(list)
    for res in results.subjects(rdflib.RDF.type, RSH.ValidationResult):
        focus = results.value(res, RSH.focusNode)
        shape = results.value(res, RSH.sourceShape)
        if focus is None or shape is None or isinstance(focus, rdflib.BNode):
            continue
        # property shapes inherit the identifier of their node shape
        owner = shape
        sid = shapes.value(owner, ident)
        if sid is None:
            parent = shapes.value(None, RSH.property, shape)
            if parent is not None:
                owner, sid = parent, shapes.value(parent, ident)
        if sid is None:
            continue
        key = (str(focus), str(sid))
        entry = grouped.setdefault(
            key,
            {
                "shape": owner,
                "severity": results.value(res, RSH.resultSeverity),
                "messages": set(),
                "path": results.value(res, RSH.resultPath),
            },
        )
        msg = results.value(res, RSH.resultMessage)
        if msg is not None:
            entry["messages"].add(str(msg))
        value = results.value(res, RSH.value)
        if value is not None and not isinstance(value, rdflib.BNode) and not isinstance(value, rdflib.Literal):
            values[key].append(value)
    quads: list[ox.Quad] = []
    for (focus, sid), entry in sorted(grouped.items()):
        focus_node = ox.NamedNode(focus)
        item = ox.NamedNode(f"{focus}/b12kg/{sid}")
        act = ox.NamedNode(item.value + "/derivation")
        message = " ".join(sorted(entry["messages"])) or sid
        if sid.startswith("SAFETY-"):
            quads += [
                ox.Quad(item, b12("statement"), ox.NamedNode(STATEMENT + sid), G_INFERRED),
                ox.Quad(item, b12("patient"), focus_node, G_INFERRED),
            ]
        else:
            patient = _patient_of(ev, focus_node)
            quads += [
                ox.Quad(item, RDF_TYPE, b12("InputProblem"), G_INFERRED),
                ox.Quad(item, ox.NamedNode(DCTERMS + "identifier"), ox.Literal(sid), G_INFERRED),
                ox.Quad(item, b12("resource"), focus_node, G_INFERRED),
                ox.Quad(item, prov("wasDerivedFrom"), focus_node, G_INFERRED),
            ]
            if patient is not None:
                quads.append(ox.Quad(item, b12("patient"), ox.NamedNode(patient), G_INFERRED))
        quads += [
            ox.Quad(item, b12("message"), ox.Literal(message), G_INFERRED),
            ox.Quad(item, b12("severity"), ox.NamedNode(str(entry["severity"] or SH + "Violation")), G_INFERRED),
            ox.Quad(item, prov("wasGeneratedBy"), act, G_INFERRED),
            ox.Quad(act, RDF_TYPE, prov("Activity"), G_INFERRED),
            ox.Quad(act, b12("rule"), _term(entry["shape"]), G_INFERRED),
            ox.Quad(act, prov("wasAssociatedWith"), ENGINE, G_INFERRED),
        ]
        for v in sorted(set(values[(focus, sid)]), key=str):
            quads.append(ox.Quad(item, prov("wasDerivedFrom"), _term(v), G_INFERRED))
            quads.append(ox.Quad(act, prov("used"), _term(v), G_INFERRED))
    ev.store.extend(quads)


def _patient_of(ev, record: ox.NamedNode) -> str | None:
    from .pipeline import _patient_of as p

    return p(ev, record)
