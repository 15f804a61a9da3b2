"""Why a report item fired, and why an identifier did not.

* ``derivation_graph(report, patient, item_id)`` follows ``prov:wasDerivedFrom`` from a report item
  down through the derived states to the patient's records, and returns a networkx ``DiGraph``
  whose edges run the way the reasoning runs: patient facts -> inferred classes -> rule ->
  derived state -> ... -> rule -> report item -> source. Every node has ``kind`` (one of
  ``KINDS``) and ``label``.
* ``why_not(report, patient, item_id)`` reads the identifier's rule file (or the ``sh:select`` of
  its SAFETY shape), splits its WHERE clause into positive requirements (``?x a b12:X`` outside
  MINUS / NOT EXISTS; UNION branches are alternatives), negative ones (inside MINUS or
  FILTER NOT EXISTS) and dependencies on other catalog results (``b12:statement stmt:OTHER``),
  and checks each one against the patient's facts and states.
* ``tree_text``, ``to_dot``, ``to_mermaid``, ``graph_json`` and ``why_not_text`` are the views.

Nothing here changes the store: every check is a read-only query over the evaluation.
"""
from __future__ import annotations

import re
import weakref
from dataclasses import dataclass, field
from pathlib import Path

import networkx as nx
import pyoxigraph as ox

from .vocab import BASE, STATEMENT, sparql_prefixes

KINDS = ("fact", "class", "state", "rule", "item", "source")
ITEM_KINDS = {
    BASE + "Finding": "finding",
    BASE + "Recommendation": "recommendation",
    BASE + "SafetyViolation": "violation",
    BASE + "SourceConflict": "conflict",
}
#: Record classes too general to say anything about why a rule picked a record.
_GENERIC_CLASSES = {BASE + n for n in ("PatientRecord", "LabResult", "Condition", "Procedure", "CodedObservation", "MedicationUse", "Patient")}
#: Record properties shown on a fact node, in this order.
_FACT_PROPERTIES = (
    "value", "unit", "dose", "doseUnit", "drug", "route", "frequency", "date", "onset", "startDate", "endDate",
    "status", "clinicalStatus", "interpretation", "resultValue", "referenceLow", "referenceHigh",
    "resectedLengthCm", "code", "birthDate", "sex",
)
_LINK_PREDICATES = {"b12:patient", "b12:subject", f"<{BASE}patient>", f"<{BASE}subject>"}


def local_name(iri: str) -> str:
    iri = iri.rstrip("/")
    for sep in ("#", "/", ":"):
        if sep in iri:
            iri = iri.rsplit(sep, 1)[1]
            break
    return iri


def _q(report, sparql: str):
    """SPARQL (engine prefixes added) over one evaluation: the union of all its graphs."""
    return report.query(sparql_prefixes() + sparql)


def _q_store(store, sparql: str):
    return store.query(sparql_prefixes() + sparql, use_default_graph_as_union=True)


def _iri(term) -> str:
    return f"<{term}>"


# --------------------------------------------------------------------------------------------
# What the ontology, rules and shapes say (read once per knowledge base)
# --------------------------------------------------------------------------------------------

class Ontology:
    """Labels, class hierarchy, statements, citations and rule texts of one knowledge base."""

    def __init__(self, kb):
        self.kb = kb
        store = kb.ontology_store

        def q(s):
            return _q_store(store, s)

        self.labels: dict[str, str] = {}
        for r in q("SELECT ?s ?l WHERE { ?s rdfs:label ?l FILTER(isIRI(?s)) } ORDER BY ?s DESC(LANGMATCHES(LANG(?l), 'en')) ?l"):
            self.labels.setdefault(r["s"].value, r["l"].value)
        self.superclasses: dict[str, set[str]] = {}
        for r in q("SELECT ?c ?s WHERE { ?c rdfs:subClassOf+ ?s FILTER(isIRI(?c) && isIRI(?s)) }"):
            self.superclasses.setdefault(r["c"].value, set()).add(r["s"].value)
        self.classes = {r["c"].value for r in q("SELECT ?c WHERE { ?c a owl:Class FILTER(isIRI(?c)) }")}
        self.statements: dict[str, dict] = {}
        for r in q(
            "SELECT ?st ?id ?label ?kind WHERE { ?st a b12:GuidelineStatement ; dcterms:identifier ?id . "
            "OPTIONAL { ?st rdfs:label ?label } OPTIONAL { ?st b12:reportKind ?kind } }"
        ):
            self.statements.setdefault(r["id"].value, {
                "iri": r["st"].value,
                "label": r["label"].value if r["label"] is not None else r["id"].value,
                "kind": ITEM_KINDS.get(r["kind"].value, "item") if r["kind"] is not None else "item",
            })
        self.statement_classes: dict[str, set[str]] = {}
        for r in q("SELECT ?id ?c WHERE { ?st dcterms:identifier ?id ; a ?c . ?c rdfs:subClassOf* b12:GuidelineStatement }"):
            self.statement_classes.setdefault(r["c"].value, set()).add(r["id"].value)
        self.citations: dict[str, list[dict]] = {}
        for r in q(
            "SELECT DISTINCT ?st ?docId ?title ?reference ?evidence WHERE { ?st a b12:GuidelineStatement ; b12:citation ?c . "
            "?c b12:document ?doc . ?doc dcterms:identifier ?docId ; dcterms:title ?title . "
            "OPTIONAL { ?c b12:reference ?reference } OPTIONAL { ?c b12:evidenceLevel ?evidence } }"
        ):
            self.citations.setdefault(r["st"].value, []).append({
                "document": r["title"].value,
                "document_id": r["docId"].value,
                "reference": r["reference"].value if r["reference"] is not None else "",
                "evidence": r["evidence"].value if r["evidence"] is not None else "not graded in the source",
            })
        for lst in self.citations.values():
            lst.sort(key=lambda c: (c["document_id"], c["reference"], c["evidence"]))
        # OWL patient class -> derived state (PatientClassStates): state class -> [(patient class, record class)]
        self.evidence: dict[str, list[tuple[str, str]]] = {}
        for r in q("SELECT ?pc ?state ?ev WHERE { ?pc b12:stateClass ?state ; b12:evidenceClass ?ev }"):
            self.evidence.setdefault(r["state"].value, []).append((r["pc"].value, r["ev"].value))
        self.rules = {r.iri.value: r for r in kb.rules}
        self.rules_by_id = {r.id: r for r in kb.rules}
        self.shapes = self._shapes()

    def _shapes(self) -> dict[str, dict]:
        import rdflib

        sh = rdflib.Namespace("http://www.w3.org/ns/shacl#")
        ident = rdflib.URIRef("http://purl.org/dc/terms/identifier")
        g = self.kb.shapes_rdflib
        texts = {f: f.read_text(encoding="utf-8") for f in self.kb.shape_files}
        out = {}
        for shape, sid in g.subject_objects(ident):
            selects = [str(sel) for c in g.objects(shape, sh.sparql) for sel in g.objects(c, sh.select)]
            file = next((f for f, t in texts.items() if f"shape:{sid} " in t or str(shape) in t), None)
            out[str(shape)] = {
                "id": str(sid),
                "select": selects[0] if selects else "",
                "file": _relpath(file, self.kb.root) if file else "shapes/",
            }
        return out

    def label(self, iri: str) -> str:
        return self.labels.get(iri, local_name(iri))

    def most_specific(self, classes) -> list[str]:
        classes = set(classes)
        return sorted(c for c in classes if not any(c in self.superclasses.get(o, ()) for o in classes if o != c))

    def rule_info(self, rule_iri: str) -> dict:
        """File, identifier and text of a rule (CONSTRUCT file) or a shape (SHACL-SPARQL)."""
        rule = self.rules.get(rule_iri)
        if rule is not None:
            return {"file": rule.relpath, "id": rule.id, "text": rule.path.read_text(encoding="utf-8"), "shape": False}
        shape = self.shapes.get(rule_iri)
        if shape is not None:
            return {"file": shape["file"], "id": shape["id"], "text": shape["select"], "shape": True}
        return {"file": "", "id": local_name(rule_iri), "text": "", "shape": False}

    def rule_for_id(self, item_id: str) -> dict | None:
        rule = self.rules_by_id.get(item_id)
        if rule is not None:
            return self.rule_info(rule.iri.value)
        for iri, shape in self.shapes.items():
            if shape["id"] == item_id:
                return self.rule_info(iri)
        return None


