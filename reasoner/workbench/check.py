"""``b12kg check``: the encoding quality report for guideline authors.

Every check looks at the encoding (``ontology/``, ``shapes/``, ``queries/rules/``) together with the
contract (``docs/guideline/CATALOG.md``) and the tests (``tests/cases/*.toml``, ``examples/``), and
each row it returns is one problem: severity, check id, entity, message.

* Most checks are SPARQL files, ``queries/qc/<check-id>.rq``, each with a ``# Problem:`` and a
  ``# Solution:`` header (the style of ROBOT report queries). Each selects ``?entity`` and
  ``?message``; every result row is a problem. They run over the *QC graph*: the ontology and the
  shapes, plus facts this module adds about things that are not RDF (``qc:`` vocabulary below).
* The checks SPARQL cannot do are Python functions here: band coverage (``band-gap``,
  ``band-overlap``), the shapes against the SHACL-for-SHACL shapes (``shacl-shapes-invalid``), the
  syntax of every rule and SHACL-SPARQL query (``query-syntax``) and OWL reasoning with HermiT
  (``owl-inconsistent``, ``owl-unsatisfiable``).
* Severities (ERROR, WARN, INFO) live in one file, ``queries/qc/profile.tsv``. The command exits 1
  when there is an ERROR row, 0 otherwise, and 2 on bad usage.
* ``tests/qc/<check-id>.ttl`` is a small graph on which that check must return a row.

The QC facts (namespace ``https://w3id.org/b12kg/qc/``, prefix ``qc:``):

``[] qc:catalogIdentifier "DX-…"``
    one per identifier of the catalog.
``<rule or shape> a qc:Implementation ; qc:identifier "…" ; qc:kind "rule"|"shape" ; qc:file "…" ;
qc:isCatalog true|false ; qc:usesTerm <iri> ; qc:queryText "…" ; qc:implementsHeader "…" ;
qc:mentionedIn "…" ; qc:firesIn "…" ; qc:silentIn "…"``
    one per rule file and per shape with a ``dcterms:identifier``: the b12kg IRIs its SPARQL uses,
    and the test files that name it (anywhere; in a ``fires``/``must`` list; in a
    ``silent``/``must_not`` list).
``[] a qc:CoFiring ; qc:first stmt:A ; qc:second stmt:B ; qc:case "…" ; qc:caseCount n``
    two TX-* recommendations that fire together for one patient of a shipped case.
``[] a qc:UnreadableFile ; qc:file "…" ; qc:error "…"``
    a test file that could not be read.

Co-firing needs the reasoner on every shipped case (about 5 s, in batches of patients); OWL needs
Java (about 3 s). ``--no-cooccurrence`` and ``--no-owl`` skip them, and an INFO row says so.
"""
from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
import tomllib
from collections import defaultdict
from decimal import Decimal, InvalidOperation
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Callable, Iterable

import pyoxigraph as ox
import rdflib
from rdflib.namespace import OWL, RDF, RDFS

from ..errors import B12kgError, KnowledgeBaseError, UsageError
from ..kb import PROJECT_ROOT, KnowledgeBase
from ..vocab import BASE, PREFIXES, STATEMENT, sparql_prefixes

QC = "https://w3id.org/b12kg/qc/"
SH = rdflib.Namespace("http://www.w3.org/ns/shacl#")
DCT = rdflib.Namespace("http://purl.org/dc/terms/")
B12 = rdflib.Namespace(BASE)
QCN = rdflib.Namespace(QC)

SEVERITIES = ("ERROR", "WARN", "INFO")
FORMATS = ("table", "json", "tsv", "md")
CATALOG_ID = re.compile(r"^\| ((?:DX|TX|PAIN|MON|SAFETY|INFO|CONFLICT)-[A-Z0-9-]+)", re.M)
CATALOG_PREFIX = re.compile(r"^(DX|TX|PAIN|MON|SAFETY|INFO|CONFLICT)-")
#: The status row for a part of the check that did not run (no fixture: it is not a finding).
SKIPPED = "skipped"
#: Patients per reasoner call when the shipped cases are run for co-firing (measured: 40 is fastest).
COFIRE_BATCH = 40
DEFAULT_AS_OF = "2026-06-01"

_COMPACT = sorted({**PREFIXES, "qc": QC}.items(), key=lambda kv: -len(kv[1]))


# ---------------------------------------------------------------------------------------------
# Rows, checks, profile
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    severity: str
    check: str
    entity: str
    message: str

    def sort_key(self):
        return (SEVERITIES.index(self.severity), self.check, self.entity, self.message)

    def as_dict(self) -> dict:
        return {"severity": self.severity, "check": self.check, "entity": self.entity, "message": self.message}


@dataclass
class Check:
    id: str
    problem: str
    solution: str
    path: Path | None = None  # the .rq file; None for a Python check
    text: str = ""


def compact(iri: str) -> str:
    for prefix, ns in _COMPACT:
        if iri.startswith(ns):
            local = iri[len(ns):]
            if local and "/" not in local and "#" not in local:
                return f"{prefix}:{local}"
    return f"<{iri}>"


def _term_str(term) -> str:
    """An entity as shown: IRIs compacted, literals as their text."""
    if term is None:
        return ""
    if isinstance(term, ox.NamedNode):
        return compact(term.value)
    if isinstance(term, ox.BlankNode):
        return f"_:{term.value}"
    if isinstance(term, ox.Literal):
        return term.value
    if isinstance(term, rdflib.URIRef):
        return compact(str(term))
    if isinstance(term, rdflib.BNode):
        return f"_:{term}"
    return str(term)


_IRI_IN_TEXT = re.compile(r"<((?:https?|urn):[^<>\s]+)>")


def _compact_text(text: str) -> str:
    """``<https://w3id.org/b12kg/band/x>`` in a message becomes ``band:x``."""
    return " ".join(_IRI_IN_TEXT.sub(lambda m: compact(m.group(1)), text).split())


def _header(text: str, name: str) -> str:
    lines, on = [], False
    for line in text.splitlines():
        if not line.startswith("#"):
            if line.strip():
                break
            continue
        body = line[1:].strip()
        m = re.match(r"([A-Za-z]+):\s*(.*)$", body)
        if m:
            on = m.group(1).lower() == name.lower()
            if on:
                lines.append(m.group(2))
        elif on and body:
            lines.append(body)
    return " ".join(lines).strip()


