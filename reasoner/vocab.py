"""Namespaces and the IRIs the engine itself needs (one module; tests import it)."""
from __future__ import annotations

from pyoxigraph import NamedNode

BASE = "https://w3id.org/b12kg/"
STATEMENT = BASE + "statement/"
RULE = BASE + "rule/"
SHAPE = BASE + "shape/"
SOURCE = BASE + "source/"

RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
RDFS = "http://www.w3.org/2000/01/rdf-schema#"
OWL = "http://www.w3.org/2002/07/owl#"
XSD = "http://www.w3.org/2001/XMLSchema#"
SKOS = "http://www.w3.org/2004/02/skos/core#"
PROV = "http://www.w3.org/ns/prov#"
SH = "http://www.w3.org/ns/shacl#"
DCTERMS = "http://purl.org/dc/terms/"

# Named graphs of the working store.
G_ONTOLOGY = NamedNode(BASE + "graph/ontology")
G_DATA = NamedNode(BASE + "graph/data")
G_CONTEXT = NamedNode(BASE + "graph/context")
G_INFERRED = NamedNode(BASE + "graph/inferred")
G_REPORT = NamedNode(BASE + "graph/report")

CONTEXT = NamedNode(BASE + "run/context")
ENGINE = NamedNode(BASE + "engine")

PREFIXES = {
    "b12": BASE,
    "b12g": BASE + "graph/",
    "stmt": STATEMENT,
    "rule": RULE,
    "shape": SHAPE,
    "src": SOURCE,
    "band": BASE + "band/",
    "window": BASE + "window/",
    "rdf": RDF,
    "rdfs": RDFS,
    "owl": OWL,
    "xsd": XSD,
    "skos": SKOS,
    "prov": PROV,
    "sh": SH,
    "dcterms": DCTERMS,
    "sct": "http://snomed.info/id/",
    "loinc": "https://loinc.org/rdf/",
    "rxnorm": "http://purl.bioontology.org/ontology/RXNORM/",
    "local": BASE + "CodeSystem/local/",
}


def b12(name: str) -> NamedNode:
    return NamedNode(BASE + name)


def prov(name: str) -> NamedNode:
    return NamedNode(PROV + name)


def sparql_prefixes() -> str:
    return "".join(f"PREFIX {k}: <{v}>\n" for k, v in PREFIXES.items())


RDF_TYPE = NamedNode(RDF + "type")