def _relpath(path: Path, root: Path) -> str:
    try:
        return Path(path).resolve().relative_to(Path(root).resolve()).as_posix()
    except ValueError:
        return Path(path).as_posix()


_ONTOLOGIES: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def ontology(kb) -> Ontology:
    o = _ONTOLOGIES.get(kb)
    if o is None:
        o = _ONTOLOGIES[kb] = Ontology(kb)
    return o


def catalog_ids(report) -> set[str]:
    """Every identifier of the catalog (statements of the ontology)."""
    return set(ontology(report.evaluation.kb).statements)


def normalise_id(report, item_id: str) -> str | None:
    ids = catalog_ids(report)
    cand = item_id.strip()
    if cand.startswith(STATEMENT):
        cand = cand[len(STATEMENT):]
    elif cand.startswith("stmt:"):
        cand = cand[5:]
    if cand in ids:
        return cand
    return cand.upper() if cand.upper() in ids else None


# --------------------------------------------------------------------------------------------
# Facts about nodes of one evaluation
# --------------------------------------------------------------------------------------------

def _values(iris) -> str:
    return " ".join(_iri(i) for i in sorted(set(iris)))


def find_item(report, patient: str, item_id: str) -> str | None:
    """The report item IRI of ``item_id`` for ``patient``, or None if it did not fire."""
    rows = list(_q(report, f"SELECT ?item WHERE {{ GRAPH b12g:report {{ ?item b12:statement {_iri(STATEMENT + item_id)} ; b12:patient {_iri(patient)} }} }} LIMIT 1"))
    return rows[0]["item"].value if rows else None


def describe_records(report, iris) -> dict[str, dict]:
    """For each record (or patient) IRI: asserted types, inferred b12 classes and key values."""
    iris = sorted(set(iris))
    out: dict[str, dict] = {i: {"types": set(), "inferred": set(), "values": {}, "bands": set()} for i in iris}
    if not iris:
        return out
    vals = _values(iris)
    for r in _q(report, f"SELECT ?n ?p ?o ?ol WHERE {{ VALUES ?n {{ {vals} }} GRAPH b12g:data {{ ?n ?p ?o }} OPTIONAL {{ ?o rdfs:label ?ol }} }}"):
        n, p, o = r["n"].value, r["p"].value, r["o"]
        if p.endswith("#type"):
            out[n]["types"].add(o.value)
            continue
        name = local_name(p)
        if name in _FACT_PROPERTIES:
            if r["ol"] is not None:
                text = r["ol"].value
            elif isinstance(o, ox.NamedNode):
                text = local_name(o.value)
            else:
                text = o.value
            out[n]["values"].setdefault(name, text)
    for r in _q(report, f"SELECT ?n ?c WHERE {{ VALUES ?n {{ {vals} }} GRAPH b12g:inferred {{ ?n a ?c }} FILTER(STRSTARTS(STR(?c), STR(b12:))) }}"):
        out[r["n"].value]["inferred"].add(r["c"].value)
    for r in _q(report, f"SELECT ?n ?b WHERE {{ VALUES ?n {{ {vals} }} GRAPH b12g:inferred {{ ?n b12:inBand ?b }} }}"):
        out[r["n"].value]["bands"].add(local_name(r["b"].value))
    return out


def fact_summary(info: dict) -> str:
    """'value 165 pg/mL · date 2026-05-18 · band b12-deficient' from describe_records()."""
    v = dict(info["values"])
    parts = []
    if "value" in v:
        parts.append(f"value {v.pop('value')}" + (f" {v.pop('unit')}" if "unit" in v else ""))
    if "dose" in v:
        parts.append(f"dose {v.pop('dose')}" + (f" {v.pop('doseUnit')}" if "doseUnit" in v else ""))
    for key in _FACT_PROPERTIES:
        if key in v:
            parts.append(f"{_words(key)} {v[key]}")
    if info.get("bands"):
        parts.append("band " + ", ".join(sorted(info["bands"])))
    return " · ".join(parts)


def _words(name: str) -> str:
    return re.sub(r"(?<=[a-z])(?=[A-Z])", " ", name).lower()


# --------------------------------------------------------------------------------------------
# The derivation graph of a fired item
# --------------------------------------------------------------------------------------------