def load_sparql_checks(qc_dir: Path) -> list[Check]:
    checks = []
    for path in sorted(qc_dir.glob("*.rq")):
        text = path.read_text(encoding="utf-8")
        problem, solution = _header(text, "Problem"), _header(text, "Solution")
        if not problem or not solution:
            raise KnowledgeBaseError(f"{path}: a QC query needs '# Problem:' and '# Solution:' header lines")
        checks.append(Check(path.stem, problem, solution, path, text))
    return checks


def load_profile(path: Path) -> dict[str, str]:
    if not path.is_file():
        raise KnowledgeBaseError(f"{path}: the QC profile (check-id<TAB>severity) is missing")
    out: dict[str, str] = {}
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        parts = [p.strip() for p in line.split("\t") if p.strip()]
        if len(parts) != 2 or parts[1] not in SEVERITIES:
            raise KnowledgeBaseError(f"{path}:{n}: expected 'check-id<TAB>{'|'.join(SEVERITIES)}'")
        out[parts[0]] = parts[1]
    return out


# ---------------------------------------------------------------------------------------------
# The QC graph
# ---------------------------------------------------------------------------------------------


@dataclass
class QCGraph:
    """What the checks read: the ontology, the shapes and the QC facts (one union for SPARQL)."""

    ontology: rdflib.Graph
    shapes: rdflib.Graph
    facts: rdflib.Graph = field(default_factory=rdflib.Graph)
    notes: list[tuple[str, str, tuple[str, ...]]] = field(default_factory=list)  # 'skipped' rows: entity, message, checks not run
    _store: ox.Store | None = None
    _union: rdflib.Graph | None = None

    @classmethod
    def from_turtle(cls, path: Path | str) -> "QCGraph":
        """One graph used as ontology, shapes and facts at once (a check's fixture)."""
        g = rdflib.Graph()
        g.parse(str(path), format="turtle")
        return cls(ontology=g, shapes=g, facts=rdflib.Graph())

    @property
    def union(self) -> rdflib.Graph:
        if self._union is None:
            u = rdflib.Graph()
            for part in self._parts():
                for t in part:
                    u.add(t)
            self._union = u
        return self._union

    def _parts(self):
        seen = []
        for g in (self.ontology, self.shapes, self.facts):
            if not any(g is s for s in seen):
                seen.append(g)
        return seen

    @property
    def store(self) -> ox.Store:
        if self._store is None:
            store = ox.Store()
            data = self.union.serialize(format="nt", encoding="utf-8")
            store.load(data, format=ox.RdfFormat.N_TRIPLES)
            self._store = store
        return self._store


def _read_catalog(root: Path) -> list[str] | None:
    path = root / "docs" / "guideline" / "CATALOG.md"
    if not path.is_file():
        return None
    return sorted(set(CATALOG_ID.findall(path.read_text(encoding="utf-8"))))


_TOKEN = re.compile(
    r'"""(?:.|\n)*?"""|\'\'\'(?:.|\n)*?\'\'\'|"(?:[^"\\\n]|\\.)*"|\'(?:[^\'\\\n]|\\.)*\''
    r"|<(?P<iri>[^<>\s\"{}|^`\\]*)>|#[^\n]*"
    r"|(?<![\w:/#?$.-])(?P<pfx>[A-Za-z][\w-]*)?:(?P<local>[A-Za-z0-9_](?:[\w.-]*[\w-])?)"
)


def query_terms(text: str, prefixes: dict[str, str]) -> set[str]:
    """The b12kg IRIs a SPARQL text names (prefixed names and full IRIs; not in strings or comments)."""
    out = set()
    for m in _TOKEN.finditer(text):
        if m.group("iri") is not None:
            iri = m.group("iri")
        elif m.group("local") is not None:
            ns = prefixes.get(m.group("pfx") or "")
            if ns is None:
                continue
            iri = ns + m.group("local")
        else:
            continue
        if iri.startswith(BASE) and not iri.startswith((BASE + "graph/", QC)):
            out.add(iri)
    return out


def _shape_prefixes(shapes: rdflib.Graph) -> dict[str, str]:
    out = dict(PREFIXES)
    for decl in shapes.objects(None, SH.declare):
        p, ns = shapes.value(decl, SH.prefix), shapes.value(decl, SH.namespace)
        if p is not None and ns is not None:
            out[str(p)] = str(ns)
    return out


def _descendants(g: rdflib.Graph, node) -> Iterable:
    """Blank nodes reachable from ``node`` (its property shapes, constraints, lists)."""
    todo, seen = [node], set()
    while todo:
        n = todo.pop()
        for o in g.objects(n, None):
            if isinstance(o, rdflib.BNode) and o not in seen:
                seen.add(o)
                todo.append(o)
                yield o


def _shape_selects(shapes: rdflib.Graph, shape) -> list[str]:
    return [str(s) for n in [shape, *_descendants(shapes, shape)] for s in shapes.objects(n, SH.select)]


@dataclass
class _Mentions:
    anywhere: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    fires: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    silent: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    unreadable: list[tuple[str, str]] = field(default_factory=list)
    texts: dict[str, str] = field(default_factory=dict)


