"""The knowledge base: ontology, shapes and rules, loaded once and shared by every evaluation."""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import pyoxigraph as ox

from .errors import KnowledgeBaseError
from .vocab import G_ONTOLOGY, RULE, STATEMENT, sparql_prefixes

PROJECT_ROOT = Path(__file__).resolve().parent.parent

#: Rules with a stratum above this run after SHACL validation (they read violations).
VALIDATION_STRATUM = 90
#: Rules with a stratum at or below this run before OWL classification (terminology).
PRE_CLASSIFICATION_STRATUM = 0

_HEADER = re.compile(r"^#\s*([A-Za-z-]+)\s*:\s*(.*?)\s*$")


@dataclass(frozen=True)
class Rule:
    """One CONSTRUCT file under queries/rules/."""

    id: str
    path: Path
    stratum: int
    implements: str  # catalog identifier or derived-state class (local name)
    summary: str
    text: str

    @property
    def iri(self) -> ox.NamedNode:
        return ox.NamedNode(RULE + self.id)

    @property
    def is_catalog_rule(self) -> bool:
        return re.match(r"^(DX|TX|PAIN|MON|SAFETY|INFO|CONFLICT)-", self.id) is not None

    @property
    def relpath(self) -> str:
        try:
            return self.path.relative_to(PROJECT_ROOT).as_posix()
        except ValueError:
            return self.path.as_posix()


def parse_rule(path: Path) -> Rule:
    text = path.read_text(encoding="utf-8")
    headers: dict[str, str] = {}
    for line in text.splitlines():
        m = _HEADER.match(line)
        if m:
            headers.setdefault(m.group(1).lower(), m.group(2))
        elif line.strip() and not line.startswith("#"):
            break
    if "stratum" not in headers:
        raise KnowledgeBaseError(f"{path}: rule has no '# stratum:' header")
    try:
        stratum = int(headers["stratum"])
    except ValueError:
        raise KnowledgeBaseError(f"{path}: '# stratum:' must be an integer") from None
    return Rule(
        id=path.stem,
        path=path,
        stratum=stratum,
        implements=headers.get("implements", path.stem),
        summary=headers.get("summary", ""),
        text=sparql_prefixes() + text,
    )