def derivation_graph(report, patient_iri: str, item_id: str) -> nx.DiGraph:
    """The derivation of one report item as a DiGraph (edges: from what was used to what it gave).

    Raises ``LookupError`` when the item did not fire for the patient (see ``why_not``)."""
    onto = ontology(report.evaluation.kb)
    item = find_item(report, patient_iri, item_id)
    if item is None:
        raise LookupError(f"{item_id} did not fire for {patient_iri}")
    g = nx.DiGraph(patient=patient_iri, item=item_id, item_iri=item, as_of=report.data["as_of"])

    # 1. everything the item was derived from, transitively (states, other items, records)
    derived_from: dict[str, set[str]] = {}
    for r in _q(report, f"SELECT DISTINCT ?n ?from WHERE {{ GRAPH b12g:inferred {{ {_iri(item)} prov:wasDerivedFrom* ?n . ?n prov:wasDerivedFrom ?from }} }}"):
        derived_from.setdefault(r["n"].value, set()).add(r["from"].value)
    nodes = {item} | set(derived_from) | {f for fs in derived_from.values() for f in fs}
    vals = _values(nodes)

    # 2. what each node is: report item (statement), derived state (generated by a rule) or record
    statements: dict[str, str] = {}
    for r in _q(report, f"SELECT ?n ?id WHERE {{ VALUES ?n {{ {vals} }} GRAPH b12g:inferred {{ ?n b12:statement ?st }} ?st dcterms:identifier ?id }}"):
        statements[r["n"].value] = r["id"].value
    activities: dict[str, list[tuple[str, str]]] = {}
    for r in _q(report, f"SELECT DISTINCT ?n ?act ?rule WHERE {{ VALUES ?n {{ {vals} }} GRAPH b12g:inferred {{ ?n prov:wasGeneratedBy ?act . ?act b12:rule ?rule }} }}"):
        activities.setdefault(r["n"].value, []).append((r["act"].value, r["rule"].value))
    types: dict[str, set[str]] = {}
    for r in _q(report, f"SELECT DISTINCT ?n ?c WHERE {{ VALUES ?n {{ {vals} }} GRAPH b12g:inferred {{ ?n a ?c }} }}"):
        types.setdefault(r["n"].value, set()).add(r["c"].value)
    kinds = {}
    for n in nodes:
        if n in statements:
            kinds[n] = "item"
        elif n in activities:
            kinds[n] = "state"
        else:
            kinds[n] = "fact"
    facts = [n for n, k in kinds.items() if k == "fact"]
    records = describe_records(report, facts)

    # 3. nodes
    for n in sorted(nodes):
        kind = kinds[n]
        if kind == "item":
            sid = statements[n]
            st = onto.statements.get(sid, {"label": sid, "kind": "item"})
            g.add_node(n, kind="item", id=sid, iri=n, item_kind=st["kind"], root=(n == item),
                       label=f"{sid}\n{st['label']}", title=st["label"])
        elif kind == "state":
            classes = [c for c in onto.most_specific(c for c in types.get(n, ()) if c.startswith(BASE)) if c != BASE + "DerivedState"]
            names = [local_name(c) for c in classes] or [local_name(n)]
            title = "; ".join(onto.label(c) for c in classes) or local_name(n)
            g.add_node(n, kind="state", iri=n, classes=names, title=title, label=f"{title}\n({', '.join(names)})")
        else:
            info = records.get(n, {"types": set(), "values": {}, "bands": set(), "inferred": set()})
            asserted = sorted(local_name(t) for t in info["types"] if t.startswith(BASE))
            summary = fact_summary(info)
            lines = [local_name(n)]
            if asserted:
                lines.append(", ".join(asserted))
            if summary:
                lines.append(summary)
            g.add_node(n, kind="fact", iri=n, types=asserted, values=dict(info["values"]), summary=summary, label="\n".join(lines),
                       title=local_name(n))

    # 4. rule applications, and the inferred classes of the records each rule used
    for n, acts in sorted(activities.items()):
        if n not in nodes:
            continue
        for act, rule_iri in sorted(acts):
            info = onto.rule_info(rule_iri)
            label = info["file"] or local_name(rule_iri)
            if info["shape"]:
                label = f"{info['file']}\nshape {info['id']}"
            g.add_node(act, kind="rule", iri=rule_iri, file=info["file"], rule_id=info["id"], label=label, title=info["id"])
            g.add_edge(act, n, relation="generated")
            used_classes = set(re.findall(r"\bb12:([A-Za-z][\w]*)", info["text"]))
            used_classes = {BASE + c for c in used_classes if BASE + c in onto.classes}
            for src in sorted(derived_from.get(n, ())):
                if kinds.get(src) != "fact":
                    g.add_edge(src, act, relation="used")
                    continue
                _attach_classes(g, onto, src, act, n, types, used_classes, records.get(src))
    # 5. the sources of the root item's statement
    for c in onto.citations.get(STATEMENT + item_id, []):
        sid = f"source:{item_id}:{c['document_id']}:{c['reference']}"
        ref = f"ref {c['reference']}" if c["reference"] else "no reference number"
        g.add_node(sid, kind="source", document=c["document"], document_id=c["document_id"], reference=c["reference"],
                   evidence=c["evidence"], title=c["document"], label=f"{c['document_id']} · {c['document']}\n{ref} · {c['evidence']}")
        g.add_edge(item, sid, relation="cites")
    return g


def _attach_classes(g, onto: Ontology, record: str, act: str, output: str, types, used_classes, info) -> None:
    """record -> its inferred classes the rule used -> rule application (fallback: its b12 classes)."""
    rec_types = {t for t in types.get(record, set()) | (info or {}).get("inferred", set()) if t.startswith(BASE)}
    chains: list[list[str]] = []
    for state_class in types.get(output, ()):
        for patient_class, evidence_class in onto.evidence.get(state_class, ()):
            if evidence_class in rec_types:
                chains.append([evidence_class, patient_class])
    used = sorted(rec_types & used_classes)
    chains += [[c] for c in used if not any(c == ch[0] for ch in chains)]
    if not chains:
        fallback = onto.most_specific(rec_types - _GENERIC_CLASSES) or sorted(rec_types)
        chains = [[c] for c in fallback]
    if not chains:
        g.add_edge(record, act, relation="used")
        return
    patient = g.graph["patient"]
    for chain in chains:
        prev = record
        for i, cls in enumerate(chain):
            owner = record if i == 0 else patient
            cid = f"class:{owner}|{cls}"
            if cid not in g:
                what = "record class" if i == 0 else "patient class (OWL)"
                g.add_node(cid, kind="class", iri=cls, owner=owner, title=local_name(cls),
                           label=f"{local_name(cls)}\n{what}")
            g.add_edge(prev, cid, relation="is a" if i == 0 else "makes the patient a")
            prev = cid
        g.add_edge(prev, act, relation="used")


def compose(graphs) -> nx.DiGraph:
    out = nx.DiGraph()
    for gr in graphs:
        out = nx.compose(out, gr)
    return out


# --------------------------------------------------------------------------------------------
# Views of a derivation graph
# --------------------------------------------------------------------------------------------

def _oneline(label: str) -> str:
    return " — ".join(x for x in label.split("\n") if x)


def tree_text(g: nx.DiGraph) -> str:
    """The derivation as an indented tree: the item, its rule and sources, then what it came from."""
    roots = [n for n, d in g.nodes(data=True) if d.get("kind") == "item" and d.get("root")]
    out = []
    for root in roots:
        d = g.nodes[root]
        out.append(f"{d['id']} — {d.get('title', '')} [{d.get('item_kind', 'item')}]")
        out.append(f"  patient: {g.graph.get('patient', '')}   as of {g.graph.get('as_of', '')}")
        srcs = [s for s in g.successors(root) if g.nodes[s].get("kind") == "source"]
        if srcs:
            out.append("  sources:")
            for s in sorted(srcs):
                sd = g.nodes[s]
                ref = f", ref {sd['reference']}" if sd["reference"] else ""
                out.append(f"    - {sd['document_id']} \"{sd['document']}\"{ref} ({sd['evidence']})")
        out.append("  derivation (each line was derived from the lines indented below it):")
        _tree(g, root, 1, out, set(), show_self=False)
    return "\n".join(out) + "\n"