def _rel(root: Path, path: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()


def _test_files(root: Path) -> tuple[list[Path], list[Path]]:
    cases = sorted((root / "tests" / "cases").glob("*.toml"))
    expected = sorted((root / "examples").rglob("*.expected.json")) if (root / "examples").is_dir() else []
    return cases, expected


_SNIPPET = re.compile(r"(?m)^\s*turtle\s*=\s*(?:'''(?:.|\n)*?'''|\"\"\"(?:.|\n)*?\"\"\"|'[^'\n]*'|\"(?:[^\"\\\n]|\\.)*\")")


def _read_mentions(root: Path) -> tuple[_Mentions, list[dict]]:
    """Which test files name which identifiers; and the shipped cases (for co-firing)."""
    m = _Mentions()
    cases: list[dict] = []
    toml_files, json_files = _test_files(root)
    for path in toml_files:
        rel = _rel(root, path)
        try:
            text = path.read_text(encoding="utf-8")
            data = tomllib.loads(text)
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            m.unreadable.append((rel, " ".join(str(exc).split())))
            continue
        # a mention is a name outside the patient snippets (which name classes, not rules)
        m.texts[rel] = _SNIPPET.sub("", text)
        for i, case in enumerate(data.get("case", []) or []):
            if not isinstance(case, dict):
                continue
            name = str(case.get("name", i + 1))
            for ident in case.get("fires", []) or []:
                m.fires[str(ident)].add(rel)
            for ident in case.get("silent", []) or []:
                m.silent[str(ident)].add(rel)
            if isinstance(case.get("turtle"), str):
                cases.append({"label": f"{rel}: {name}", "turtle": case["turtle"],
                              "as_of": str(case.get("as_of", data.get("as_of", DEFAULT_AS_OF)))})
    for path in json_files:
        rel = _rel(root, path)
        try:
            text = path.read_text(encoding="utf-8")
            data = json.loads(text)
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            m.unreadable.append((rel, " ".join(str(exc).split())))
            continue
        m.texts[rel] = text
        if not isinstance(data, dict):
            continue
        for ident in data.get("must", []) or []:
            m.fires[str(ident)].add(rel)
        for ident in data.get("must_not", []) or []:
            m.silent[str(ident)].add(rel)
    return m, cases


def _mentioned_in(m: _Mentions, names: Iterable[str]) -> set[str]:
    out = set()
    for name in {n for n in names if n}:
        pattern = re.compile(r"(?<![A-Za-z0-9_-])" + re.escape(name) + r"(?![A-Za-z0-9_-])")
        out |= {rel for rel, text in m.texts.items() if pattern.search(text)}
    return out


def _bnode(*parts: str) -> rdflib.BNode:
    return rdflib.BNode("qc" + "".join("_" + re.sub(r"[^A-Za-z0-9]", "_", p) for p in parts))


def build_qc_graph(root: Path, *, cooccurrence: bool = True, kb: KnowledgeBase | None = None) -> QCGraph:
    """The QC graph of the encoding under ``root``."""
    kb = kb or KnowledgeBase(root)
    ontology, shapes = kb.ontology_rdflib, kb.shapes_rdflib
    facts = rdflib.Graph()
    qc = QCGraph(ontology=ontology, shapes=shapes, facts=facts)
    lit = rdflib.Literal

    catalog = _read_catalog(root)
    if catalog is None:
        qc.notes.append(("docs/guideline/CATALOG.md", "no catalog found: the catalog checks had nothing to compare",
                         ("catalog-id-missing", "catalog-id-implementation", "statement-not-in-catalog")))
    for ident in catalog or []:
        facts.add((_bnode("catalog", ident), QCN.catalogIdentifier, lit(ident)))

    mentions, cases = _read_mentions(root)
    for rel, err in mentions.unreadable:
        node = _bnode("unreadable", rel)
        facts.add((node, RDF.type, QCN.UnreadableFile))
        facts.add((node, QCN.file, lit(rel)))
        facts.add((node, QCN.error, lit(err)))

    def implementation(node, ident: str, kind: str, file: str, is_catalog: bool, names: list[str], terms: set[str]):
        facts.add((node, RDF.type, QCN.Implementation))
        facts.add((node, QCN.identifier, lit(ident)))
        facts.add((node, QCN.kind, lit(kind)))
        facts.add((node, QCN.file, lit(file)))
        facts.add((node, QCN.isCatalog, lit(is_catalog)))
        for t in sorted(terms):
            facts.add((node, QCN.usesTerm, rdflib.URIRef(t)))
        for rel in sorted(_mentioned_in(mentions, names)):
            facts.add((node, QCN.mentionedIn, lit(rel)))
        for name in names:
            for rel in sorted(mentions.fires.get(name, ())):
                facts.add((node, QCN.firesIn, lit(rel)))
            for rel in sorted(mentions.silent.get(name, ())):
                facts.add((node, QCN.silentIn, lit(rel)))

    for rule in kb.rules:
        node = rdflib.URIRef(rule.iri.value)
        body = rule.path.read_text(encoding="utf-8")
        names = [rule.id]
        implementation(node, rule.id, "rule", _rel(root, rule.path), rule.is_catalog_rule, names,
                       query_terms(body, PREFIXES))
        facts.add((node, QCN.queryText, lit(body)))
        facts.add((node, QCN.implementsHeader, lit(rule.implements)))

    prefixes = _shape_prefixes(shapes)
    shape_files = {}
    for f in kb.shape_files:
        g = rdflib.Graph().parse(f, format="turtle")
        for s in g.subjects(DCT.identifier, None):
            shape_files.setdefault(s, _rel(root, f))
    for shape, ident in sorted(shapes.subject_objects(DCT.identifier)):
        if not isinstance(shape, rdflib.URIRef):
            continue
        terms = set()
        for text in _shape_selects(shapes, shape):
            terms |= query_terms(text, prefixes)
        implementation(shape, str(ident), "shape", shape_files.get(shape, "shapes/"),
                       CATALOG_PREFIX.match(str(ident)) is not None, [str(ident)], terms)

    if cooccurrence:
        failures: list[tuple[str, str]] = []
        pairs = cofiring_pairs(root, kb, cases, failures=failures)
        for label, err in failures:
            node = _bnode("unreadable", label)
            facts.add((node, RDF.type, QCN.UnreadableFile))
            facts.add((node, QCN.file, lit(label)))
            facts.add((node, QCN.error, lit(err)))
        for (a, b), (case, n) in sorted(pairs.items()):
            node = _bnode("cofire", a, b)
            facts.add((node, RDF.type, QCN.CoFiring))
            facts.add((node, QCN.first, rdflib.URIRef(STATEMENT + a)))
            facts.add((node, QCN.second, rdflib.URIRef(STATEMENT + b)))
            facts.add((node, QCN.case, lit(case)))
            facts.add((node, QCN.caseCount, lit(n)))
    else:
        qc.notes.append(("tx-cofire-undeclared", "co-firing of TX-* recommendations on the shipped cases not checked (--no-cooccurrence)",
                         ("tx-cofire-undeclared",)))
    return qc


# ---------------------------------------------------------------------------------------------
# Co-firing recommendations on the shipped cases
# ---------------------------------------------------------------------------------------------

from .verify import SNIPPET_PREFIXES  # noqa: E402 - the same snippet wrapper as b12kg verify
SNIPPET_NS = "https://example.org/test/"


def _case_graph(snippet: str, n: int) -> rdflib.Graph:
    """A test-case snippet as the harness reads it (patient ``ex:p`` added, records linked to it),
    with every ``ex:`` IRI and blank node moved into a namespace of its own, so that many cases
    can be evaluated in one run without sharing a resource."""
    g = rdflib.Graph()
    g.parse(data=SNIPPET_PREFIXES + snippet, format="turtle")
    p = rdflib.URIRef(SNIPPET_NS + "p")
    if (p, RDF.type, B12.Patient) not in g:
        g.add((p, RDF.type, B12.Patient))
    for s in set(g.subjects(RDF.type, None)):
        if s != p and (s, RDF.type, B12.Patient) not in g and (s, B12.subject, None) not in g:
            g.add((s, B12.subject, p))
    ns = f"https://example.org/qc/case{n}/"

    def move(t):
        if isinstance(t, rdflib.URIRef) and str(t).startswith(SNIPPET_NS):
            return rdflib.URIRef(ns + str(t)[len(SNIPPET_NS):])
        if isinstance(t, rdflib.BNode):
            return rdflib.BNode(f"case{n}x{t}")
        return t

    out = rdflib.Graph()
    for s, pr, o in g:
        out.add((move(s), pr, move(o)))
    return out


def _tx_pairs(ids: Iterable[str]) -> list[tuple[str, str]]:
    tx = sorted(i for i in set(ids) if i.startswith("TX-"))
    return [(a, b) for i, a in enumerate(tx) for b in tx[i + 1:]]


def cofiring_pairs(root: Path, kb: KnowledgeBase, cases: list[dict] | None = None, *,
                   examples: bool = True, failures: list[tuple[str, str]] | None = None,
                   ) -> dict[tuple[str, str], tuple[str, int]]:
    """Pairs of TX-* identifiers that fire for one patient of a shipped case: the first case (in
    file order) where they do, and on how many cases they do. ``cases`` are test-case snippets
    (``label``, ``turtle``, ``as_of``; default: all of ``root/tests/cases``); ``examples`` adds
    the patients of ``root/examples/*.ttl``. Cases of one as-of date are evaluated together, up to
    COFIRE_BATCH patients per run, each case in a namespace of its own (same results as one run
    per case, about 8 times faster). A case that cannot be evaluated is added to ``failures``
    (label, error)."""
    from ..api import recommend, recommend_text

    if cases is None:
        cases = _read_mentions(root)[1]
    fired: list[tuple[str, set[str]]] = []
    by_date: dict[str, list[int]] = defaultdict(list)
    graphs: dict[int, rdflib.Graph] = {}
    failures = failures if failures is not None else []
    for n, case in enumerate(cases):
        try:
            graphs[n] = _case_graph(case["turtle"], n)
        except Exception as exc:  # noqa: BLE001 - rdflib raises many kinds on a bad snippet
            failures.append((case["label"], "its turtle snippet does not parse: " + " ".join(str(exc).split())[:300]))
            continue
        by_date[case["as_of"]].append(n)
    per_case: dict[int, set[str]] = defaultdict(set)

    def evaluate(batch: list[int], as_of: str) -> None:
        merged = rdflib.Graph()
        for n in batch:
            for t in graphs[n]:
                merged.add(t)
        try:
            report = recommend_text(merged.serialize(format="turtle"), as_of, kb=kb, name="tests/cases")
        except B12kgError as exc:
            if len(batch) > 1:  # find the case that fails: evaluate them one by one
                for n in batch:
                    evaluate([n], as_of)
            else:
                failures.append((cases[batch[0]]["label"], f"cannot be evaluated: {exc}"))
            return
        for patient in report.patients:
            m = re.match(r"https://example\.org/qc/case(\d+)/", patient["patient"])
            if m:
                per_case[int(m.group(1))] |= report.ids(patient["patient"])

    for as_of, ns in sorted(by_date.items()):
        for k in range(0, len(ns), COFIRE_BATCH):
            evaluate(ns[k:k + COFIRE_BATCH], as_of)
    for n, case in enumerate(cases):
        if n in per_case:
            fired.append((case["label"], per_case[n]))
    # the examples: each a whole patient file, with its as-of date in the expectation beside it
    example_dir = root / "examples"
    for ttl in sorted(example_dir.rglob("*.ttl")) if examples and example_dir.is_dir() else []:
        as_of = DEFAULT_AS_OF
        exp = ttl.with_name(ttl.stem + ".expected.json")
        if exp.is_file():
            try:
                as_of = str(json.loads(exp.read_text(encoding="utf-8")).get("as_of", DEFAULT_AS_OF))
            except (ValueError, OSError):
                pass
        try:
            report = recommend(ttl, as_of, kb=kb)
        except B12kgError as exc:
            failures.append((_rel(root, ttl), f"cannot be evaluated: {exc}"))
            continue
        for patient in report.patients:
            label = _rel(root, ttl) if len(report.patients) == 1 else f"{_rel(root, ttl)}, patient <{patient['patient']}>"
            fired.append((label, report.ids(patient["patient"])))
    out: dict[tuple[str, str], tuple[str, int]] = {}
    for label, ids in fired:
        for pair in _tx_pairs(ids):
            first, count = out.get(pair, (label, 0))
            out[pair] = (first, count + 1)
    return out


# ---------------------------------------------------------------------------------------------
# Python checks
# ---------------------------------------------------------------------------------------------

Row = tuple[str, str, str]  # check id, entity, message


def _num(lit):
    try:
        return Decimal(str(lit))
    except (InvalidOperation, ValueError):
        return None


@dataclass
class _Band:
    iri: object
    lo: object  # Decimal or None (unbounded)
    lo_incl: bool
    hi: object
    hi_incl: bool
    unit: str

    def lower_text(self) -> str:
        return "-inf" if self.lo is None else f"{'>=' if self.lo_incl else '>'} {self.lo}"

    def upper_text(self) -> str:
        return "+inf" if self.hi is None else f"{'<=' if self.hi_incl else '<'} {self.hi}"

    @property
    def name(self) -> str:
        return _term_str(self.iri)


def band_partitions(g: rdflib.Graph) -> dict[tuple, list[_Band]]:
    """Bands that together cut a result kind's number line into categories, grouped by (what they
    apply to, the class of their category). A category of class b12:BandCategory is a single
    threshold (e.g. 'elevated'), not a part of a partition, and is left out."""
    groups: dict[tuple, list[_Band]] = defaultdict(list)
    for band in set(g.subjects(RDF.type, B12.ValueBand)):
        kind, cat = g.value(band, B12.appliesTo), g.value(band, B12.category)
        if kind is None or cat is None:
            continue
        types = set(g.objects(cat, RDF.type))
        if B12.BandCategory in types:
            continue
        li, le = g.value(band, B12.lowerInclusive), g.value(band, B12.lowerExclusive)
        ui, ue = g.value(band, B12.upperInclusive), g.value(band, B12.upperExclusive)
        lo, hi = (li if li is not None else le), (ui if ui is not None else ue)
        b = _Band(band, None if lo is None else _num(lo), li is not None,
                  None if hi is None else _num(hi), ui is not None, str(g.value(band, B12.bandUnit) or ""))
        classes = types - {OWL.NamedIndividual}
        for cls in classes:
            groups[(kind, cls)].append(b)
    return {k: v for k, v in groups.items() if len(v) > 1 or k[1] == B12.B12Category}


def _starts_before(a: _Band) -> tuple:
    return (Decimal("-Infinity") if a.lo is None else a.lo, 0 if (a.lo is None or a.lo_incl) else 1, a.name)


def check_bands(qc: QCGraph) -> list[Row]:
    """band-gap and band-overlap: each partition covers the whole number line, once."""
    rows: list[Row] = []
    inf = Decimal("Infinity")
    for (kind, cls), bands in sorted(band_partitions(qc.union).items(), key=lambda kv: (str(kv[0][0]), str(kv[0][1]))):
        where = f"{_term_str(kind)} ({_term_str(cls)})"
        bands = sorted(bands, key=_starts_before)
        unit = f" {bands[0].unit}" if bands[0].unit else ""
        # overlaps: any two bands sharing a value
        for i, a in enumerate(bands):
            for b in bands[i + 1:]:
                lo_a = -inf if a.lo is None else a.lo
                lo_b = -inf if b.lo is None else b.lo
                hi_a = inf if a.hi is None else a.hi
                hi_b = inf if b.hi is None else b.hi
                lo = max(lo_a, lo_b)
                hi = min(hi_a, hi_b)
                lo_in = (a.lo_incl or a.lo is None or lo_a < lo) and (b.lo_incl or b.lo is None or lo_b < lo)
                hi_in = (a.hi_incl or a.hi is None or hi_a > hi) and (b.hi_incl or b.hi is None or hi_b > hi)
                if lo < hi or (lo == hi and lo_in and hi_in):
                    shared = f"{lo}{unit}" if lo == hi else f"{'-inf' if lo == -inf else lo} to {'+inf' if hi == inf else hi}{unit}"
                    rows.append(("band-overlap", a.name,
                                 f"{where}: {a.name} ({a.lower_text()}, {a.upper_text()}) and {b.name} "
                                 f"({b.lower_text()}, {b.upper_text()}) both contain {shared}"))
        # gaps: sweep from -inf upwards
        first = bands[0]
        if first.lo is not None:
            rows.append(("band-gap", first.name,
                         f"{where}: values {'below' if first.lo_incl else 'up to and including'} {first.lo}{unit} are in no band "
                         f"(the lowest band {first.name} starts {first.lower_text()})"))
        reach, reach_incl, reach_band = first.hi, first.hi_incl, first
        for b in bands[1:]:
            if reach is None:
                break
            if b.lo is None:
                pass
            elif b.lo > reach or (b.lo == reach and not reach_incl and not b.lo_incl):
                if b.lo == reach:
                    what = f"the value {reach}{unit} is in no band"
                else:
                    what = f"values {'above' if reach_incl else 'from'} {reach} {'up to' if b.lo_incl else 'through'} {b.lo}{unit} are in no band"
                rows.append(("band-gap", reach_band.name,
                             f"{where}: {what}: {reach_band.name} ends {reach_band.upper_text()} and {b.name} "
                             f"starts {b.lower_text()}"))
            if b.hi is None or b.hi > reach or (b.hi == reach and b.hi_incl and not reach_incl):
                reach, reach_incl, reach_band = b.hi, b.hi_incl, b
        if reach is not None:
            rows.append(("band-gap", reach_band.name,
                         f"{where}: values {'above' if reach_incl else 'from'} {reach}{unit} are in no band "
                         f"(the highest band {reach_band.name} ends {reach_band.upper_text()})"))
    return rows


def _shacl_shacl() -> rdflib.Graph:
    import pyshacl

    path = Path(pyshacl.__file__).parent / "assets" / "shacl-shacl.ttl"
    return rdflib.Graph().parse(path, format="turtle")


def _named_owner(g: rdflib.Graph, node):
    """The named shape a blank node (property shape, list cell …) belongs to."""
    todo, seen = [node], {node}
    while todo:
        n = todo.pop(0)
        if isinstance(n, rdflib.URIRef):
            return n
        for s in g.subjects(None, n):
            if s not in seen:
                seen.add(s)
                todo.append(s)
    return node


def check_shacl(qc: QCGraph) -> list[Row]:
    """shacl-shapes-invalid: the shapes graph against the SHACL-for-SHACL shapes."""
    import pyshacl

    conforms, report, _ = pyshacl.validate(qc.shapes, shacl_graph=_shacl_shacl(), inference="none")
    if conforms:
        return []
    rows = set()
    for res in report.subjects(RDF.type, SH.ValidationResult):
        focus = report.value(res, SH.focusNode)
        owner = _named_owner(qc.shapes, focus)
        msg = str(report.value(res, SH.resultMessage) or "does not conform to SHACL-for-SHACL")
        path = report.value(res, SH.resultPath)
        value = report.value(res, SH.value)
        detail = msg
        if path is not None:
            detail = f"{_term_str(path)}: {detail}"
        if value is not None and not isinstance(value, rdflib.BNode):
            detail += f" (value {_term_str(value)})"
        rows.add(("shacl-shapes-invalid", _term_str(owner), f"not a valid SHACL shape: {detail}"))
    return sorted(rows)


def _parse_sparql(text: str, prefix_lines: int = 0) -> str | None:
    """None if the query parses (it is run on an empty store), else the error in one line, its
    line numbers counted in the query as written (without the ``prefix_lines`` added before it)."""
    try:
        result = ox.Store().query(text)
        if not isinstance(result, bool):
            for _ in result:
                break
    except SyntaxError as exc:
        msg = " ".join(str(exc).split())
        return re.sub(r"\b(\d+):(\d+)\b", lambda m: f"line {max(1, int(m.group(1)) - prefix_lines)}, column {m.group(2)}", msg, count=1)
    except (OSError, ValueError, RuntimeError):
        return None  # parsed; failed only for want of data
    return None


def check_query_syntax(qc: QCGraph) -> list[Row]:
    """query-syntax: every rule and every SHACL-SPARQL constraint parses."""
    g = qc.union
    rows: list[Row] = []
    rule_prefixes = sparql_prefixes()
    for node, text in sorted(g.subject_objects(QCN.queryText)):
        err = _parse_sparql(rule_prefixes + str(text), rule_prefixes.count("\n"))
        if err:
            rows.append(("query-syntax", _term_str(node), f"the rule's SPARQL does not parse: {err}"))
    shape_prefixes = "".join(f"PREFIX {p}: <{ns}>\n" for p, ns in _shape_prefixes(qc.shapes).items())
    for holder, text in sorted(qc.shapes.subject_objects(SH.select)):
        err = _parse_sparql(shape_prefixes + str(text), shape_prefixes.count("\n"))
        if err:
            rows.append(("query-syntax", _term_str(_named_owner(qc.shapes, holder)),
                         f"a SHACL-SPARQL constraint does not parse: {err}"))
    return rows


# ---- OWL -------------------------------------------------------------------------------------


def _list_items(g: rdflib.Graph, head) -> list:
    items, seen = [], set()
    while head is not None and head != RDF.nil and head not in seen:
        seen.add(head)
        first = g.value(head, RDF.first)
        if first is not None:
            items.append(first)
        head = g.value(head, RDF.rest)
    return items


def render_class(g: rdflib.Graph, c, depth: int = 0) -> str:
    """A class expression in Manchester-like syntax."""
    if not isinstance(c, rdflib.BNode) or depth > 6:
        return _term_str(c)
    on = g.value(c, OWL.onProperty)
    if on is not None:
        p = _term_str(on)
        for pred, word in ((OWL.someValuesFrom, "some"), (OWL.allValuesFrom, "only")):
            v = g.value(c, pred)
            if v is not None:
                return f"({p} {word} {render_class(g, v, depth + 1)})"
        v = g.value(c, OWL.hasValue)
        if v is not None:
            return f"({p} value {_term_str(v)})"
        for pred, word in ((OWL.minCardinality, "min"), (OWL.maxCardinality, "max"), (OWL.cardinality, "exactly"),
                           (OWL.minQualifiedCardinality, "min"), (OWL.maxQualifiedCardinality, "max"),
                           (OWL.qualifiedCardinality, "exactly")):
            v = g.value(c, pred)
            if v is not None:
                q = g.value(c, OWL.onClass)
                return f"({p} {word} {v}{' ' + render_class(g, q, depth + 1) if q is not None else ''})"
        return f"({p} …)"
    for pred, word in ((OWL.intersectionOf, " and "), (OWL.unionOf, " or ")):
        head = g.value(c, pred)
        if head is not None:
            return "(" + word.join(render_class(g, x, depth + 1) for x in _list_items(g, head)) + ")"
    v = g.value(c, OWL.complementOf)
    if v is not None:
        return f"(not {render_class(g, v, depth + 1)})"
    head = g.value(c, OWL.oneOf)
    if head is not None:
        return "{" + ", ".join(_term_str(x) for x in _list_items(g, head)) + "}"
    return "[anonymous class]"


def _superclasses(g: rdflib.Graph, c) -> set:
    """Named superclasses of c by rdfs:subClassOf, owl:equivalentClass and the named operands of
    intersections (reflexive, transitive)."""
    out, todo = {c}, [c]
    while todo:
        x = todo.pop()
        nxt = list(g.objects(x, RDFS.subClassOf)) + list(g.objects(x, OWL.equivalentClass)) + list(g.subjects(OWL.equivalentClass, x))
        for y in list(nxt):
            if isinstance(y, rdflib.BNode):
                head = g.value(y, OWL.intersectionOf)
                if head is not None:
                    nxt.extend(_list_items(g, head))
        for y in nxt:
            if isinstance(y, rdflib.URIRef) and y not in out:
                out.add(y)
                todo.append(y)
    return out


def _disjoint_axioms(g: rdflib.Graph) -> list[tuple[frozenset, str]]:
    """Every disjointness axiom: (the classes it makes pairwise disjoint, how it reads)."""
    out = []
    for a, b in g.subject_objects(OWL.disjointWith):
        out.append((frozenset({a, b}), f"{render_class(g, a)} DisjointWith {render_class(g, b)}"))
    for ax in g.subjects(RDF.type, OWL.AllDisjointClasses):
        members = _list_items(g, g.value(ax, OWL.members))
        out.append((frozenset(members), "DisjointClasses(" + ", ".join(render_class(g, m) for m in members) + ")"))
    for c, head in g.subject_objects(OWL.disjointUnionOf):
        members = _list_items(g, head)
        out.append((frozenset(members), f"{render_class(g, c)} DisjointUnionOf(" + ", ".join(render_class(g, m) for m in members) + ")"))
    return out


def _clashes(g: rdflib.Graph, classes: set) -> list[str]:
    """Disjointness axioms that two of ``classes`` (with their superclasses) fall under."""
    closure = set()
    for c in classes:
        closure |= _superclasses(g, c)
    hits = []
    for members, text in _disjoint_axioms(g):
        if len(members & closure) >= 2:
            hits.append(text)
    if OWL.Nothing in closure:
        hits.append("a superclass is owl:Nothing")
    return sorted(set(hits))


def explain_unsatisfiable(g: rdflib.Graph, cls) -> str:
    axioms = [f"{render_class(g, cls)} SubClassOf {render_class(g, s)}" for s in g.objects(cls, RDFS.subClassOf)]
    axioms += [f"{render_class(g, cls)} EquivalentTo {render_class(g, e)}" for e in g.objects(cls, OWL.equivalentClass)]
    axioms += [f"{render_class(g, e)} EquivalentTo {render_class(g, cls)}" for e in g.subjects(OWL.equivalentClass, cls)]
    named = {cls} | {x for x in _superclasses(g, cls)}
    clash = _clashes(g, named)
    also = [text for members, text in _disjoint_axioms(g) if cls in members and text not in clash]
    parts = sorted(set(axioms)) + clash + sorted(set(also))
    return "unsatisfiable (no individual can be a member); axioms involved: " + ("; ".join(parts) if parts else "none asserted on the class itself (look at the restrictions that use it)")


def explain_inconsistency(g: rdflib.Graph) -> list[tuple[str, str]]:
    """Individuals whose asserted types, or the domains and ranges of their property values, fall
    under a disjointness axiom; and sameAs / differentFrom clashes. (HermiT names no culprit.)"""
    out = []
    domains = defaultdict(set)
    ranges = defaultdict(set)
    for p, d in g.subject_objects(RDFS.domain):
        if isinstance(d, rdflib.URIRef):
            domains[p].add(d)
    for p, r in g.subject_objects(RDFS.range):
        if isinstance(r, rdflib.URIRef) and (p, RDF.type, OWL.ObjectProperty) in g:
            ranges[p].add(r)
    individuals = set(g.subjects(RDF.type, OWL.NamedIndividual))
    for s, c in g.subject_objects(RDF.type):
        if (c, RDF.type, OWL.Class) in g:
            individuals.add(s)
    for x in sorted(i for i in individuals if isinstance(i, rdflib.URIRef)):
        why = {c: f"{_term_str(x)} a {_term_str(c)}" for c in g.objects(x, RDF.type)
               if isinstance(c, rdflib.URIRef) and c != OWL.NamedIndividual}
        for p, _ in g.predicate_objects(x):
            for d in domains.get(p, ()):
                why.setdefault(d, f"{_term_str(p)} has domain {_term_str(d)}")
        for s, p in g.subject_predicates(x):
            for r in ranges.get(p, ()):
                why.setdefault(r, f"{_term_str(p)} has range {_term_str(r)}")
        clash = _clashes(g, set(why))
        if clash:
            out.append((_term_str(x), "individual in disjoint classes: " + "; ".join(sorted(why.values())) + "; but " + "; ".join(clash)))
    different = set(g.subject_objects(OWL.differentFrom))
    for ax in g.subjects(RDF.type, OWL.AllDifferent):
        members = _list_items(g, g.value(ax, OWL.distinctMembers) or g.value(ax, OWL.members))
        different |= {(a, b) for a in members for b in members if a != b}
    for a, b in g.subject_objects(OWL.sameAs):
        if (a, b) in different or (b, a) in different:
            out.append((_term_str(a), f"{_term_str(a)} owl:sameAs {_term_str(b)}, but they are declared different"))
    return out


def hermit(graph: rdflib.Graph):
    from ..owl import hermit_check

    return hermit_check(SimpleNamespace(ontology_rdflib=graph))


def check_owl(qc: QCGraph, reasoner: Callable | None = None) -> list[Row]:
    """owl-inconsistent and owl-unsatisfiable, with the axioms involved."""
    result = (reasoner or hermit)(qc.ontology)
    g = qc.ontology
    if not result.consistent:
        if result.message:
            return [("owl-inconsistent", "<https://w3id.org/b12kg/>", f"HermiT could not classify the ontology: {result.message}")]
        rows = [("owl-inconsistent", e, m) for e, m in explain_inconsistency(g)]
        return rows or [("owl-inconsistent", "<https://w3id.org/b12kg/>",
                         "HermiT finds the ontology inconsistent (no individual can satisfy all axioms); no asserted "
                         "type clash was found: look at property assertions against restrictions and at owl:sameAs")]
    rows = []
    for iri in result.unsatisfiable:
        if iri == str(OWL.Nothing):
            continue
        rows.append(("owl-unsatisfiable", compact(iri), explain_unsatisfiable(g, rdflib.URIRef(iri))))
    return rows


def java_available() -> bool:
    try:
        import owlready2

        exe = getattr(owlready2, "JAVA_EXE", "java")
    except ImportError:
        return False
    return shutil.which(exe) is not None or Path(exe).is_file()


PY_CHECKS: dict[str, tuple[str, str]] = {
    "band-gap": (
        "Bands that partition a result kind's number line (e.g. the three B12 categories of total B12) leave a value "
        "in no band: a patient with that value gets no category, and every rule reading the category stays silent.",
        "Make each band start exactly where the one below it ends, with one side inclusive and the other exclusive "
        "(e.g. < 180 / >= 180 and <= 350 / > 350), and leave the lowest band unbounded below and the highest unbounded above."),
    "band-overlap": (
        "Two bands of one partition contain the same value: a patient with that value is in two categories at once.",
        "Make the shared bound inclusive on one band and exclusive on the other, or move it."),
    "shacl-shapes-invalid": (
        "A shape is not valid SHACL (checked against the SHACL-for-SHACL shapes): pySHACL may ignore it or stop.",
        "Fix the shape as the message says (wrong datatype, a property shape without sh:path, a bad sh:severity …)."),
    "query-syntax": (
        "A rule file or a SHACL-SPARQL constraint is not valid SPARQL; the rule cannot run.",
        "Fix the query; the engine adds the prefixes listed in docs/ENCODING.md to rules, and a shape gets those of its sh:declare."),
    "owl-inconsistent": (
        "HermiT finds the ontology inconsistent: no model satisfies all its axioms, so every OWL conclusion is void.",
        "Remove the clash the message names (an individual in two disjoint classes, a sameAs between different individuals …)."),
    "owl-unsatisfiable": (
        "HermiT finds a class that can have no member: every patient or record classified into it would make the ontology inconsistent.",
        "Look at the axioms listed (superclasses, equivalent classes and the disjointness axioms they fall under) and drop or fix the one that clashes."),
}


# ---------------------------------------------------------------------------------------------
# The runner
# ---------------------------------------------------------------------------------------------


def run_sparql_check(check: Check, qc: QCGraph) -> list[Row]:
    store = qc.store
    try:
        result = store.query(check.text)
    except SyntaxError as exc:
        raise KnowledgeBaseError(f"{check.path}: {' '.join(str(exc).split())}") from None
    rows = []
    names = [v.value for v in result.variables]
    if "entity" not in names or "message" not in names:
        raise KnowledgeBaseError(f"{check.path}: a QC query must select ?entity and ?message")
    for sol in result:
        rows.append((check.id, _term_str(sol["entity"]), _compact_text(_term_str(sol["message"]))))
    return rows


@dataclass
class Report:
    problems: list[Problem]
    checks: dict[str, Check]
    ran: list[str]

    def count(self, severity: str) -> int:
        return sum(1 for p in self.problems if p.severity == severity)

    @property
    def has_error(self) -> bool:
        return self.count("ERROR") > 0

    def summary(self) -> str:
        e, w, i = self.count("ERROR"), self.count("WARN"), self.count("INFO")
        return (f"{e} error{'s' * (e != 1)}, {w} warning{'s' * (w != 1)}, {i} info{'s' * (i != 1)} "
                f"from {len(self.ran)} checks")


def qc_dir_of(root: Path) -> Path:
    return root / "queries" / "qc"


def all_checks(qc_dir: Path) -> dict[str, Check]:
    checks = {c.id: c for c in load_sparql_checks(qc_dir)}
    for cid, (problem, solution) in PY_CHECKS.items():
        if cid in checks:
            raise KnowledgeBaseError(f"{qc_dir / (cid + '.rq')}: '{cid}' is a built-in check")
        checks[cid] = Check(cid, problem, solution)
    return checks


def run_checks(qc: QCGraph, qc_dir: Path, *, only: set[str] | None = None, owl: bool = True,
               reasoner: Callable | None = None) -> Report:
    """Run the checks (all, or ``only``) over a QC graph; severities from the profile."""
    checks = all_checks(qc_dir)
    profile = load_profile(qc_dir / "profile.tsv")
    for cid in sorted(checks):
        if cid not in profile:
            raise KnowledgeBaseError(f"{qc_dir / 'profile.tsv'}: no severity for check '{cid}'")
    wanted = [c for c in sorted(checks) if only is None or c in only]
    if only is not None and (unknown := sorted(set(only) - set(checks))):
        raise UsageError(f"unknown check: {', '.join(unknown)}")
    rows: list[Row] = []
    ran: list[str] = []
    for cid in wanted:
        if checks[cid].path is not None:
            rows += run_sparql_check(checks[cid], qc)
            ran.append(cid)
    py = [c for c in wanted if checks[c].path is None]
    if {"band-gap", "band-overlap"} & set(py):
        rows += [r for r in check_bands(qc) if r[0] in py]
    if "shacl-shapes-invalid" in py:
        rows += check_shacl(qc)
    if "query-syntax" in py:
        rows += check_query_syntax(qc)
    owl_ids = tuple(c for c in ("owl-inconsistent", "owl-unsatisfiable") if c in py)
    notes = [n for n in qc.notes if set(n[2]) & set(wanted)]
    if owl_ids:
        if not owl:
            notes.append(("owl", "OWL consistency and unsatisfiable classes not checked (--no-owl)", owl_ids))
        elif reasoner is None and not java_available():
            notes.append(("owl", "OWL consistency and unsatisfiable classes not checked: Java was not found (HermiT needs it); "
                                 "install Java 17 or pass --no-owl", owl_ids))
        else:
            rows += [r for r in check_owl(qc, reasoner) if r[0] in owl_ids]
    ran += py
    not_run = {c for n in notes for c in n[2]}
    problems = {Problem(profile[cid], cid, entity, message) for cid, entity, message in rows}
    problems |= {Problem("INFO", SKIPPED, entity, message) for entity, message, _ in notes}
    return Report(sorted(problems, key=Problem.sort_key), checks, sorted(set(ran) - not_run))


def check(root: Path | str = PROJECT_ROOT, *, owl: bool = True, cooccurrence: bool = True,
          only: set[str] | None = None, reasoner: Callable | None = None) -> Report:
    """The quality report of the encoding under ``root``."""
    root = Path(root)
    if not root.is_dir():
        raise UsageError(f"--root: {root}: not a directory")
    qc_dir = qc_dir_of(root)
    if not qc_dir.is_dir():
        qc_dir = qc_dir_of(PROJECT_ROOT)
    qc = build_qc_graph(root, cooccurrence=cooccurrence and (only is None or "tx-cofire-undeclared" in only))
    return run_checks(qc, qc_dir, only=only, owl=owl, reasoner=reasoner)


# ---------------------------------------------------------------------------------------------
# Views
# ---------------------------------------------------------------------------------------------


def _fired_checks(report: Report) -> list[Check]:
    ids = sorted({p.check for p in report.problems if p.check in report.checks})
    return [report.checks[i] for i in ids]


def to_table(report: Report) -> str:
    head = ("SEVERITY", "CHECK", "ENTITY", "MESSAGE")
    rows = [(p.severity, p.check, p.entity, p.message) for p in report.problems]
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(3)]
    lines = []
    if rows:
        for r in [head, *rows]:
            lines.append("  ".join(r[i].ljust(widths[i]) for i in range(3)) + "  " + r[3])
        fired = _fired_checks(report)
        if fired:
            lines.append("")
            lines.append("How to fix:")
            for c in fired:
                lines.append(f"  {c.id}: {c.solution}")
        lines.append("")
    lines.append(f"b12kg check: {report.summary()}")
    return "\n".join(lines) + "\n"


