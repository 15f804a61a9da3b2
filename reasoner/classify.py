"""OWL 2 RL classification of patient facts with the ``reasonable`` reasoner.

Only class assertions (to named classes) and object-property links between data nodes are taken
back from the closure: literals are never copied (reasonable retypes plain strings as xsd:string)
and nothing about the ontology's own terms is added to the data.
"""
from __future__ import annotations

from functools import cached_property

import pyoxigraph as ox
import rdflib

from .errors import B12kgError
from .vocab import RDF, RDF_TYPE

_SKIP_CLASSES = {"http://www.w3.org/2002/07/owl#Thing", "http://www.w3.org/2002/07/owl#NamedIndividual"}


def to_rdflib(term):
    if isinstance(term, ox.NamedNode):
        return rdflib.URIRef(term.value)
    if isinstance(term, ox.BlankNode):
        return rdflib.BNode(term.value)
    if isinstance(term, ox.Literal):
        if term.language:
            return rdflib.Literal(term.value, lang=term.language)
        return rdflib.Literal(term.value, datatype=rdflib.URIRef(term.datatype.value))
    raise TypeError(term)


def to_oxigraph(term):
    if isinstance(term, rdflib.URIRef):
        return ox.NamedNode(str(term))
    if isinstance(term, rdflib.BNode):
        return ox.BlankNode(str(term))
    if term.language:
        return ox.Literal(str(term), language=term.language)
    return ox.Literal(str(term), datatype=ox.NamedNode(str(term.datatype or XSD_STRING)))


XSD_STRING = "http://www.w3.org/2001/XMLSchema#string"


def classify(ontology, data_triples, data_nodes: set[str]) -> list[ox.Triple]:
    """Return inferred triples about ``data_nodes`` (IRIs as strings)."""
    import reasonable

    triples = list(ontology)
    triples += [(to_rdflib(s), to_rdflib(p), to_rdflib(o)) for s, p, o in data_triples if not isinstance(o, ox.Literal)]
    r = reasonable.PyReasoner()
    try:
        r.from_graph(triples)
        closure = r.reason()
    except BaseException as exc:  # reasonable raises a Rust PanicException (a BaseException)
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            raise
        raise B12kgError(f"OWL reasoner failed: {exc}") from None
    out: list[ox.Triple] = []
    for s, p, o in closure:
        if not isinstance(s, rdflib.URIRef) or str(s) not in data_nodes:
            continue
        if not isinstance(o, rdflib.URIRef):
            continue
        if str(p) == RDF + "type":
            if str(o) in _SKIP_CLASSES:
                continue
            out.append(ox.Triple(ox.NamedNode(str(s)), RDF_TYPE, ox.NamedNode(str(o))))
        elif str(o) in data_nodes:
            out.append(ox.Triple(ox.NamedNode(str(s)), ox.NamedNode(str(p)), ox.NamedNode(str(o))))
    return out


# ---- the compiled fast path --------------------------------------------------------------------
#
# ``reasonable`` recomputes the closure of the whole TBox (about 1,000 triples) on every call,
# which costs ~14 ms per evaluation. The TBox never changes between evaluations, so it is closed
# once (by ``reasonable`` itself) and compiled into lookup tables for the OWL 2 RL instance rules
# its axioms can trigger (cax-sco/eqc, cls-int1/2, cls-uni, cls-svf1/2, cls-hv1/2, cls-avf,
# prp-dom, prp-rng, prp-spo1, prp-inv1/2, prp-symp, prp-trp). Each evaluation then runs a
# worklist fixpoint over its own facts only. A TBox or a patient graph using anything else
# (owl:sameAs, functional properties, schema triples in the data, ...) is handed to ``reasonable``
# unchanged, and tests/test_parity.py checks the two give the same triples.