def _tree(g, node, depth, out, seen, show_self=True):
    pad = "  " * depth
    d = g.nodes[node]
    kind = d.get("kind")
    if show_self:
        if kind == "fact":
            classes = _class_chains(g, node)
            line = f"{pad}[fact] {_oneline(d['label'])}"
            out.append(line)
            for chain in classes:
                out.append(f"{pad}    inferred: {' -> '.join(chain)}")
            return
        line = f"{pad}[{kind}] {_oneline(d['label'])}"
        if node in seen:
            out.append(line + "  (see above)")
            return
        out.append(line)
    seen.add(node)
    rules = [p for p in g.predecessors(node) if g.nodes[p].get("kind") == "rule"]
    inputs = [p for p in g.predecessors(node) if g.nodes[p].get("kind") != "rule"]
    for r in sorted(rules):
        out.append(f"{pad}  rule: {g.nodes[r].get('file') or g.nodes[r]['label']}" + (f" (shape {g.nodes[r]['rule_id']})" if "\nshape" in g.nodes[r]["label"] else ""))
        inputs += list(g.predecessors(r))
    shown = set()
    for p in sorted(set(inputs), key=lambda n: (KINDS.index(g.nodes[n]["kind"]) * -1, g.nodes[n]["label"])):
        pk = g.nodes[p]["kind"]
        if pk == "class":
            for f in _facts_of_class(g, p):
                if f not in shown:
                    shown.add(f)
                    _tree(g, f, depth + 2, out, seen)
            continue
        if p not in shown:
            shown.add(p)
            _tree(g, p, depth + 2, out, seen)


def _facts_of_class(g, cls_node):
    out = []
    for p in g.predecessors(cls_node):
        k = g.nodes[p]["kind"]
        if k == "fact":
            out.append(p)
        elif k == "class":
            out += _facts_of_class(g, p)
    return sorted(set(out))


def _class_chains(g, fact):
    chains = []

    def walk(n, path):
        nxt = [s for s in g.successors(n) if g.nodes[s]["kind"] == "class"]
        if not nxt:
            if path:
                chains.append(path)
            return
        for s in sorted(nxt):
            walk(s, path + [g.nodes[s]["title"]])

    walk(fact, [])
    return chains


_DOT_COLORS = {"fact": "#dbeafe", "class": "#dcfce7", "state": "#fef3c7", "rule": "#ede9fe", "item": "#ccfbf1", "source": "#f3f4f6"}


def _node_ids(g) -> dict:
    return {n: f"n{i}" for i, n in enumerate(sorted(g.nodes, key=lambda n: (KINDS.index(g.nodes[n]["kind"]), str(n))))}


def to_dot(g: nx.DiGraph, name: str = "derivation") -> str:
    """Graphviz DOT text (rankdir LR), without needing graphviz or pydot."""
    def esc(s: str) -> str:
        return s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")

    ids = _node_ids(g)
    lines = [f'digraph "{esc(name)}" {{', "  rankdir=LR;", '  node [shape=box, style="rounded,filled", fontname="Helvetica", fontsize=10];']
    for n, i in ids.items():
        d = g.nodes[n]
        color = _DOT_COLORS.get(d["kind"], "#ffffff")
        extra = ', color="#b91c1c", penwidth=2' if d.get("item_kind") == "violation" or d.get("satisfied") is False else ""
        lines.append(f'  {i} [label="{esc(d["label"])}", fillcolor="{color}", tooltip="{esc(str(d.get("iri", n)))}", class="{d["kind"]}"{extra}];')
    for a, b, d in sorted(g.edges(data=True), key=lambda e: (ids[e[0]], ids[e[1]])):
        rel = d.get("relation", "")
        lines.append(f'  {ids[a]} -> {ids[b]}' + (f' [label="{esc(rel)}", fontsize=8]' if rel else "") + ";")
    lines.append("}")
    return "\n".join(lines) + "\n"


def to_mermaid(g: nx.DiGraph) -> str:
    """Mermaid flowchart text (left to right)."""
    def esc(s: str) -> str:
        s = s.replace("&", "#amp;").replace('"', "#quot;").replace("<", "#lt;").replace(">", "#gt;")
        return s.replace("\n", "<br/>")

    ids = _node_ids(g)
    lines = ["flowchart LR"]
    for kind, color in _DOT_COLORS.items():
        lines.append(f"  classDef k_{kind} fill:{color},stroke:#555,color:#111")
    lines.append("  classDef k_failed fill:#fee2e2,stroke:#b91c1c,color:#111")
    for n, i in ids.items():
        d = g.nodes[n]
        cls = "k_failed" if d.get("satisfied") is False else f"k_{d['kind']}"
        lines.append(f'  {i}["{esc(d["label"])}"]:::{cls}')
    for a, b, d in sorted(g.edges(data=True), key=lambda e: (ids[e[0]], ids[e[1]])):
        rel = d.get("relation", "")
        lines.append(f"  {ids[a]} -->|{esc(rel)}| {ids[b]}" if rel else f"  {ids[a]} --> {ids[b]}")
    return "\n".join(lines) + "\n"


def graph_json(g: nx.DiGraph) -> dict:
    def clean(v):
        if isinstance(v, (set, frozenset)):
            return sorted(v)
        return v

    return {
        "graph": {k: clean(v) for k, v in g.graph.items()},
        "nodes": [{"node": n, **{k: clean(v) for k, v in d.items()}} for n, d in sorted(g.nodes(data=True))],
        "edges": [{"from": a, "to": b, **d} for a, b, d in sorted(g.edges(data=True))],
    }


# --------------------------------------------------------------------------------------------
# A small reader for the WHERE clause of a rule (or the SELECT of a shape)
# --------------------------------------------------------------------------------------------

_TOKEN = re.compile(
    r'''(?P<ws>\s+)
      |(?P<comment>\#[^\n]*)
      |(?P<str>"""(?:[^"\\]|\\.|"(?!""))*"""|\'\'\'(?:[^'\\]|\\.|'(?!''))*\'\'\'|"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')
      |(?P<iri><[^<>"{}|^`\\\s]*>)
      |(?P<var>[?$][A-Za-z_0-9]+)
      |(?P<lang>@[A-Za-z]+(?:-[A-Za-z0-9]+)*)
      |(?P<pname>(?:[A-Za-z][\w\-]*)?:(?:[\w\-]|\.(?=[\w\-]))*)
      |(?P<num>\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)
      |(?P<word>[A-Za-z_]\w*)
      |(?P<op>\|\||&&|!=|<=|>=|\^\^|[{}()\[\].,;=<>!+\-*/|^?])
    ''',
    re.X,
)
_KEYWORDS = {"MINUS", "OPTIONAL", "FILTER", "BIND", "VALUES", "GRAPH", "SERVICE", "UNION"}


@dataclass
class Tok:
    kind: str
    text: str
    start: int
    end: int

    @property
    def up(self) -> str:
        return self.text.upper() if self.kind == "word" else ""


