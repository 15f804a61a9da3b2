"""SHACL validation: input-validity and safety shapes over facts + inferences.

Safety results become report items (b12:SafetyViolation) linked to their statement, the patient,
the facts the shape named (sh:value) and the shape. Input-validity results become b12:InputProblem
items naming the record and the problem.
"""
from __future__ import annotations

import pyoxigraph as ox
import rdflib
from rdflib.namespace import SH as RSH

from .classify import to_rdflib
from .vocab import DCTERMS, ENGINE, G_INFERRED, RDF_TYPE, SH, STATEMENT, b12, prov


def data_graph(ev) -> rdflib.Graph:
    """Facts, inferences and context, plus the slice of the ontology the shapes read.

    Records already carry every superclass (OWL closure), so the class hierarchy need not be
    re-walked by the validator; keeping the ontology's 3,000 annotation triples out of the data
    graph makes pySHACL about 10x faster with the same results."""
    from .vocab import G_ONTOLOGY

    g = rdflib.Graph()
    for t in ev.kb.shapes_ontology_slice:
        g.add(t)
    for q in ev.store:
        if q.graph_name == G_ONTOLOGY:
            continue
        g.add((to_rdflib(q.subject), to_rdflib(q.predicate), to_rdflib(q.object)))
    return g


def oxigraph_data_graph(ev) -> rdflib.Graph:
    """The same data graph held in Oxigraph behind rdflib (oxrdflib): pySHACL's SPARQL-based
    constraints then run in Oxigraph's engine instead of rdflib's (same results, ~10x faster)."""
    from oxrdflib import OxigraphStore

    from .vocab import G_ONTOLOGY

    store = ox.Store()
    store.extend(ev.kb.shapes_ontology_slice_quads)
    store.extend(ox.Quad(q.subject, q.predicate, q.object, ox.DefaultGraph()) for q in ev.store if q.graph_name != G_ONTOLOGY)
    return rdflib.Graph(store=OxigraphStore(store=store), identifier=rdflib.graph.DATASET_DEFAULT_GRAPH_ID)


def run_pyshacl(ev, engine: str = "pyshacl") -> rdflib.Graph:
    """Validate with pySHACL; ``engine='pyshacl-rdflib'`` keeps the data in rdflib's memory store
    (the reference path, slower), the default holds it in Oxigraph via oxrdflib."""
    from pyshacl import validate

    graph = data_graph(ev) if engine == "pyshacl-rdflib" else oxigraph_data_graph(ev)
    _conforms, results, text = validate(
        graph,
        inplace=True,
        shacl_graph=ev.kb.shapes_rdflib,
        inference="none",
        advanced=True,
        allow_warnings=True,
    )
    if not isinstance(results, rdflib.Graph):
        from .errors import KnowledgeBaseError

        raise KnowledgeBaseError(f"shapes/: pySHACL cannot run the shapes: {' '.join(str(text).split())[:300]}")
    return results


def pyshacl_results(ev, engine: str = "pyshacl") -> list:
    """Run pySHACL and turn its report graph into the engine-neutral results."""
    from .shacl_fast import Result

    results = run_pyshacl(ev, engine)
    shapes = ev.kb.shapes_rdflib
    ident = rdflib.URIRef(DCTERMS + "identifier")
    out = set()
    for res in results.subjects(rdflib.RDF.type, RSH.ValidationResult):
        focus = results.value(res, RSH.focusNode)
        shape = results.value(res, RSH.sourceShape)
        if focus is None or shape is None or isinstance(focus, rdflib.BNode):
            continue
        owner = shape
        sid = shapes.value(owner, ident)
        if sid is None:  # a property shape reports under its node shape's identifier
            parent = shapes.value(None, RSH.property, shape)
            if parent is not None:
                owner, sid = parent, shapes.value(parent, ident)
        value = results.value(res, RSH.value)
        msg = results.value(res, RSH.resultMessage)
        out.add(Result(
            str(focus), str(owner), str(sid or owner), str(results.value(res, RSH.resultSeverity) or SH + "Violation"),
            str(msg) if msg is not None else str(sid or owner),
            str(value) if isinstance(value, rdflib.URIRef) else None,
        ))
    return sorted(out, key=lambda r: (r.focus, r.identifier, r.message, r.value or ""))


def run_engine(ev, engine: str = "fast") -> list:
    if engine == "fast":
        from .shacl_fast import validate

        return validate(ev.backend, ev.kb.fast_shapes)
    if engine in ("pyshacl", "pyshacl-rdflib"):
        return pyshacl_results(ev, engine)
    from .errors import UsageError

    raise UsageError(f"unknown SHACL engine '{engine}' (use fast, pyshacl or pyshacl-rdflib)")


def validate_stage(ev, engine: str = "fast") -> None:
    """Validate, then add one report item per (focus node, shape): safety violations on the
    patient, input problems on the record."""
    grouped: dict[tuple[str, str], dict] = {}
    for r in run_engine(ev, engine):
        entry = grouped.setdefault((r.focus, r.identifier), {"shape": r.shape, "severity": r.severity, "messages": set(), "values": set()})
        entry["messages"].add(r.message)
        if r.value:
            entry["values"].add(r.value)
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
            ox.Quad(item, b12("severity"), ox.NamedNode(entry["severity"]), G_INFERRED),
            ox.Quad(item, prov("wasGeneratedBy"), act, G_INFERRED),
            ox.Quad(act, RDF_TYPE, prov("Activity"), G_INFERRED),
            ox.Quad(act, b12("rule"), ox.NamedNode(entry["shape"]), G_INFERRED),
            ox.Quad(act, prov("wasAssociatedWith"), ENGINE, G_INFERRED),
        ]
        for v in sorted(entry["values"]):
            quads.append(ox.Quad(item, prov("wasDerivedFrom"), ox.NamedNode(v), G_INFERRED))
            quads.append(ox.Quad(act, prov("used"), ox.NamedNode(v), G_INFERRED))
    ev.backend.extend(quads)


def _patient_of(ev, record: ox.NamedNode) -> str | None:
    from .pipeline import _patient_of as p

    return p(ev, record)