OWL = "http://www.w3.org/2002/07/owl#"
RDFS_NS = "http://www.w3.org/2000/01/rdf-schema#"
_THING = OWL + "Thing"
_TYPE = RDF + "type"
_SUPPORTED_TBOX_PREDICATES = {
    _TYPE, RDFS_NS + "subClassOf", RDFS_NS + "subPropertyOf", RDFS_NS + "domain", RDFS_NS + "range",
    OWL + "equivalentClass", OWL + "intersectionOf", OWL + "unionOf", OWL + "someValuesFrom",
    OWL + "allValuesFrom", OWL + "hasValue", OWL + "onProperty", OWL + "inverseOf", OWL + "oneOf",
    RDF + "first", RDF + "rest",
}
_SUPPORTED_META_TYPES = {
    OWL + "Class", OWL + "Restriction", OWL + "NamedIndividual", OWL + "ObjectProperty",
    OWL + "DatatypeProperty", OWL + "AnnotationProperty", OWL + "SymmetricProperty",
    OWL + "TransitiveProperty", RDFS_NS + "Class", RDF + "Property",
}
_SCHEMA_NAMESPACES = (OWL, RDFS_NS)


def _key(term) -> str:
    """A node as a string: IRIs as themselves, blank nodes as ``_:id``."""
    if isinstance(term, (rdflib.BNode, ox.BlankNode)):
        return "_:" + (term.value if isinstance(term, ox.BlankNode) else str(term))
    if isinstance(term, ox.NamedNode):
        return term.value
    return str(term)