def tokenize(text: str) -> list[Tok]:
    out, pos = [], 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            out.append(Tok("op", text[pos], pos, pos + 1))
            pos += 1
            continue
        if m.lastgroup not in ("ws", "comment"):
            out.append(Tok(m.lastgroup, m.group(), m.start(), m.end()))
        pos = m.end()
    return out


@dataclass
class El:
    """One element of a group graph pattern."""

    kind: str  # triples | filter | notexists | minus | optional | union | bind | values
    text: str  # source text (for triples: 's p o ; p o')
    subject: str = ""
    pairs: list = field(default_factory=list)  # (predicate, [objects]) for triples
    groups: list = field(default_factory=list)  # inner groups (list[list[El]])
    values: dict = field(default_factory=dict)  # VALUES: var -> [terms]

    def vars(self) -> set[str]:
        return set(re.findall(r"[?$](\w+)", self.text))


class _Reader:
    def __init__(self, text: str):
        self.text = text
        self.toks = tokenize(text)
        self.i = 0

    def peek(self, k=0):
        j = self.i + k
        return self.toks[j] if j < len(self.toks) else Tok("eof", "", len(self.text), len(self.text))

    def take(self):
        t = self.peek()
        self.i += 1
        return t

    def expect(self, text):
        t = self.take()
        if t.text != text:
            raise ValueError(f"expected '{text}' at {t.start}, found '{t.text}'")
        return t

    def balanced(self, open_, close):
        """Consume a balanced (...) or {...} or [...] starting at the current token; return (start, end)."""
        start = self.expect(open_).start
        depth = 1
        while depth:
            t = self.take()
            if t.kind == "eof":
                raise ValueError("unbalanced brackets")
            if t.text == open_:
                depth += 1
            elif t.text == close:
                depth -= 1
        return start, self.toks[self.i - 1].end

    def group(self) -> list[El]:
        self.expect("{")
        els: list[El] = []
        while True:
            t = self.peek()
            if t.kind == "eof":
                raise ValueError("unterminated group")
            if t.text == "}":
                self.take()
                return els
            if t.text == "." and t.kind == "op":
                self.take()
                continue
            up = t.up
            if t.text == "{" and self.peek(1).up == "SELECT":
                els.extend(self._subquery())  # a subquery's conditions are the shape's conditions
                continue
            if t.text == "{":
                start = t.start
                branches = [self.group()]
                while self.peek().up == "UNION":
                    self.take()
                    branches.append(self.group())
                text = self.text[start:self.toks[self.i - 1].end]
                if len(branches) > 1:
                    els.append(El("union", text, groups=branches))
                else:
                    els.extend(branches[0])  # a plain sub-group: same scope for our purpose
            elif up in ("MINUS", "OPTIONAL"):
                start = self.take().start
                inner = self.group()
                els.append(El(up.lower(), self.text[start:self.toks[self.i - 1].end], groups=[inner]))
            elif up == "GRAPH":
                self.take()
                self.take()  # graph name
                els.extend(self.group())
            elif up == "FILTER":
                start = self.take().start
                nxt = self.peek()
                if nxt.up == "NOT" and self.peek(1).up == "EXISTS":
                    self.take(), self.take()
                    inner = self.group()
                    els.append(El("notexists", self.text[start:self.toks[self.i - 1].end], groups=[inner]))
                elif nxt.up == "EXISTS":
                    self.take()
                    inner = self.group()
                    els.append(El("exists", self.text[start:self.toks[self.i - 1].end], groups=[inner]))
                else:
                    if nxt.kind in ("word", "pname", "iri") and self.peek(1).text == "(":
                        self.take()
                    _s, end = self.balanced("(", ")")
                    els.append(El("filter", self.text[start:end]))
            elif up == "BIND":
                start = self.take().start
                _s, end = self.balanced("(", ")")
                els.append(El("bind", self.text[start:end]))
            elif up == "VALUES":
                els.append(self._values())
            else:
                els.append(self._triples())

    def _subquery(self) -> list[El]:
        """``{ SELECT … WHERE { … } modifiers }``: read the inner WHERE group, skip the rest."""
        self.expect("{")
        while self.peek().text != "{" and self.peek().kind != "eof":
            self.take()  # SELECT, projection, WHERE
        inner = self.group()
        depth = 0
        while True:  # GROUP BY / ORDER BY / LIMIT … up to the closing brace
            t = self.take()
            if t.kind == "eof" or (t.text == "}" and depth == 0):
                return inner
            if t.text in ("(", "{"):
                depth += 1
            elif t.text in (")", "}"):
                depth -= 1

    def _values(self) -> El:
        start = self.take().start
        names = []
        if self.peek().text == "(":
            self.take()
            while self.peek().text != ")":
                names.append(self.take().text)
            self.take()
        else:
            names.append(self.take().text)
        self.expect("{")
        rows = []
        while self.peek().text != "}":
            if self.peek().text == "(":
                self.take()
                row = []
                while self.peek().text != ")":
                    row.append(self.take().text)
                self.take()
                rows.append(row)
            else:
                rows.append([self.take().text])
        end = self.take().end
        values = {n[1:]: [r[k] for r in rows if k < len(r)] for k, n in enumerate(names)}
        return El("values", self.text[start:end], values=values)

    def _term(self) -> str:
        t = self.peek()
        if t.text == "[":
            s, e = self.balanced("[", "]")
            return self.text[s:e]
        if t.text == "(":
            s, e = self.balanced("(", ")")
            return self.text[s:e]
        self.take()
        text = t.text
        if t.kind == "str":
            if self.peek().kind == "lang":
                text += self.take().text
            elif self.peek().text == "^^":
                self.take()
                text += "^^" + self.take().text
        return text

    def _path(self) -> str:
        parts = []
        while True:
            if self.peek().text in ("^", "!"):
                parts.append(self.take().text)
            parts.append(self._term())
            while self.peek().text in ("*", "+", "?") and self.peek().kind == "op":
                parts.append(self.take().text)
            if self.peek().text in ("/", "|"):
                parts.append(self.take().text)
                continue
            return "".join(parts)

    def _triples(self) -> El:
        start = self.peek().start
        subject = self._term()
        pairs = []
        while True:
            pred = self._path()
            objs = [self._term()]
            while self.peek().text == ",":
                self.take()
                objs.append(self._term())
            pairs.append((pred, objs))
            if self.peek().text == ";":
                while self.peek().text == ";":
                    self.take()
                if self.peek().text in (".", "}") or self.peek().up in _KEYWORDS:
                    break
                continue
            break
        end = self.toks[self.i - 1].end
        return El("triples", self.text[start:end], subject=subject, pairs=pairs)


