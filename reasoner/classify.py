"""OWL 2 RL classification of patient facts with the ``reasonable`` reasoner.

Only class assertions (to named classes) and object-property links between data nodes are taken
back from the closure: literals are never copied (reasonable retypes plain strings as xsd:string)
and nothing about the ontology's own terms is added to the data.
"""
from __future__ import annotations

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