class CompiledTBox:
    """The TBox closed once and indexed by the instance rules that read it."""

    def __init__(self, ontology):
        import reasonable

        triples = list(ontology)
        self.supported = all(str(p) in _SUPPORTED_TBOX_PREDICATES for _, p, _ in triples) and all(
            str(o) in _SUPPORTED_META_TYPES for _, p, o in triples
            if str(p) == _TYPE and str(o).startswith(_SCHEMA_NAMESPACES + (RDF,)))
        r = reasonable.PyReasoner()
        r.from_graph(triples)
        closure = [(_key(s), str(p), _key(o)) for s, p, o in r.reason() if not isinstance(o, rdflib.Literal)]
        by_sp: dict[tuple[str, str], list[str]] = {}
        for s, p, o in closure:
            by_sp.setdefault((s, p), []).append(o)

        def one(s: str, p: str) -> str | None:
            v = by_sp.get((s, p))
            return v[0] if v else None

        def members(head: str | None) -> list[str]:
            out, seen = [], set()
            while head and head != RDF + "nil" and head not in seen:
                seen.add(head)
                first = one(head, RDF + "first")
                if first is not None:
                    out.append(first)
                head = one(head, RDF + "rest")
            return out

        sub: dict[str, set[str]] = {}
        for s, p, o in closure:
            if p == RDFS_NS + "subClassOf":
                sub.setdefault(s, set()).add(o)
            elif p == OWL + "equivalentClass":
                sub.setdefault(s, set()).add(o)
                sub.setdefault(o, set()).add(s)
        self.sup = {c: _reach(c, sub) for c in sub}
        subp: dict[str, set[str]] = {}
        for s, p, o in closure:
            if p == RDFS_NS + "subPropertyOf":
                subp.setdefault(s, set()).add(o)
        self.supprop = {p: _reach(p, subp) - {p} for p in subp}
        self.dom: dict[str, set[str]] = {}
        self.rng: dict[str, set[str]] = {}
        self.inv: dict[str, set[str]] = {}
        self.sym: set[str] = set()
        self.trans: set[str] = set()
        for s, p, o in closure:
            if p == RDFS_NS + "domain":
                self.dom.setdefault(s, set()).add(o)
            elif p == RDFS_NS + "range":
                self.rng.setdefault(s, set()).add(o)
            elif p == OWL + "inverseOf":
                self.inv.setdefault(s, set()).add(o)
                self.inv.setdefault(o, set()).add(s)
            elif p == _TYPE and o == OWL + "SymmetricProperty":
                self.sym.add(s)
            elif p == _TYPE and o == OWL + "TransitiveProperty":
                self.trans.add(s)
        self.intersection: dict[str, list[str]] = {}
        self.int_by_member: dict[str, list[str]] = {}
        self.union_by_member: dict[str, list[str]] = {}
        self.svf_by_prop: dict[str, list[tuple[str, str]]] = {}
        self.svf_by_filler: dict[str, list[tuple[str, str]]] = {}
        self.hv_by_class: dict[str, list[tuple[str, str]]] = {}
        self.hv_by_prop: dict[str, list[tuple[str, str]]] = {}
        self.avf_by_class: dict[str, list[tuple[str, str]]] = {}
        self.avf_by_prop: dict[str, list[tuple[str, str]]] = {}
        for s, p, o in closure:
            if p == OWL + "intersectionOf":
                ms = members(o)
                self.intersection[s] = ms
                for m in set(ms):
                    self.int_by_member.setdefault(m, []).append(s)
            elif p == OWL + "unionOf":
                for m in set(members(o)):
                    self.union_by_member.setdefault(m, []).append(s)
            elif p == OWL + "someValuesFrom":
                for prop in by_sp.get((s, OWL + "onProperty"), []):
                    self.svf_by_prop.setdefault(prop, []).append((s, o))
                    self.svf_by_filler.setdefault(o, []).append((s, prop))
            elif p == OWL + "hasValue":
                for prop in by_sp.get((s, OWL + "onProperty"), []):
                    self.hv_by_class.setdefault(s, []).append((prop, o))
                    self.hv_by_prop.setdefault(prop, []).append((s, o))
            elif p == OWL + "allValuesFrom":
                for prop in by_sp.get((s, OWL + "onProperty"), []):
                    self.avf_by_class.setdefault(s, []).append((prop, o))
                    self.avf_by_prop.setdefault(prop, []).append((s, o))
        #: the closure's class assertions (ontology individuals, incl. cls-oo) start every fixpoint
        self.types: dict[str, set[str]] = {}
        for s, p, o in closure:
            if p == _TYPE:
                self.types.setdefault(s, set()).add(o)

    def accepts(self, triples: list[tuple[str, str, str]]) -> bool:
        """Patient facts the compiled rules cover: no schema triples, no OWL/RDFS vocabulary."""
        for _, p, o in triples:
            if p == _TYPE:
                if o.startswith(_SCHEMA_NAMESPACES) and o != _THING:
                    return False
            elif p.startswith(_SCHEMA_NAMESPACES) or p in (RDF + "first", RDF + "rest"):
                return False
        return True

    def closure(self, triples: list[tuple[str, str, str]]) -> tuple[dict[str, set[str]], set[tuple[str, str, str]]]:
        """The OWL 2 RL fixpoint of the TBox plus these (non-literal) triples: (types, edges).

        The fixpoint of the ontology's own individuals is computed once (``_base``); each call
        starts from it and only propagates the new facts, copying a node's types on first change.
        """
        base_types, base_edges, base_out, base_in = self._base
        types: dict[str, set[str]] = {}
        edges: set[tuple[str, str, str]] = set()
        out_by_sp: dict[tuple[str, str], set[str]] = {}
        in_by_op: dict[tuple[str, str], set[str]] = {}
        queue: list[tuple] = []
        empty: frozenset = frozenset()

        def types_of(x: str):
            ts = types.get(x)
            return ts if ts is not None else base_types.get(x, empty)

        def add_type(x: str, c: str) -> None:
            ts = types.get(x)
            if ts is None:
                if c in base_types.get(x, empty):
                    return
                ts = types[x] = set(base_types.get(x, empty))
            if c not in ts:
                ts.add(c)
                queue.append((x, c))

        def add_edge(s: str, p: str, o: str) -> None:
            e = (s, p, o)
            if e not in edges and e not in base_edges:
                edges.add(e)
                out_by_sp.setdefault((s, p), set()).add(o)
                in_by_op.setdefault((o, p), set()).add(s)
                queue.append(e)

        def objects(s: str, p: str) -> list[str]:
            return [*out_by_sp.get((s, p), ()), *base_out.get((s, p), ())]

        def subjects(o: str, p: str) -> list[str]:
            return [*in_by_op.get((o, p), ()), *base_in.get((o, p), ())]

        for s, p, o in triples:
            if p == _TYPE:
                add_type(s, o)
            else:
                add_edge(s, p, o)
        self._propagate(queue, types_of, add_type, add_edge, objects, subjects)
        all_types = dict(base_types)
        all_types.update(types)
        return all_types, edges | base_edges

    @cached_property
    def _base(self):
        """The fixpoint of the ontology individuals' own class assertions (no patient facts)."""
        types: dict[str, set[str]] = {}
        edges: set[tuple[str, str, str]] = set()
        out_by_sp: dict[tuple[str, str], set[str]] = {}
        in_by_op: dict[tuple[str, str], set[str]] = {}
        queue: list[tuple] = []

        def add_type(x: str, c: str) -> None:
            ts = types.setdefault(x, set())
            if c not in ts:
                ts.add(c)
                queue.append((x, c))

        def add_edge(s: str, p: str, o: str) -> None:
            if (s, p, o) not in edges:
                edges.add((s, p, o))
                out_by_sp.setdefault((s, p), set()).add(o)
                in_by_op.setdefault((o, p), set()).add(s)
                queue.append((s, p, o))

        for x, cs in self.types.items():
            for c in cs:
                add_type(x, c)
        self._propagate(queue, lambda x: types.get(x, ()), add_type, add_edge,
                        lambda s, p: list(out_by_sp.get((s, p), ())), lambda o, p: list(in_by_op.get((o, p), ())))
        return types, frozenset(edges), out_by_sp, in_by_op

    def _propagate(self, queue, types_of, add_type, add_edge, objects, subjects) -> None:
        """Run the instance rules until nothing new is derived."""
        while queue:
            item = queue.pop()
            if len(item) == 2:
                x, c = item
                for d in self.sup.get(c, ()):
                    add_type(x, d)
                for i in self.int_by_member.get(c, ()):
                    xs = types_of(x)
                    if i not in xs and all(m in xs for m in self.intersection[i]):
                        add_type(x, i)
                for m in self.intersection.get(c, ()):
                    add_type(x, m)
                for u in self.union_by_member.get(c, ()):
                    add_type(x, u)
                for prop, v in self.hv_by_class.get(c, ()):
                    add_edge(x, prop, v)
                for restriction, prop in self.svf_by_filler.get(c, ()):
                    for s in subjects(x, prop):
                        add_type(s, restriction)
                for prop, d in self.avf_by_class.get(c, ()):
                    for o in objects(x, prop):
                        add_type(o, d)
            else:
                s, p, o = item
                for q in self.supprop.get(p, ()):
                    add_edge(s, q, o)
                for q in self.inv.get(p, ()):
                    add_edge(o, q, s)
                if p in self.sym:
                    add_edge(o, p, s)
                for c in self.dom.get(p, ()):
                    add_type(s, c)
                for c in self.rng.get(p, ()):
                    add_type(o, c)
                for restriction, filler in self.svf_by_prop.get(p, ()):
                    if filler == _THING or filler in types_of(o):
                        add_type(s, restriction)
                for restriction, v in self.hv_by_prop.get(p, ()):
                    if o == v:
                        add_type(s, restriction)
                for restriction, d in self.avf_by_prop.get(p, ()):
                    if restriction in types_of(s):
                        add_type(o, d)
                if p in self.trans:
                    for z in objects(o, p):
                        add_edge(s, p, z)
                    for w in subjects(s, p):
                        add_edge(w, p, o)


def _reach(start: str, graph: dict[str, set[str]]) -> set[str]:
    seen = {start}
    todo = [start]
    while todo:
        for n in graph.get(todo.pop(), ()):
            if n not in seen:
                seen.add(n)
                todo.append(n)
    return seen


def classify_fast(compiled: CompiledTBox, ontology, data_triples, data_nodes: set[str]) -> list[ox.Triple]:
    """Same result as :func:`classify`; uses the compiled TBox when it and the data allow."""
    facts = [(_key(s), p.value, _key(o)) for s, p, o in data_triples if not isinstance(o, ox.Literal)]
    if not compiled.supported or not compiled.accepts(facts):
        return classify(ontology, data_triples, data_nodes)
    types, edges = compiled.closure(facts)
    out: list[ox.Triple] = []
    for node in sorted(data_nodes):
        for c in sorted(types.get(node, ())):
            if c in _SKIP_CLASSES or c.startswith("_:"):
                continue
            out.append(ox.Triple(ox.NamedNode(node), RDF_TYPE, ox.NamedNode(c)))
    out += [ox.Triple(ox.NamedNode(s), ox.NamedNode(p), ox.NamedNode(o))
            for s, p, o in sorted(edges) if s in data_nodes and o in data_nodes]
    return out