def parse_where(text: str) -> tuple[list[El], str, list[str]]:
    """(elements of the WHERE group, patient variable, other selected variables) of a rule or shape query."""
    r = _Reader(text)
    pvar, selected = "?p", []
    # CONSTRUCT template: the variable the item is linked to with b12:patient
    while r.peek().kind != "eof" and r.peek().up not in ("WHERE", "CONSTRUCT", "SELECT"):
        r.take()
    head = r.take()
    if head.up == "CONSTRUCT":
        s, e = r.balanced("{", "}")
        m = re.search(r"b12:patient\s+([?$]\w+)", text[s:e])
        if m:
            pvar = m.group(1)
    elif head.up == "SELECT":
        while r.peek().up != "WHERE" and r.peek().text != "{":
            t = r.take()
            if t.kind == "var":
                selected.append(t.text)
        if selected and "$this" in selected:
            pvar = "$this"
        elif selected:
            pvar = selected[0]
        selected = [v for v in selected if v != pvar]
    if r.peek().up == "WHERE":
        r.take()
    return r.group(), pvar, selected


# --------------------------------------------------------------------------------------------
# Why not: the conditions of an identifier, checked for one patient
# --------------------------------------------------------------------------------------------

@dataclass
class Condition:
    kind: str  # state | record | patient | result | any-of | constraint
    negative: bool
    text: str  # what it requires, in words
    pattern: str  # the SPARQL it was read from
    holds: bool | None = None  # the pattern is present for the patient
    matches: list = field(default_factory=list)  # nodes that match (local names, with what they come from)
    classes: list = field(default_factory=list)
    depends_on: dict = field(default_factory=dict)  # catalog id -> fired for this patient
    alternatives: list = field(default_factory=list)  # any-of: list of branches (list[Condition])
    note: str = ""

    @property
    def satisfied(self) -> bool | None:
        if self.holds is None:
            return None
        return (not self.holds) if self.negative else self.holds

    def to_json(self) -> dict:
        d = {
            "kind": self.kind, "negative": self.negative, "text": self.text, "pattern": self.pattern,
            "holds": self.holds, "satisfied": self.satisfied, "matches": self.matches, "classes": self.classes,
            "depends_on": self.depends_on,
        }
        if self.alternatives:
            d["alternatives"] = [[c.to_json() for c in br] for br in self.alternatives]
        if self.note:
            d["note"] = self.note
        return d


@dataclass
class WhyNot:
    patient: str
    id: str
    label: str
    fired: bool
    rule_file: str
    shape: bool
    as_of: str
    conditions: list[Condition]
    note: str = ""

    @property
    def failing(self) -> list[Condition]:
        return [c for c in self.conditions if c.satisfied is False]

    def to_json(self) -> dict:
        return {
            "patient": self.patient, "id": self.id, "label": self.label, "fired": self.fired, "as_of": self.as_of,
            "rule": self.rule_file, "conditions": [c.to_json() for c in self.conditions],
            "failing": [c.text for c in self.failing], "note": self.note,
        }


