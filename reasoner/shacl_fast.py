"""A SHACL-SPARQL validator on Oxigraph: the fast path for the project's shapes.

Every shape in shapes/ is a node shape whose constraints are SHACL-SPARQL (``sh:sparql`` with
``sh:select``); this module evaluates exactly that part of SHACL: targets (``sh:targetClass``,
``sh:targetSubjectsOf``, ``sh:targetObjectsOf``, ``sh:targetNode``), pre-binding of ``$this`` to
each focus node (Oxigraph ``substitutions``), ``sh:prefixes``/``sh:declare``, message templates
with ``{?var}``/``{$var}``, ``sh:severity`` and ``sh:deactivated``. A shape using anything else is
refused when the knowledge base loads, so it can never be skipped silently. pySHACL stays the
reference engine (``--shacl pyshacl``); a test checks both give the same results.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import pyoxigraph as ox
import rdflib
from rdflib.namespace import RDF, SH

from .classify import to_oxigraph as _to_ox
from .errors import KnowledgeBaseError
from .guard import required_triples

DCT_IDENTIFIER = rdflib.URIRef("http://purl.org/dc/terms/identifier")
_SUPPORTED = {
    RDF.type, SH.targetClass, SH.targetSubjectsOf, SH.targetObjectsOf, SH.targetNode, SH.severity,
    SH.sparql, SH.deactivated, SH.message, SH.name, SH.description,
}
#: Engine hint on a shape: every group of its SELECT that mentions $this binds it with a triple
#: pattern, so one evaluation with $this free, restricted to the focus nodes, equals evaluating it
#: once per focus node with $this pre-bound (SHACL's definition). The parity test holds it to that.
EVALUATE_UNBOUND = rdflib.URIRef("https://w3id.org/b12kg/evaluateUnbound")
_TEMPLATE = re.compile(r"\{[?$]([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass(frozen=True)
class Result:
    """One validation result, in the terms both engines share."""

    focus: str
    shape: str
    identifier: str
    severity: str
    message: str
    value: str | None


@dataclass
class _Constraint:
    query: str
    message: str | None
    #: (predicate, object) pairs the query cannot match without (reasoner.guard)
    requires: tuple = ()


@dataclass
class _Shape:
    iri: str
    identifier: str
    severity: str
    targets: list[tuple[str, object]]
    constraints: list[_Constraint]
    unbound: bool = False


def _prefixes(shapes: rdflib.Graph, node) -> str:
    out = []
    for decl_owner in shapes.objects(node, SH.prefixes):
        for decl in shapes.objects(decl_owner, SH.declare):
            prefix = shapes.value(decl, SH.prefix)
            ns = shapes.value(decl, SH.namespace)
            if prefix is not None and ns is not None:
                out.append(f"PREFIX {prefix}: <{ns}>")
    return "\n".join(sorted(set(out))) + "\n"


def compile_shapes(shapes: rdflib.Graph) -> list[_Shape]:
    compiled: list[_Shape] = []
    for shape in sorted(set(shapes.subjects(RDF.type, SH.NodeShape)), key=str):
        if (shape, SH.deactivated, rdflib.Literal(True)) in shapes:
            continue
        unsupported = {p for p in shapes.predicates(shape) if str(p).startswith(str(SH)) and p not in _SUPPORTED}
        if unsupported:
            raise KnowledgeBaseError(
                f"shape {shape}: the fast validator supports SHACL-SPARQL node shapes only; "
                f"found {', '.join(sorted(p.n3(shapes.namespace_manager) for p in unsupported))}"
            )
        targets = [(kind, obj) for kind in (SH.targetClass, SH.targetSubjectsOf, SH.targetObjectsOf, SH.targetNode)
                   for obj in shapes.objects(shape, kind)]
        constraints = []
        for c in shapes.objects(shape, SH.sparql):
            if (c, SH.deactivated, rdflib.Literal(True)) in shapes:
                continue
            select = shapes.value(c, SH.select)
            if select is None:
                raise KnowledgeBaseError(f"shape {shape}: sh:sparql without sh:select")
            msg = shapes.value(c, SH.message) or shapes.value(shape, SH.message)
            query = _prefixes(shapes, c) + str(select)
            requires = tuple((ox.NamedNode(p), ox.NamedNode(o)) for p, o in required_triples(query))
            constraints.append(_Constraint(query, str(msg) if msg is not None else None, requires))
        ident = shapes.value(shape, DCT_IDENTIFIER)
        severity = shapes.value(shape, SH.severity) or SH.Violation
        unbound = (shape, EVALUATE_UNBOUND, rdflib.Literal(True)) in shapes
        compiled.append(_Shape(str(shape), str(ident) if ident else str(shape), str(severity), targets, constraints, unbound))
    return compiled


def _focus_nodes(backend, shape: _Shape) -> set:
    nodes: set = set()
    rdf_type = ox.NamedNode(str(RDF.type))
    for kind, obj in shape.targets:
        if kind == SH.targetNode:
            nodes.add(_to_ox(obj))
        elif kind == SH.targetClass:
            nodes.update(q.subject for q in backend.quads(None, rdf_type, _to_ox(obj)))
        elif kind == SH.targetSubjectsOf:
            nodes.update(q.subject for q in backend.quads(None, _to_ox(obj), None))
        elif kind == SH.targetObjectsOf:
            nodes.update(q.object for q in backend.quads(None, _to_ox(obj), None))
    return nodes


def validate(backend, shapes: list[_Shape]) -> list[Result]:
    """Validate the union of the backend's graphs (reasoner.backend); results are deduplicated and sorted."""
    from .pipeline import guard_check

    passes = guard_check(backend)
    results: set[Result] = set()
    for shape in shapes:
        focus_nodes = sorted(_focus_nodes(backend, shape), key=str)
        if not focus_nodes:
            continue
        focus_set = set(focus_nodes)
        for constraint in shape.constraints:
            if passes is not None and not passes(constraint.requires):
                continue
            if shape.unbound:
                runs = [(None, backend.query(constraint.query))]
            else:
                runs = [(focus, backend.query(constraint.query, substitutions={"this": focus})) for focus in focus_nodes]
            for bound, rows in runs:
                names = [v.value for v in rows.variables]
                for row in rows:
                    values = {n: row[n] for n in names}
                    focus = bound if bound is not None else values.get("this")
                    if focus is None or focus not in focus_set:
                        continue
                    message = constraint.message or shape.identifier
                    message = _TEMPLATE.sub(lambda m: _text(values.get(m.group(1)), focus if m.group(1) == "this" else None), message)
                    value = values.get("value") if values.get("value") is not None else focus  # SHACL: default is $this
                    results.add(Result(focus.value, shape.iri, shape.identifier, shape.severity, message,
                                       value.value if isinstance(value, ox.NamedNode) else None))
    return sorted(results, key=lambda r: (r.focus, r.identifier, r.message, r.value or ""))


def _text(term, default=None) -> str:
    term = term if term is not None else default
    if term is None:
        return ""
    return term.value
