"""The ontology: OWL 2 DL consistent under HermiT, every term labelled and defined, every catalog
row a statement with its sources, every identifier implemented exactly once."""
from __future__ import annotations

import re
import shutil

import pytest
import rdflib
from rdflib.namespace import DCTERMS, OWL, RDF, RDFS, SKOS

from reasoner.owl import hermit_check
from tests.test_catalog_cases import catalog_ids

B12 = rdflib.Namespace("https://w3id.org/b12kg/")


@pytest.mark.skipif(shutil.which("java") is None, reason="HermiT needs Java")
def test_hermit_consistent_no_unsatisfiable_class(kb):
    result = hermit_check(kb)
    assert result.consistent, result.message
    assert result.unsatisfiable == []


def test_version_iri(kb):
    g = kb.ontology_rdflib
    onto = rdflib.URIRef("https://w3id.org/b12kg/")
    assert (onto, RDF.type, OWL.Ontology) in g
    assert g.value(onto, OWL.versionIRI) is not None


def test_every_term_has_label_and_definition(kb):
    g = kb.ontology_rdflib
    missing = []
    for kind in (OWL.Class, OWL.ObjectProperty, OWL.DatatypeProperty, OWL.AnnotationProperty, OWL.NamedIndividual):
        for term in g.subjects(RDF.type, kind):
            if not isinstance(term, rdflib.URIRef) or not str(term).startswith(str(B12)):
                continue
            if g.value(term, RDFS.label) is None:
                missing.append(f"{term}: no rdfs:label")
            if kind != OWL.NamedIndividual and g.value(term, SKOS.definition) is None:
                missing.append(f"{term}: no skos:definition")
    assert not missing, "\n".join(sorted(missing))


def test_every_catalog_row_is_one_statement_with_sources(kb):
    g = kb.ontology_rdflib
    problems = []
    for ident in catalog_ids():
        stmts = list(g.subjects(DCTERMS.identifier, rdflib.Literal(ident)))
        if len(stmts) != 1:
            problems.append(f"{ident}: {len(stmts)} statements")
            continue
        st = stmts[0]
        if (st, RDF.type, B12.GuidelineStatement) not in g:
            problems.append(f"{ident}: not a b12:GuidelineStatement")
        if g.value(st, RDFS.label) is None or g.value(st, SKOS.definition) is None:
            problems.append(f"{ident}: no label or definition")
        docs = [g.value(c, B12.document) for c in g.objects(st, B12.citation)]
        if not docs or None in docs:
            problems.append(f"{ident}: no cited source document")
    assert len(catalog_ids()) == 64
    assert not problems, "\n".join(problems)


def test_every_identifier_implemented_exactly_once(kb):
    shapes = kb.shapes_rdflib
    shape_ids = [str(o) for o in shapes.objects(None, DCTERMS.identifier)]
    rule_ids = [r.id for r in kb.rules if r.is_catalog_rule]
    problems = []
    for ident in catalog_ids():
        n = rule_ids.count(ident) + shape_ids.count(ident)
        if n != 1:
            problems.append(f"{ident}: implemented {n} times")
        if ident.startswith("SAFETY-") and ident not in shape_ids:
            problems.append(f"{ident}: safety rows are SHACL shapes")
    assert not problems, "\n".join(problems)


def test_safety_shapes_carry_severity_and_source(kb):
    shapes = kb.shapes_rdflib
    SH = rdflib.Namespace("http://www.w3.org/ns/shacl#")
    catalog = (kb.root / "docs" / "guideline" / "CATALOG.md").read_text(encoding="utf-8")
    expected = dict(re.findall(r"^\| (SAFETY-[A-Z0-9-]+) \| ([VW]) \|", catalog, re.M))
    assert len(expected) == 12
    for ident, sev in expected.items():
        shape = shapes.value(None, DCTERMS.identifier, rdflib.Literal(ident))
        assert shape is not None, ident
        want = SH.Violation if sev == "V" else SH.Warning
        assert shapes.value(shape, SH.severity) == want, ident
        assert shapes.value(shape, B12.source) is not None, f"{ident}: no b12:source"


def test_local_code_system_is_published_and_current():
    from reasoner.codesystem import JSON_PATH, TTL, local_codes, render_fhir, render_skos

    codes = local_codes()
    assert {"numbness", "hydroxocobalamin", "b12-loading-phase", "hiv-test"} <= {c["code"] for c in codes}
    assert TTL.read_text(encoding="utf-8") == render_skos(codes), "run: python -m reasoner.codesystem"
    assert JSON_PATH.read_text(encoding="utf-8") == render_fhir(codes), "run: python -m reasoner.codesystem"
