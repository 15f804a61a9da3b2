"""``b12kg trace``: the traceability matrix of the encoding.

One row per catalog identifier (``docs/guideline/CATALOG.md``): the source documents and
references its statement cites, the statement IRI, the SPARQL rule file or SHACL shape that
implements it, what that rule or shape reads (derived states, fact classes, other identifiers'
results), the test cases that mention it (``tests/cases/<ID>.toml`` fire and near-miss cases,
``examples/*.expected.json`` must / must_not) and its gaps. A gap is a statement without a fire
case or a near-miss case, without an implementing rule or shape, without a source (a statement
citing no document), or missing from the ontology. Then: the gaps, the identifiers citing each
source document, and the derived states with the identifiers reading them.

Markdown or HTML; the shipped matrix is ``docs/traceability.md`` (``b12kg trace -o
docs/traceability.md``). ``--check`` exits 1 when there is a gap.
"""
from __future__ import annotations

import argparse
import html
import json
import re
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InputError
from ..vocab import BASE, SHAPE, STATEMENT
from ..output import write_output as _write

ID_PATTERN = r"(?:DX|TX|PAIN|MON|SAFETY|INFO|CONFLICT)-[A-Z0-9]+(?:-[A-Z0-9]+)*"
_CATALOG_ROW = re.compile(rf"^\| ({ID_PATTERN}) ", re.M)
_ID = re.compile(rf"^{ID_PATTERN}$")
_B12_TOKEN = re.compile(r"(?<![\w:/#-])b12:([A-Za-z_][A-Za-z0-9_]*)")
_B12_IRI = re.compile(re.escape("<" + BASE) + r"([A-Za-z_][A-Za-z0-9_]*)>")
_STMT_TOKEN = re.compile(rf"(?<![\w:/#-])stmt:({ID_PATTERN})")
_STMT_IRI = re.compile(re.escape("<" + STATEMENT) + rf"({ID_PATTERN})>")
#: Classes every rule or shape mentions; not worth a column entry.
_NOISE_CLASSES = {"Patient", "DerivedState", "EvaluationContext", "GuidelineStatement"}


# ---- the model ----


@dataclass
class Citation:
    document: str  # "000"
    title: str
    reference: str | None

    @property
    def short(self) -> str:
        if not self.reference:
            return self.document
        return f"{self.document} ref{'s' if re.search(r'[,–-]', self.reference) else ''} {self.reference}"


@dataclass
class Implementation:
    kind: str  # rule | shape
    iri: str  # rule:<ID> or shape:<ID>
    file: str  # path relative to the project root
    detail: str  # "stratum 60" or "sh:Violation"


@dataclass
class Row:
    ident: str
    statement: str | None = None  # stmt:<ID> when the ontology has it
    label: str = ""
    citations: list[Citation] = field(default_factory=list)
    unknown_documents: list[str] = field(default_factory=list)
    implementations: list[Implementation] = field(default_factory=list)
    reads_states: list[str] = field(default_factory=list)
    reads_facts: list[str] = field(default_factory=list)
    reads_results: list[str] = field(default_factory=list)
    case_file: str | None = None
    fire_cases: int = 0
    near_miss_cases: int = 0
    other_cases: int = 0  # cases in other case files that name this identifier
    examples: list[tuple[str, str]] = field(default_factory=list)  # (example, "must" | "must_not")
    gaps: list[str] = field(default_factory=list)


@dataclass
class Document:
    iri: str
    ident: str
    title: str
    seed: str | None
    citing: list[tuple[str, str | None]] = field(default_factory=list)  # (identifier, reference)


@dataclass
class State:
    name: str
    label: str
    derived_by: list[str]
    read_by: list[str] = field(default_factory=list)


@dataclass
class Matrix:
    root: Path
    rows: list[Row]
    documents: list[Document]
    states: list[State]
    unlisted: list[str]
    counts: dict

    @property
    def gaps(self) -> list[tuple[str, str]]:
        return [(r.ident, g) for r in self.rows for g in r.gaps] + [("(not in the catalog)", u) for u in self.unlisted]


# ---- building ----