class _Analyser:
    def __init__(self, report, onto: Ontology, patient: str, pvar: str, drop_vars: set[str]):
        self.report = report
        self.onto = onto
        self.patient = patient
        self.pvar = pvar
        self.drop = drop_vars
        self.fired_ids = report.ids(patient)

    # -- text helpers
    def subst(self, text: str) -> str:
        return re.sub(re.escape(self.pvar) + r"(?!\w)", lambda _m: _iri(self.patient), text)

    def pname_iri(self, term: str) -> str | None:
        from .vocab import PREFIXES

        if term.startswith("<") and term.endswith(">"):
            return term[1:-1]
        if ":" in term and not term.startswith(("?", "$", '"')):
            pre, _, loc = term.partition(":")
            if pre in PREFIXES:
                return PREFIXES[pre] + loc
        return None

    def short(self, iri: str) -> str:
        base = self.patient.rstrip("/") + "/"
        for prefix in (base + "b12kg/", base):
            if iri.startswith(prefix):
                return iri[len(prefix):]
        return local_name(iri)

    # -- structure
    def analyse(self, els: list[El], context: list[El] | None = None) -> list[Condition]:
        els = [e for e in els if not (e.vars() & self.drop)]
        context = list(context or [])
        scope = els + context
        triples = [e for e in scope if e.kind == "triples"]
        linked = self._linked(triples)
        own = [e for e in els if e.kind == "triples"]
        anchors = []
        for e in own:
            s = e.subject
            if s in anchors:
                continue
            if s == self.pvar and any(p == "a" for p, _ in e.pairs):
                anchors.append(s)
            elif s in linked and any(p in ("a", "b12:statement") for e2 in own if e2.subject == s for p, _ in e2.pairs):
                anchors.append(s)
        if not anchors and context and els:
            # a UNION branch without a node of its own: extra constraints on an outer node
            block = self._close(list(els), scope, anchors)
            holds, _m = self._check(block, [])
            text = _compact(" . ".join(e.text for e in els))
            return [Condition("constraint", False, text, text, holds=holds)]
        conditions: list[Condition] = []
        used: set[int] = set()
        blocks: dict[str, list[El]] = {}
        for a in anchors:
            block = self._block(a, scope, anchors)
            blocks[a] = block
            used |= {id(x) for x in block}
            conditions.append(self._condition(a, block, scope, negative=False))
        for e in els:
            if e.kind == "union":
                alts = [self.analyse(branch, context=[x for x in scope if x.kind in ("triples", "values")]) for branch in e.groups]
                holds_any = any(all(c.satisfied for c in br) for br in alts) if all(
                    c.satisfied is not None for br in alts for c in br) else None
                c = Condition("any-of", False, "any one of: " + " | ".join(" and ".join(x.text for x in br) or "(no condition)" for br in alts),
                              _compact(e.text), holds=holds_any, alternatives=alts)
                for br in alts:
                    for x in br:
                        c.depends_on.update(x.depends_on)
                        c.classes += x.classes
                conditions.append(c)
                used.add(id(e))
            elif e.kind in ("minus", "notexists") and id(e) not in used:
                conditions.append(self._negative(e, scope, blocks, anchors))
                used.add(id(e))
        # anything left (joint filters, constraints without an anchor of their own)
        rest = [e for e in els if id(e) not in used and e.kind in ("filter", "exists") and not (e.vars() <= {self.pvar[1:]})]
        rest = [e for e in rest if not any(id(e) in {id(x) for x in b} for b in blocks.values())]
        if rest:
            all_blocks = [x for b in blocks.values() for x in b]
            extra = self._close(all_blocks + rest, scope, anchors)
            text = " ".join(_compact(e.text) for e in rest)
            holds, matches = self._check(extra, [])
            if not anchors and not els:
                holds = None
            conditions.append(Condition("constraint", False, text, text, holds=holds,
                                        note="checked together with the conditions above"))
        return conditions

    def _linked(self, triples) -> set[str]:
        linked = set()
        for e in triples:
            for p, objs in e.pairs:
                if p in _LINK_PREDICATES and self.pvar in objs:
                    linked.add(e.subject)
                if e.subject == self.pvar and p in ("b12:hasRecord",):
                    linked.update(o for o in objs if o.startswith(("?", "$")))
        return linked

    def _block(self, anchor: str, scope: list[El], anchors: list[str]) -> list[El]:
        start = [e for e in scope if e.kind == "triples" and e.subject == anchor]
        return self._close(start, scope, anchors, anchor)

    def _close(self, start: list[El], scope: list[El], anchors: list[str], anchor: str | None = None) -> list[El]:
        """Add what the start elements need: triples of non-anchor nodes, VALUES, OPTIONAL, BIND,
        and the filters (or constraints without an anchor) whose variables they bind."""
        pv = self.pvar[1:]
        block = list(start)
        ids = {id(x) for x in block}
        others = {a[1:] for a in anchors if a != anchor}

        def bvars():
            return set().union(*(x.vars() for x in block)) - {pv} if block else set()

        def candidates():
            return [e for e in scope if id(e) not in ids and (e.kind in ("values", "optional", "bind")
                    or (e.kind == "triples" and e.subject not in anchors))]

        changed = True
        while changed:
            changed = False
            bv = bvars()
            for e in candidates():
                if e.vars() & bv and not (e.kind == "triples" and e.vars() & others):
                    block.append(e)
                    ids.add(id(e))
                    changed = True
            bv = bvars()
            for e in scope:
                if id(e) in ids or e.kind not in ("filter", "exists", "notexists", "minus"):
                    continue
                if e.kind in ("notexists", "minus") and self._has_anchor(e):
                    continue
                fv = self._free_vars(e, scope)
                if not fv & bv or fv & others:
                    continue
                missing = fv - bv
                add = []
                if missing:
                    add = [c for c in candidates() if c.vars() & missing and not (c.vars() & others)]
                    got = set().union(*(c.vars() for c in add)) if add else set()
                    if missing - got:
                        continue
                for c in add + [e]:
                    if id(c) not in ids:
                        block.append(c)
                        ids.add(id(c))
                changed = True
        order = {id(e): i for i, e in enumerate(scope)}
        return sorted(block, key=lambda e: order.get(id(e), -1))

    def _free_vars(self, e: El, scope: list[El]) -> set[str]:
        """Variables of a filter or negation that are bound outside it."""
        outside = set()
        for x in scope:
            if x is not e:
                outside |= x.vars()
        return (e.vars() & outside) - {self.pvar[1:]}

    def _has_anchor(self, e: El) -> bool:
        inner = e.groups[0] if e.groups else []
        trip = [x for x in inner if x.kind == "triples"]
        linked = self._linked(trip)
        return any(x.subject in linked and any(p in ("a", "b12:statement") for p, _ in x.pairs) for x in trip)

    # -- conditions
    def _describe(self, anchor: str, block: list[El], scope: list[El]) -> tuple[str, str, list[str], dict]:
        values = {}
        for e in scope:
            if e.kind == "values":
                values.update(e.values)
        pairs = [(p, o) for e in block if e.kind == "triples" and e.subject == anchor for p, objs in e.pairs for o in objs]
        link = next((p for p, o in pairs if p in _LINK_PREDICATES and o == self.pvar), "")
        classes, stmts, extra = [], [], []
        for p, o in pairs:
            if p == "a":
                if o.startswith("?"):
                    classes += [local_name(self.pname_iri(v) or v) for v in values.get(o[1:], [])] or [o]
                else:
                    classes.append(local_name(self.pname_iri(o) or o))
            elif p == "b12:statement":
                if o.startswith("?"):
                    ids = [local_name(self.pname_iri(v) or v) for v in values.get(o[1:], [])]
                    if not ids:  # ?st a b12:SomeStatementClass
                        for e in block:
                            if e.kind == "triples" and e.subject == o:
                                for p2, objs in e.pairs:
                                    if p2 == "a":
                                        for c in objs:
                                            ids += sorted(self.onto.statement_classes.get(self.pname_iri(c) or "", ()))
                    stmts += ids
                else:
                    stmts.append(local_name(self.pname_iri(o) or o))
            elif p not in _LINK_PREDICATES and not o.startswith(("?", "$")):
                extra.append(f"{p} {o}")
        depends = {s: s in self.fired_ids for s in stmts}
        if stmts:
            kind = "result"
            text = "catalog result " + _depends_text(depends)
        elif anchor == self.pvar:
            kind = "patient"
            text = "the patient is a " + " and ".join(classes)
        elif link in ("b12:patient", f"<{BASE}patient>"):
            kind = "state"
            text = "state " + " and ".join(f"{c} ({self.onto.label(BASE + c)})" if BASE + c in self.onto.labels else c for c in classes)
        else:
            kind = "record"
            text = "a record of class " + ", ".join(classes) if classes else "a record"
        if extra:
            text += " with " + "; ".join(extra)
        filters = [_compact(e.text) for e in block if e.kind in ("filter", "notexists", "exists", "minus")]
        if filters:
            text += " where " + " and ".join(filters)
        return kind, text, classes, depends

    def _condition(self, anchor, block, scope, negative) -> Condition:
        kind, text, classes, depends = self._describe(anchor, block, scope)
        holds, matches = self._check(block, [anchor])
        return Condition(kind, negative, text, _compact(" . ".join(e.text for e in block)), holds=holds, matches=matches,
                         classes=classes, depends_on=depends)

    def _negative(self, e: El, scope, blocks, anchors) -> Condition:
        inner = e.groups[0]
        sub = _Analyser(self.report, self.onto, self.patient, self.pvar, self.drop)
        inner_conds = sub.analyse(inner, context=[x for x in scope if x.kind == "values"])
        # the inner pattern as a whole, with whatever it shares with the outer pattern
        outer_needed = (set().union(*(x.vars() for x in inner)) if inner else set()) & set().union(
            *(x.vars() for x in scope if x is not e)) - {self.pvar[1:]}
        outer = []
        for a, b in blocks.items():
            if {v for x in b for v in x.vars()} & outer_needed:
                outer += b
        outer += [x for x in scope if x.kind == "values" and x.vars() & outer_needed and x not in outer]
        inner_anchor_vars = [x.subject for x in inner if x.kind == "triples" and x.subject.startswith(("?", "$")) and x.subject != self.pvar]
        holds, matches = self._check(outer + inner, inner_anchor_vars[:1], raw_inner=True)
        how = "MINUS" if e.kind == "minus" else "FILTER NOT EXISTS"
        described = " and ".join(c.text for c in inner_conds) or _compact(e.text)
        depends = {}
        classes = []
        for c in inner_conds:
            depends.update(c.depends_on)
            classes += c.classes
        kind = inner_conds[0].kind if len(inner_conds) == 1 else "constraint"
        note = ""
        if any(x.kind == "values" for x in scope) and e.vars() & set().union(*(x.vars() for x in scope if x.kind == "values")):
            note = "checked for any row of the rule's VALUES"
        return Condition(kind, True, f"{described} [{how}]", _compact(e.text), holds=holds, matches=matches,
                         classes=classes, depends_on=depends, note=note)

    def _check(self, block: list[El], select: list[str], raw_inner: bool = False) -> tuple[bool | None, list]:
        body = " .\n".join(self.subst(e.text) for e in block)
        sel = [v for v in select if v.startswith(("?", "$")) and v != self.pvar]
        proj = " ".join("?" + v[1:] for v in sel) if sel else "*"
        query = f"SELECT DISTINCT {proj} WHERE {{\n{body}\n}} LIMIT 6"
        query = query.replace("$", "?") if "$" in query else query
        try:
            rows = list(_q(self.report, query))
        except (SyntaxError, ValueError, OSError):
            return None, []
        matches = []
        if sel:
            nodes = [r[sel[0][1:]].value for r in rows if r[sel[0][1:]] is not None]
            origin = self._origins(nodes)
            for n in nodes:
                m = self.short(n)
                if origin.get(n):
                    m += " (from " + ", ".join(sorted(self.short(o) for o in origin[n])) + ")"
                matches.append(m)
        return bool(rows), matches

    def _origins(self, nodes) -> dict[str, set[str]]:
        if not nodes:
            return {}
        out: dict[str, set[str]] = {}
        for r in _q(self.report, f"SELECT ?n ?f WHERE {{ VALUES ?n {{ {_values(nodes)} }} GRAPH b12g:inferred {{ ?n prov:wasDerivedFrom ?f }} }}"):
            out.setdefault(r["n"].value, set()).add(r["f"].value)
        return out