def to_tsv(report: Report) -> str:
    def clean(s: str) -> str:
        return " ".join(s.replace("\t", " ").split())

    lines = ["severity\tcheck\tentity\tmessage"]
    lines += ["\t".join(clean(x) for x in (p.severity, p.check, p.entity, p.message)) for p in report.problems]
    return "\n".join(lines) + "\n"


def to_json(report: Report) -> str:
    data = {
        "summary": {"errors": report.count("ERROR"), "warnings": report.count("WARN"), "infos": report.count("INFO"),
                    "checks_run": report.ran, "text": report.summary()},
        "problems": [p.as_dict() for p in report.problems],
        "checks": {c.id: {"problem": c.problem, "solution": c.solution,
                          "file": c.path.name if c.path else None,
                          "rows": sum(1 for p in report.problems if p.check == c.id)}
                   for c in sorted(report.checks.values(), key=lambda c: c.id)},
    }
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def to_md(report: Report) -> str:
    def cell(s: str) -> str:
        return " ".join(s.replace("|", "\\|").split())

    lines = ["# b12kg check", "", f"**{report.summary()}**", ""]
    if report.problems:
        lines += ["| severity | check | entity | message |", "|---|---|---|---|"]
        lines += [f"| {p.severity} | `{p.check}` | `{cell(p.entity)}` | {cell(p.message)} |" for p in report.problems]
        lines.append("")
        fired = _fired_checks(report)
        if fired:
            lines += ["## The checks that found something", ""]
            for c in fired:
                lines += [f"### `{c.id}`", "", f"*Problem:* {c.problem}", "", f"*Solution:* {c.solution}", ""]
    return "\n".join(lines).rstrip("\n") + "\n"