def _rel(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return path.as_posix()


def catalog_identifiers(root: Path) -> list[str]:
    catalog = root / "docs" / "guideline" / "CATALOG.md"
    if not catalog.is_file():
        return []
    return sorted(set(_CATALOG_ROW.findall(catalog.read_text(encoding="utf-8"))), key=_catalog_order(catalog))


def _catalog_order(catalog: Path):
    text = catalog.read_text(encoding="utf-8")
    order = {m: i for i, m in enumerate(dict.fromkeys(_CATALOG_ROW.findall(text)))}
    return lambda ident: order.get(ident, len(order))


def _strip_comments(text: str) -> str:
    return "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))


def _mentions(text: str) -> tuple[set[str], set[str]]:
    """(b12 local names, statement identifiers) mentioned in SPARQL text."""
    names = set(_B12_TOKEN.findall(text)) | set(_B12_IRI.findall(text))
    stmts = set(_STMT_TOKEN.findall(text)) | set(_STMT_IRI.findall(text))
    return names, stmts


def _reachable_text(g, node) -> tuple[list[str], set[str]]:
    """Literal strings and b12 IRIs reachable from a node through blank nodes and RDF lists."""
    import rdflib

    texts: list[str] = []
    iris: set[str] = set()
    seen = set()
    todo = [node]
    while todo:
        n = todo.pop()
        if n in seen:
            continue
        seen.add(n)
        for _, _, o in g.triples((n, None, None)):
            if isinstance(o, rdflib.Literal):
                texts.append(str(o))
            elif isinstance(o, rdflib.BNode):
                todo.append(o)
            elif isinstance(o, rdflib.URIRef) and str(o).startswith(BASE):
                iris.add(str(o)[len(BASE):])
    return texts, iris


def _load_toml_cases(cases_dir: Path, root: Path) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    if not cases_dir.is_dir():
        return out
    for f in sorted(cases_dir.glob("*.toml")):
        try:
            data = tomllib.loads(f.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise InputError(_rel(f, root), f"invalid TOML: {' '.join(str(exc).split())}") from None
        cases = data.get("case", [])
        if not isinstance(cases, list):
            raise InputError(_rel(f, root), "'case' must be an array of tables ([[case]])")
        out[f.stem] = [c for c in cases if isinstance(c, dict)]
    return out


def _load_examples(examples_dir: Path, root: Path) -> list[tuple[str, dict]]:
    out = []
    if not examples_dir.is_dir():
        return out
    files = sorted({*examples_dir.rglob("*.expected.json"), *examples_dir.rglob("*.case.json")})
    for f in files:
        try:
            spec = json.loads(f.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise InputError(_rel(f, root), f"invalid JSON: {exc.msg}", exc.lineno, exc.colno) from None
        except UnicodeDecodeError as exc:
            raise InputError(_rel(f, root), f"not UTF-8 text (byte {exc.start})") from None
        if not isinstance(spec, dict):
            raise InputError(_rel(f, root), "a case file must be a JSON object")
        stem = f.name.removesuffix(".expected.json").removesuffix(".case.json")
        name = str(spec.get("case") or stem)
        out.append((name, spec))
    return out


def _id_list(value) -> list[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def build(root: Path | str | None = None, cases_dir: Path | str | None = None, examples_dir: Path | str | None = None) -> Matrix:
    import rdflib
    from rdflib.namespace import DCTERMS, OWL, RDF, RDFS, SH

    from ..kb import PROJECT_ROOT, KnowledgeBase

    root = Path(root) if root is not None else PROJECT_ROOT
    if not root.is_dir():
        raise InputError(str(root), "no such project directory")
    cases_dir = Path(cases_dir) if cases_dir is not None else root / "tests" / "cases"
    examples_dir = Path(examples_dir) if examples_dir is not None else root / "examples"
    if not cases_dir.is_dir():
        raise InputError(str(cases_dir), "no such case directory")

    kb = KnowledgeBase(root)
    g = kb.ontology_rdflib
    b12 = rdflib.Namespace(BASE)

    # statements
    statements: dict[str, rdflib.URIRef] = {}
    for s in set(g.subjects(RDF.type, b12.GuidelineStatement)) | set(g.subjects(RDF.type, b12.B12RegimenStatement)):
        ident = g.value(s, DCTERMS.identifier)
        key = str(ident) if ident is not None else str(s).removeprefix(STATEMENT)
        if str(s).startswith(STATEMENT) and (ident is not None or (s, RDFS.label, None) in g):
            statements[key] = s

    idents = catalog_identifiers(root) or sorted(statements)

    # documents
    documents: dict[str, Document] = {}
    for d in g.subjects(RDF.type, b12.SourceDocument):
        ident = str(g.value(d, DCTERMS.identifier) or str(d).rsplit("/", 1)[-1])
        documents[str(d)] = Document(str(d), ident, str(g.value(d, DCTERMS.title) or ""), (str(g.value(d, b12.seedFile)) if g.value(d, b12.seedFile) else None))

    # classes
    derived = {str(c)[len(BASE):] for c in g.transitive_subjects(RDFS.subClassOf, b12.DerivedState)
               if str(c).startswith(BASE)} - {"DerivedState"}
    classes = {str(c)[len(BASE):] for t in (OWL.Class, RDFS.Class) for c in g.subjects(RDF.type, t)
               if isinstance(c, rdflib.URIRef) and str(c).startswith(BASE)}
    statement_classes = {str(c)[len(BASE):] for c in g.transitive_subjects(RDFS.subClassOf, b12.GuidelineStatement)
                         if str(c).startswith(BASE)}
    facts = classes - derived - statement_classes - _NOISE_CLASSES

    # shapes, per file
    shapes: dict[str, list[tuple[Implementation, set[str], set[str]]]] = {}
    for f in kb.shape_files:
        sg = rdflib.Graph()
        sg.parse(f, format="turtle")
        for s in set(sg.subjects(RDF.type, SH.NodeShape)) | set(sg.subjects(RDF.type, SH.PropertyShape)):
            targets = {str(o).removeprefix(STATEMENT) for o in sg.objects(s, b12.implements) if str(o).startswith(STATEMENT)}
            if not targets and sg.value(s, DCTERMS.identifier) is not None:
                targets = {str(sg.value(s, DCTERMS.identifier))}
            targets = {t for t in targets if _ID.match(t)}
            if not targets:
                continue
            texts, iris = _reachable_text(sg, s)
            names, stmts = set(iris), set()
            for t in texts:
                n, st = _mentions(t)
                names |= n
                stmts |= st
            sev = sg.value(s, SH.severity)
            detail = f"sh:{str(sev).rsplit('#', 1)[-1]}" if sev is not None else ""
            iri = f"shape:{str(s)[len(SHAPE):]}" if str(s).startswith(SHAPE) else str(s)
            for t in targets:
                shapes.setdefault(t, []).append((Implementation("shape", iri, _rel(f, root), detail), names, stmts))

    # rules
    rules: dict[str, list[tuple[Implementation, set[str], set[str]]]] = {}
    def_rules = []
    for r in kb.rules:
        body = _strip_comments(r.path.read_text(encoding="utf-8"))
        names, stmts = _mentions(body)
        target = r.id if r.is_catalog_rule else r.implements
        if _ID.match(target):
            rules.setdefault(target, []).append((Implementation("rule", f"rule:{r.id}", _rel(r.path, root), f"stratum {r.stratum}"), names, stmts))
        else:
            def_rules.append((r, body))

    # tests
    toml_cases = _load_toml_cases(cases_dir, root)
    examples = _load_examples(examples_dir, root)

    rows: list[Row] = []
    for ident in idents:
        row = Row(ident)
        s = statements.get(ident)
        if s is not None:
            row.statement = f"stmt:{ident}"
            row.label = str(g.value(s, RDFS.label) or "")
            for c in g.objects(s, b12.citation):
                d = g.value(c, b12.document)
                ref = g.value(c, b12.reference)
                doc = documents.get(str(d)) if d is not None else None
                if doc is None:
                    row.unknown_documents.append(str(d) if d is not None else "(no document)")
                    continue
                row.citations.append(Citation(doc.ident, doc.title, str(ref) if ref is not None else None))
                doc.citing.append((ident, str(ref) if ref is not None else None))
            row.citations.sort(key=lambda c: (c.document, c.reference or ""))
        impls = rules.get(ident, []) + shapes.get(ident, [])
        names: set[str] = set()
        stmts: set[str] = set()
        for impl, n, st in impls:
            row.implementations.append(impl)
            names |= n
            stmts |= st
        row.reads_states = sorted(names & derived)
        row.reads_facts = sorted(names & facts)
        row.reads_results = sorted(stmts - {ident}) + [f"any b12:{c}" for c in sorted(names & (statement_classes - _NOISE_CLASSES))]
        own = toml_cases.get(ident)
        if own is not None:
            row.case_file = _rel(cases_dir / f"{ident}.toml", root)
            row.fire_cases = sum(ident in _id_list(c.get("fires")) for c in own)
            row.near_miss_cases = sum(ident in _id_list(c.get("silent")) for c in own)
        row.other_cases = sum(ident in _id_list(c.get("fires")) + _id_list(c.get("silent"))
                              for stem, cs in toml_cases.items() if stem != ident for c in cs)
        for name, spec in examples:
            if ident in _id_list(spec.get("must")):
                row.examples.append((name, "must"))
            elif ident in _id_list(spec.get("must_not")):
                row.examples.append((name, "must_not"))
        # gaps
        if s is None:
            row.gaps.append(f"no statement stmt:{ident} in the ontology")
        elif not row.citations:
            row.gaps.append("no source: the statement cites no document")
        for d in row.unknown_documents:
            row.gaps.append(f"cites {d}, which is not a source document")
        if not row.implementations:
            row.gaps.append("no implementing rule or shape")
        if own is None:
            row.gaps.append(f"no test case file ({_rel(cases_dir / f'{ident}.toml', root)})")
        else:
            if row.fire_cases == 0:
                row.gaps.append("no case where it fires")
            if row.near_miss_cases == 0:
                row.gaps.append("no near-miss case where it is silent")
        rows.append(row)

    # what the encoding has that the catalog does not list
    listed = set(idents)
    unlisted = []
    for ident in sorted(set(rules) - listed):
        unlisted.append(f"{ident}: rule {', '.join(i.file for i, _, _ in rules[ident])} implements an identifier the catalog does not list")
    for ident in sorted(set(shapes) - listed):
        unlisted.append(f"{ident}: shape {', '.join(i.iri for i, _, _ in shapes[ident])} implements an identifier the catalog does not list")
    for ident in sorted(set(statements) - listed):
        if _ID.match(ident):
            unlisted.append(f"{ident}: statement stmt:{ident} is not in the catalog")

    # derived states: which definition rule derives each, which identifiers read it
    state_rows = []
    for name in sorted(derived):
        by = []
        for r, body in def_rules:
            construct = body.split("WHERE", 1)[0]
            values = " ".join(re.findall(r"VALUES[^{]*\{[^}]*\}", body))
            if re.search(rf"(?<![\w:])b12:{name}\b", construct + " " + values):
                by.append(_rel(r.path, root))
        if not by:  # derived through b12:stateClass data (a category, a window, a patient class)
            holders = list(g.subjects(b12.stateClass, b12[name]))
            for r, body in def_rules:
                if "b12:stateClass" not in body:
                    continue
                for h in holders:
                    hints = {str(t)[len(BASE):] for t in g.objects(h, RDF.type) if str(t).startswith(BASE)}
                    hints |= {str(p)[len(BASE):] for p in g.predicates(h, None) if str(p).startswith(BASE)} - {"stateClass"}
                    if (h, RDF.type, OWL.Class) in g:
                        hints.add("hasRecord")
                    if any(re.search(rf"b12:{re.escape(x)}\b", body) for x in hints):
                        by.append(_rel(r.path, root))
                        break
        label = g.value(b12[name], RDFS.label)
        readers = [r.ident for r in rows if name in r.reads_states]
        readers += [Path(d.path).stem + " (definition)" for d, body in def_rules
                    if re.search(rf"(?<![\w:])b12:{name}\b", body.split("WHERE", 1)[-1]) and _rel(d.path, root) not in by]
        state_rows.append(State(name, str(label) if label else "", sorted(set(by)), readers))

    counts = {
        "identifiers": len(rows),
        "rules": sum(any(i.kind == "rule" for i in r.implementations) for r in rows),
        "shapes": sum(any(i.kind == "shape" for i in r.implementations) for r in rows),
        "fire_cases": sum(r.fire_cases for r in rows),
        "near_miss_cases": sum(r.near_miss_cases for r in rows),
        "case_files": len(toml_cases),
        "examples": len(examples),
        "documents": len(documents),
        "examples_dir": _rel(examples_dir, root),
        "cases_dir": _rel(cases_dir, root),
    }
    docs = sorted(documents.values(), key=lambda d: d.ident)
    for d in docs:
        order = {ident: i for i, ident in enumerate(idents)}
        d.citing.sort(key=lambda c: order.get(c[0], len(order)))
    return Matrix(root, rows, docs, state_rows, unlisted, counts)


# ---- rendering (one document model, two views) ----


class Code(str):
    """A cell item shown as code."""


def _tables(m: Matrix):
    """The document as blocks: ("h1"|"h2"|"h3"|"p", text) or ("table", headers, rows of cells);
    a cell is a list of items (str or Code) shown one per line."""
    c = m.counts
    n_gaps = len(m.gaps)
    yield ("h1", "Traceability matrix")
    yield ("p", "Generated by `b12kg trace` from the encoding: do not edit by hand; regenerate with "
                "`b12kg trace -o docs/traceability.md`. Source document and statement ↔ catalog identifier "
                "↔ rule or shape ↔ the derived states and results it reads ↔ test cases.")
    yield ("p", f"{c['identifiers']} catalog identifiers · {c['rules']} implemented by SPARQL rules · "
                f"{c['shapes']} by SHACL shapes · {c['fire_cases']} fire cases and {c['near_miss_cases']} near-miss cases "
                f"in {c['case_files']} case files (`{c['cases_dir']}/`) · {c['examples']} example cases (`{c['examples_dir']}/`) · "
                f"{c['documents']} source documents · **{n_gaps} gap{'s' if n_gaps != 1 else ''}**.")
    yield ("p", "A gap is a statement with no case where it fires or no near-miss case, no implementing rule or "
                "shape, or no source (a statement that cites no document). *Tests* counts the cases in the "
                "identifier's own case file (fire / near miss) and the cases in other case files that name it.")
    yield ("h2", "Matrix")
    headers = ["identifier", "statement", "sources", "implemented by", "reads", "tests (fire / near miss)", "examples", "gap"]
    body = []
    for r in m.rows:
        sources = [f"{ci.short}: {ci.title}" for ci in r.citations] + [f"? {d}" for d in r.unknown_documents]
        impl = []
        for i in r.implementations:
            impl += [Code(i.file), f"{i.iri} ({i.detail})" if i.detail else i.iri]
        reads = [Code(f"b12:{s}") for s in r.reads_states]
        reads += [Code(s if s.startswith("any ") else f"stmt:{s}") for s in r.reads_results]
        if r.reads_facts:
            reads.append("facts: " + ", ".join(r.reads_facts))
        if r.case_file:
            tests = [Code(r.case_file), f"{r.fire_cases} / {r.near_miss_cases}"]
        else:
            tests = ["—"]
        if r.other_cases:
            tests.append(f"+{r.other_cases} in other case files")
        examples = [f"{label}: {', '.join(n for n, k in r.examples if k == kind)}"
                    for kind, label in (("must", "must"), ("must_not", "must not")) if any(k == kind for _, k in r.examples)] or ["—"]
        body.append([[r.ident], [Code(r.statement)] + ([r.label] if r.label else []) if r.statement else ["—"],
                     sources or ["—"], impl or ["—"], reads or ["—"], tests, examples, r.gaps or ["none"]])
    yield ("table", headers, body)

    yield ("h2", "Gaps")
    if m.gaps:
        yield ("table", ["identifier", "gap"], [[[i], [g]] for i, g in m.gaps])
    else:
        yield ("p", "None: every catalog identifier has a statement citing its sources, an implementing rule or "
                    "shape, a case where it fires and a near-miss case.")

    yield ("h2", "Source documents")
    for d in m.documents:
        yield ("h3", f"{d.ident} — {d.title}")
        ids = list(dict.fromkeys(i for i, _ in d.citing))
        seed = f" Seed file `{d.seed}`." if d.seed else ""
        yield ("p", f"`{d.iri.replace(BASE + 'source/', 'src:')}`.{seed} Cited by {len(ids)} identifier{'s' if len(ids) != 1 else ''}.")
        if d.citing:
            refs: dict[str, list[str]] = {}
            for ident, ref in d.citing:
                refs.setdefault(ident, [])
                if ref:
                    refs[ident].append(ref)
            label = {r.ident: r.label for r in m.rows}
            yield ("table", ["identifier", "reference", "statement"],
                   [[[i], ["; ".join(refs[i]) or "—"], [label.get(i) or "—"]] for i in ids])

    yield ("h2", "Derived states")
    yield ("p", "Section-0 terms derived per patient (`ontology/states.ttl`), the definition rule that derives "
                "each, and the catalog identifiers whose rule or shape reads it (and the definition rules that "
                "build other states from it).")
    yield ("table", ["state", "label", "derived by", "read by"],
           [[[Code(f"b12:{s.name}")], [s.label or "—"], [Code(p) for p in s.derived_by] or ["—"], s.read_by or ["—"]]
            for s in m.states])


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _md_item(item) -> str:
    if isinstance(item, Code):
        return "`" + item.replace("|", "\\|") + "`"
    return _md_escape(str(item))


def to_markdown(m: Matrix) -> str:
    out: list[str] = []
    for block in _tables(m):
        kind = block[0]
        if kind in ("h1", "h2", "h3"):
            out += ["#" * int(kind[1]) + " " + block[1], ""]
        elif kind == "p":
            out += [block[1], ""]
        else:
            _, headers, body = block
            out.append("| " + " | ".join(headers) + " |")
            out.append("|" + "|".join("---" for _ in headers) + "|")
            for row in body:
                out.append("| " + " | ".join("<br>".join(_md_item(i) for i in cell) for cell in row) + " |")
            out.append("")
    return "\n".join(out).rstrip("\n") + "\n"


def _html_inline(text: str) -> str:
    """Escape, then render the Markdown bits the paragraphs use (`code`, **bold**, *em*)."""
    t = html.escape(text, quote=False)
    t = re.sub(r"`([^`]+)`", r"<code>\1</code>", t)
    t = re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", t)
    t = re.sub(r"\*([^*]+)\*", r"<em>\1</em>", t)
    return t


def to_html(m: Matrix) -> str:
    out = ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
           "<title>b12kg traceability matrix</title>",
           "<style>body{font-family:system-ui,sans-serif;margin:2em;}table{border-collapse:collapse;margin-bottom:1.5em;}"
           "th,td{border:1px solid #ccc;padding:4px 6px;vertical-align:top;font-size:13px;}th{background:#f3f3f3;text-align:left;}"
           "td.gap{background:#fde2e2;}td.ok{color:#2b7a2b;}code{font-size:12px;}</style>",
           "</head>", "<body>"]
    for block in _tables(m):
        kind = block[0]
        if kind in ("h1", "h2", "h3"):
            ident = re.sub(r"[^a-z0-9]+", "-", block[1].lower()).strip("-")
            out.append(f'<{kind} id="{ident}">{html.escape(block[1])}</{kind}>')
        elif kind == "p":
            out.append(f"<p>{_html_inline(block[1])}</p>")
        else:
            _, headers, body = block
            out.append("<table>")
            out.append("<thead><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in headers) + "</tr></thead>")
            out.append("<tbody>")
            for row in body:
                cells = []
                for h, cell in zip(headers, row):
                    items = "<br>".join(f"<code>{html.escape(i)}</code>" if isinstance(i, Code) else html.escape(str(i)) for i in cell)
                    cls = ""
                    if h == "gap":
                        cls = ' class="ok"' if cell == ["none"] else ' class="gap"'
                    cells.append(f"<td{cls}>{items}</td>")
                out.append("<tr>" + "".join(cells) + "</tr>")
            out.append("</tbody></table>")
    out += ["</body>", "</html>"]
    return "\n".join(out) + "\n"


# ---- command line ----




def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "trace",
        help="traceability matrix: source ↔ statement ↔ identifier ↔ rule/shape ↔ test cases, with gaps",
        description="Print the traceability matrix (one row per catalog identifier) as Markdown or HTML. "
                    "The shipped one is docs/traceability.md.")
    p.add_argument("-f", "--format", default="md", choices=("md", "html"))
    p.add_argument("-o", "--output", default="-", help="output file (default: stdout)")
    p.add_argument("--root", default=None, help="project root (ontology/, shapes/, queries/rules/, docs/guideline/CATALOG.md; default: this installation)")
    p.add_argument("--cases", default=None, help="directory of <ID>.toml case files (default: ROOT/tests/cases)")
    p.add_argument("--examples", default=None, help="directory of *.expected.json example cases (default: ROOT/examples)")
    p.add_argument("--check", action="store_true", help="exit 1 when the matrix shows a gap")
    p.set_defaults(handler=run)
    return p


def run(args) -> int:
    m = build(args.root, args.cases, args.examples)
    _write(to_html(m) if args.format == "html" else to_markdown(m), args.output)
    if args.check and m.gaps:
        if args.output != "-":
            print(f"b12kg trace: {len(m.gaps)} gaps", file=sys.stderr)
        return 1
    return 0