class KnowledgeBase:
    """Ontology (OWL in Turtle), SHACL shapes and SPARQL rules of one encoding."""

    def __init__(self, root: Path | str = PROJECT_ROOT):
        self.root = Path(root)
        self.ontology_files = sorted((self.root / "ontology").glob("*.ttl"))
        self.shape_files = sorted((self.root / "shapes").glob("*.ttl"))
        rule_files = sorted((self.root / "queries" / "rules").rglob("*.rq"))
        if not self.ontology_files:
            raise KnowledgeBaseError(f"{self.root / 'ontology'}: no ontology files")
        self.rules = sorted((parse_rule(p) for p in rule_files), key=lambda r: (r.stratum, r.id))
        ids = [r.id for r in self.rules]
        dupes = {i for i in ids if ids.count(i) > 1}
        if dupes:
            raise KnowledgeBaseError(f"duplicate rule identifiers: {', '.join(sorted(dupes))}")
        self.ontology_quads = self._parse(self.ontology_files, G_ONTOLOGY)
        self._prepared: dict[str, object] = {}

    @staticmethod
    def _parse(files: list[Path], graph: ox.NamedNode) -> list[ox.Quad]:
        quads: list[ox.Quad] = []
        for f in files:
            try:
                for t in ox.parse(path=str(f), format=ox.RdfFormat.TURTLE):
                    quads.append(ox.Quad(t.subject, t.predicate, t.object, graph))
            except SyntaxError as exc:
                raise KnowledgeBaseError(f"{f}: {exc}") from None
        return quads

    @cached_property
    def ontology_store(self) -> ox.Store:
        store = ox.Store()
        store.extend(self.ontology_quads)
        return store

    @cached_property
    def ontology_rdflib(self):
        """The ontology as an rdflib Graph (for the OWL reasoner, pySHACL and owlready2)."""
        import rdflib

        g = rdflib.Graph()
        for f in self.ontology_files:
            g.parse(f, format="turtle")
        return g

    @cached_property
    def tbox_rdflib(self) -> list:
        """The logical axioms only (what OWL 2 RL classification needs): no labels, definitions,
        guideline statements, citations, bands or windows. Smaller input, same classification."""
        import rdflib
        from rdflib.namespace import OWL, RDF, RDFS

        full = self.ontology_rdflib
        keep = {RDF.type, RDFS.subClassOf, RDFS.subPropertyOf, RDFS.domain, RDFS.range, OWL.equivalentClass,
                OWL.intersectionOf, OWL.unionOf, OWL.someValuesFrom, OWL.allValuesFrom, OWL.hasValue,
                OWL.onProperty, OWL.inverseOf, OWL.oneOf, RDF.first, RDF.rest}
        b12 = rdflib.Namespace("https://w3id.org/b12kg/")
        data_classes = {b12.GuidelineStatement, b12.B12RegimenStatement, b12.Citation, b12.Regimen,
                        b12.ConflictSide, b12.ValueBand, b12.TimeWindow, b12.SourceDocument, b12.SourceGap,
                        b12.CodeSystem, OWL.AllDifferent, OWL.Ontology}
        skip = {s for c in data_classes for s in full.subjects(RDF.type, c)}
        return [t for t in full if t[1] in keep and t[0] not in skip]

    @cached_property
    def rule_guards(self) -> dict[str, tuple[tuple[ox.NamedNode, ox.NamedNode], ...]]:
        """Per rule, the (predicate, object) pairs its query cannot match without (reasoner.guard)."""
        from .guard import required_triples

        return {r.id: tuple((ox.NamedNode(p), ox.NamedNode(o)) for p, o in required_triples(r.text)) for r in self.rules}

    @cached_property
    def store_pool(self):
        """Working stores pre-filled with :attr:`evaluation_quads` (reasoner.pipeline.StorePool)."""
        from .pipeline import StorePool

        return StorePool(self.evaluation_quads)

    @cached_property
    def compiled_tbox(self):
        """The TBox closed once and indexed for the fast classifier (reasoner.classify)."""
        from .classify import CompiledTBox

        return CompiledTBox(self.tbox_rdflib)

    @cached_property
    def shapes_ontology_slice(self):
        """Ontology triples the shapes read: parameter values and the types of named individuals."""
        import rdflib
        from rdflib.namespace import OWL, RDF

        full = self.ontology_rdflib
        b12 = rdflib.Namespace("https://w3id.org/b12kg/")
        preds = {b12.canonicalUnit, b12.category, b12.intervalDays, b12.indicatesHigh, b12.impliesEnded,
                 b12.excludesRecord, b12.stateClass, b12.severityRank, b12.appliesTo}
        individuals = set(full.subjects(RDF.type, OWL.NamedIndividual))
        out = [t for t in full if t[1] in preds or (t[1] == RDF.type and t[0] in individuals)]
        return out

    @cached_property
    def shapes_ontology_slice_quads(self) -> list[ox.Quad]:
        from .classify import to_oxigraph

        return [ox.Quad(to_oxigraph(s), to_oxigraph(p), to_oxigraph(o), ox.DefaultGraph()) for s, p, o in self.shapes_ontology_slice]

    @cached_property
    def fast_shapes(self):
        """The shapes compiled for the Oxigraph SHACL-SPARQL validator (refuses unsupported shapes)."""
        from .shacl_fast import compile_shapes

        return compile_shapes(self.shapes_rdflib)

    @cached_property
    def shapes_rdflib(self):
        import rdflib

        g = rdflib.Graph()
        for f in self.shape_files:
            g.parse(f, format="turtle")
        return g

    @cached_property
    def shapes_quads(self) -> list[ox.Quad]:
        return self._parse(self.shape_files, ox.NamedNode("https://w3id.org/b12kg/graph/shapes"))

    def rules_in(self, low: int, high: int) -> list[Rule]:
        """Rules with low < stratum <= high, in evaluation order."""
        return [r for r in self.rules if low < r.stratum <= high]

    @cached_property
    def evaluation_quads(self) -> list[ox.Quad]:
        """What every evaluation starts from: the ontology and the rule/shape descriptions."""
        from .vocab import G_ONTOLOGY

        return list(self.ontology_quads) + self.rule_metadata_quads(G_ONTOLOGY)

    def rule_metadata_quads(self, graph: ox.NamedNode) -> list[ox.Quad]:
        """Describe every rule as a prov:Plan so reports and SPARQL users can follow the links."""
        from .vocab import DCTERMS, RDF_TYPE, RDFS, b12, prov

        out: list[ox.Quad] = []
        for r in self.rules:
            out += [
                ox.Quad(r.iri, RDF_TYPE, b12("Rule"), graph),
                ox.Quad(r.iri, RDF_TYPE, prov("Plan"), graph),
                ox.Quad(r.iri, ox.NamedNode(DCTERMS + "identifier"), ox.Literal(r.id), graph),
                ox.Quad(r.iri, b12("queryFile"), ox.Literal(r.relpath), graph),
                ox.Quad(r.iri, b12("stratum"), ox.Literal(r.stratum), graph),
            ]
            if r.summary:
                out.append(ox.Quad(r.iri, ox.NamedNode(RDFS + "comment"), ox.Literal(r.summary, language="en"), graph))
            if r.is_catalog_rule:
                out.append(ox.Quad(r.iri, b12("implements"), ox.NamedNode(STATEMENT + r.id), graph))
            else:
                out.append(ox.Quad(r.iri, b12("implements"), b12(r.implements), graph))
        for shape_file in self.shape_files:
            rel = shape_file.relative_to(self.root).as_posix() if shape_file.is_relative_to(self.root) else shape_file.as_posix()
            for q in ox.parse(path=str(shape_file), format=ox.RdfFormat.TURTLE):
                if q.predicate.value == DCTERMS + "identifier" and isinstance(q.subject, ox.NamedNode):
                    out.append(ox.Quad(q.subject, b12("queryFile"), ox.Literal(rel), graph))
        return out