def _depends_text(depends: dict) -> str:
    parts = [f"{s} ({'fired' if f else 'did not fire'})" for s, f in sorted(depends.items())]
    if len(parts) == 1:
        return parts[0]
    if len(parts) <= 4:
        return "of any of: " + ", ".join(parts)
    fired = sorted(s for s, f in depends.items() if f)
    return f"of any of {len(parts)} statements ({', '.join(sorted(depends))}); fired: {', '.join(fired) or 'none'}"


def _compact(text: str) -> str:
    text = re.sub(r"(?:(?<=\s)|^)#[^\n]*", "", text)  # comments (not the '#' of an IRI)
    return " ".join(text.split())


def why_not(report, patient_iri: str, item_id: str) -> WhyNot:
    """The conditions of ``item_id`` (from its rule or shape) checked for the patient."""
    onto = ontology(report.evaluation.kb)
    info = onto.rule_for_id(item_id)
    st = onto.statements.get(item_id, {"label": item_id})
    fired = find_item(report, patient_iri, item_id) is not None
    if info is None or not info["text"]:
        return WhyNot(patient_iri, item_id, st["label"], fired, "", False, report.data["as_of"], [],
                      note="no rule or shape implements this identifier")
    els, pvar, selected = parse_where(info["text"])
    drop = {v[1:] for v in selected}
    analyser = _Analyser(report, onto, patient_iri, pvar, drop)
    conditions = analyser.analyse(els)
    note = ""
    if not fired and conditions and all(c.satisfied for c in conditions):
        note = "every condition listed holds on its own; the rule needs them together (shared nodes, dates or filters across conditions)"
    return WhyNot(patient_iri, item_id, st["label"], fired, info["file"], info["shape"], report.data["as_of"], conditions, note)


def _mark(c: Condition) -> str:
    return {True: "ok  ", False: "FAIL", None: "?   "}[c.satisfied]


def why_not_text(w: WhyNot) -> str:
    out = []
    verb = "fired" if w.fired else "did not fire"
    out.append(f"{w.id} — {w.label}: {verb} for {w.patient} (as of {w.as_of})")
    out.append(f"  rule: {w.rule_file}" + (" (SHACL shape)" if w.shape else ""))
    if not w.conditions:
        out.append(f"  {w.note or 'no conditions could be read'}")
        return "\n".join(out) + "\n"
    out.append("  conditions ([ok] = met for this patient, [FAIL] = not met):")
    for c in w.conditions:
        _cond_lines(c, 2, out)
    if not w.fired:
        fails = w.failing
        if fails:
            out.append(f"  why not: {len(fails)} of {len(w.conditions)} conditions not met:")
            for c in fails:
                if c.negative:
                    out.append(f"    - excluded, but present: {c.text}")
                else:
                    out.append(f"    - required, but missing: {c.text}")
    if w.note:
        out.append(f"  note: {w.note}")
    return "\n".join(out) + "\n"


def _cond_lines(c: Condition, depth: int, out: list[str]) -> None:
    pad = "  " * depth
    line = f"{pad}[{_mark(c).strip()}] {'excludes' if c.negative else 'requires'} {c.text}"
    out.append(line)
    if c.negative and c.holds:
        out.append(f"{pad}      present for this patient: {', '.join(c.matches) or 'yes'}")
    elif not c.negative and c.holds and c.matches:
        out.append(f"{pad}      met by: {', '.join(c.matches)}")
    elif not c.negative and c.holds is False and c.kind == "constraint":
        out.append(f"{pad}      not met for this patient")
    elif not c.negative and c.holds is False and c.kind != "any-of":
        out.append(f"{pad}      not present for this patient")
    if c.depends_on and (c.kind != "result" or c.negative):
        out.append(f"{pad}      depends on catalog result {_depends_text(c.depends_on)}")
    if c.note:
        out.append(f"{pad}      ({c.note})")
    for i, br in enumerate(c.alternatives, 1):
        ok = all(x.satisfied for x in br)
        out.append(f"{pad}    alternative {i}: {'met' if ok else 'not met'}")
        for x in br:
            _cond_lines(x, depth + 3, out)


def why_not_graph(w: WhyNot) -> nx.DiGraph:
    """A small graph of the conditions: each condition -> the rule -> the identifier (not fired)."""
    g = nx.DiGraph(patient=w.patient, item=w.id, as_of=w.as_of, fired=w.fired)
    item = f"item:{w.patient}|{w.id}"
    g.add_node(item, kind="item", id=w.id, label=f"{w.id}\n{'fired' if w.fired else 'did not fire'}", title=w.label,
               root=True, satisfied=w.fired, item_kind="item")
    rule = f"rule:{w.patient}|{w.id}"
    g.add_node(rule, kind="rule", file=w.rule_file, rule_id=w.id, label=w.rule_file, title=w.id)
    g.add_edge(rule, item, relation="would generate")

    def add(c: Condition, target: str, n: list[int]):
        n[0] += 1
        cid = f"cond:{w.patient}|{n[0]}"
        kind = {"state": "state", "record": "class", "patient": "class", "result": "item"}.get(c.kind, "state")
        prefix = "NOT " if c.negative else ""
        if c.negative:
            status = {True: "absent: ok", False: "present: blocks", None: "not checked"}[c.satisfied]
        else:
            status = {True: "met", False: "NOT MET", None: "not checked"}[c.satisfied]
        g.add_node(cid, kind=kind, label=f"{prefix}{_wrap(c.text, 48)}\n[{status}]", title=c.text, satisfied=c.satisfied,
                   negative=c.negative)
        g.add_edge(cid, target, relation="one of" if target.startswith("cond:") else ("must be absent" if c.negative else "required"))
        for br in c.alternatives:
            for x in br:
                add(x, cid, n)

    counter = [0]
    for c in w.conditions:
        add(c, rule, counter)
    return g


def _wrap(text: str, width: int) -> str:
    import textwrap

    return "\n".join(textwrap.wrap(text, width)[:4])
