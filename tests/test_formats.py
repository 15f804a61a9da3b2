"""The same patient as Turtle, N-Triples, JSON-LD (inline context) and RDF/XML gives the same report;
several patients in one file are evaluated independently."""
from __future__ import annotations

from pathlib import Path

import pytest
import rdflib

from reasoner import recommend

ROOT = Path(__file__).resolve().parents[1]
CASE45 = ROOT / "examples" / "case45-pernicious-anaemia-paraesthesia-nonneuro-regimen.ttl"


@pytest.mark.parametrize("fmt,ext", [("nt", ".nt"), ("json-ld", ".jsonld"), ("xml", ".rdf")])
def test_same_identifiers_in_every_format(kb, tmp_path, fmt, ext):
    g = rdflib.Graph().parse(CASE45, format="turtle")
    other = tmp_path / f"case45{ext}"
    other.write_text(g.serialize(format=fmt), encoding="utf-8")
    a = recommend(CASE45, "2026-06-01", kb=kb)
    b = recommend(other, "2026-06-01", kb=kb)
    assert a.ids() == b.ids() and a.ids()
    assert a.serialize("json") == b.serialize("json")


def test_several_patients_in_one_file_do_not_interfere(kb, tmp_path):
    files = sorted((ROOT / "examples").glob("*.ttl"))
    merged = rdflib.Graph()
    for f in files:
        merged.parse(f, format="turtle")
    one = tmp_path / "all.ttl"
    one.write_text(merged.serialize(format="turtle"), encoding="utf-8")
    together = recommend(one, "2026-06-01", kb=kb)
    for f in files:
        alone = recommend(f, "2026-06-01", kb=kb)
        (p,) = alone.patients
        assert together.ids(p["patient"]) == alone.ids(), f.name
