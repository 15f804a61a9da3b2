"""Test patients written as short Turtle snippets.

A snippet names records only; ``patient_turtle`` adds the prefixes, the patient ``ex:p`` and a
``b12:subject ex:p`` link on every typed record, so a case reads like the clinical story.
"""
from __future__ import annotations

import rdflib

PREFIXES = """\
@prefix b12: <https://w3id.org/b12kg/> .
@prefix xsd: <http://www.w3.org/2001/XMLSchema#> .
@prefix ex: <https://example.org/test/> .
@prefix sct: <http://snomed.info/id/> .
@prefix loinc: <https://loinc.org/rdf/> .
@prefix rxnorm: <http://purl.bioontology.org/ontology/RXNORM/> .
@prefix local: <https://w3id.org/b12kg/CodeSystem/local/> .
"""
B12 = rdflib.Namespace("https://w3id.org/b12kg/")
PATIENT = "https://example.org/test/p"


def patient_turtle(snippet: str, patient: str = PATIENT) -> str:
    g = rdflib.Graph()
    g.parse(data=PREFIXES + snippet, format="turtle")
    p = rdflib.URIRef(patient)
    if (p, rdflib.RDF.type, B12.Patient) not in g:
        g.add((p, rdflib.RDF.type, B12.Patient))
    for s in set(g.subjects(rdflib.RDF.type, None)):
        if s != p and (s, rdflib.RDF.type, B12.Patient) not in g and (s, B12.subject, None) not in g:
            g.add((s, B12.subject, p))
    return g.serialize(format="turtle")