VIEWS = {"table": to_table, "json": to_json, "tsv": to_tsv, "md": to_md}


# ---------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "check",
        help="encoding quality report for guideline authors; exit 1 on any ERROR",
        description="Check the encoding (ontology, shapes, rules) against the catalog, its tests and itself. "
                    "Checks are queries/qc/*.rq plus built-in band, SHACL, SPARQL-syntax and OWL checks; "
                    "severities come from queries/qc/profile.tsv. Exit 1 on any ERROR, 0 otherwise, 2 on bad usage.")
    p.add_argument("--root", default=str(PROJECT_ROOT), metavar="DIR",
                   help="the project to check (default: this project); ontology/, shapes/, queries/, docs/, tests/cases/, examples/")
    p.add_argument("-f", "--format", default="table", choices=FORMATS, help="table (default), json, tsv or md")
    p.add_argument("-o", "--output", default="-", help="output file (default: stdout)")
    p.add_argument("--no-owl", action="store_true", help="skip OWL reasoning with HermiT (e.g. without Java)")
    p.add_argument("--no-cooccurrence", action="store_true",
                   help="skip running the shipped cases to find TX-* recommendations that fire together undeclared (about 5 s)")
    p.add_argument("--check", action="append", metavar="ID", dest="only",
                   help="run only this check (repeatable)")
    p.set_defaults(handler=run)
    return p


def run(args) -> int:
    report = check(Path(args.root), owl=not args.no_owl, cooccurrence=not args.no_cooccurrence,
                   only=set(args.only) if args.only else None)
    text = VIEWS[args.format](report)
    if args.output == "-":
        sys.stdout.write(text)
    else:
        try:
            Path(args.output).write_text(text, encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"{args.output}: cannot write: {exc.strerror or exc}") from None
    return 1 if report.has_error else 0
