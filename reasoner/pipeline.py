"""The evaluation pipeline: load -> exclude -> terminology -> classify -> units -> derive ->
validate -> derive (conflicts) -> report graph. Each stage is a small function over one store.

Clinical knowledge is not in this module: stages run the ontology's OWL axioms, the rule files
and the shapes; this code only moves triples between them and records provenance.
"""
from __future__ import annotations

import datetime as dt
import weakref
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import pyoxigraph as ox

from . import units
from .backend import Backend, EmbeddedBackend
from .classify import classify, classify_fast
from .kb import PRE_CLASSIFICATION_STRATUM, VALIDATION_STRATUM, KnowledgeBase, Rule
from .load import PatientData
from .vocab import (
    BASE,
    CONTEXT,
    ENGINE,
    G_CONTEXT,
    G_DATA,
    G_INFERRED,
    G_ONTOLOGY,
    RDF_TYPE,
    XSD,
    b12,
    prov,
    sparql_prefixes,
)

_SPARQL_DIR = Path(__file__).parent / "sparql"
_QUERY_CACHE: dict[str, str] = {}


def engine_query(name: str) -> str:
    q = _QUERY_CACHE.get(name)
    if q is None:
        q = sparql_prefixes() + (_SPARQL_DIR / f"{name}.rq").read_text(encoding="utf-8")
        _QUERY_CACHE[name] = q
    return q


@dataclass
class Unused:
    resource: str
    reason: str
    patient: str | None = None


@dataclass
class Evaluation:
    """The working store of one evaluation (embedded or remote) and what could not be used."""

    kb: KnowledgeBase
    backend: Backend
    as_of: dt.date
    unused: list[Unused] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    #: set once the store is handed out (``.store``): such a store is never recycled
    _exposed: list[bool] = field(default_factory=lambda: [False], repr=False)

    def query(self, sparql: str, substitutions: dict | None = None):
        return self.backend.query(sparql, substitutions)

    @property
    def store(self) -> ox.Store:
        """The pyoxigraph store of an embedded evaluation."""
        if not isinstance(self.backend, EmbeddedBackend):
            raise AttributeError("a remote evaluation has no local store; query it with Evaluation.query")
        self._exposed[0] = True
        return self.backend.store


def _decimal_literal(d: Decimal) -> ox.Literal:
    return ox.Literal(format(d, "f"), datatype=ox.NamedNode(XSD + "decimal"))


class StorePool:
    """In-memory stores that already hold a knowledge base's ontology and rule descriptions.

    Copying the ~4,300 ontology quads into a fresh store costs about 5 ms, a quarter of a
    one-patient evaluation. An evaluation takes a store from the pool; when the Evaluation object
    is garbage-collected its store is emptied of everything but the ontology graph and put back,
    unless the store was handed out through ``Evaluation.store`` (someone may still hold it) or
    no longer holds exactly the ontology.

    An in-memory Oxigraph store keeps every term it has ever interned, even after the quads that
    used them are removed (measured: about +15 MiB per 200-patient batch). So a store is retired
    after ``max_uses`` evaluations: the copy it saves is ~5 ms, the memory it would keep is not
    bounded otherwise.
    """

    def __init__(self, quads: list[ox.Quad], size: int = 4, max_uses: int = 50):
        self.quads = quads
        self.size = size
        self.max_uses = max_uses
        #: (store, evaluations it has served); list.append and list.pop are atomic, so finalizers
        #: running on other threads cannot tear a store from its count
        self.free: list[tuple[ox.Store, int]] = []

    def take(self) -> tuple[ox.Store, int]:
        """A store holding the ontology, and how many evaluations it has served before."""
        try:
            return self.free.pop()
        except IndexError:
            pass
        store = ox.Store()
        store.extend(self.quads)
        return store, 0

    def give(self, store: ox.Store, exposed: list[bool], uses: int) -> None:
        if exposed[0] or len(self.free) >= self.size or uses >= self.max_uses:
            return
        try:
            for g in list(store.named_graphs()):
                if g != G_ONTOLOGY:
                    store.remove_graph(g)
            store.clear_graph(ox.DefaultGraph())
            if len(store) == len(self.quads):
                self.free.append((store, uses))
        except Exception:  # noqa: BLE001 - a store that cannot be emptied is simply dropped
            pass


def new_evaluation(kb: KnowledgeBase, data: PatientData, as_of: dt.date, backend: Backend | None = None) -> Evaluation:
    """Start an evaluation: ontology, patient data, rule descriptions and the as-of date in one
    store (an in-memory Oxigraph store from the knowledge base's pool unless a backend is given)."""
    pool = None
    if backend is None:
        pool = kb.store_pool
        store, uses = pool.take()
        backend = EmbeddedBackend(store)
        quads = []
    else:
        quads = list(kb.evaluation_quads)
    quads += data.quads
    quads += [
        ox.Quad(CONTEXT, RDF_TYPE, b12("EvaluationContext"), G_CONTEXT),
        ox.Quad(CONTEXT, b12("asOf"), ox.Literal(as_of.isoformat(), datatype=ox.NamedNode(XSD + "date")), G_CONTEXT),
    ]
    backend.extend(quads)
    ev = Evaluation(kb=kb, backend=backend, as_of=as_of, sources=list(data.sources))
    if pool is not None:
        weakref.finalize(ev, pool.give, backend.store, ev._exposed, uses + 1)
    ev.unused.extend(Unused(u.resource, u.reason, u.patient) for u in data.unused)
    return ev


def exclude_records(ev: Evaluation) -> None:
    """Move records with an excluding status out of the data graph; list them as unused."""
    rows = list(ev.query(engine_query("excluded")))
    for row in rows:
        record = row["record"]
        status = row["statusLabel"].value if row["statusLabel"] is not None else "excluded"
        patient = row["patient"].value if row["patient"] is not None else None
        ev.unused.append(Unused(record.value, f"status '{status}': not used as a fact", patient))
        ev.backend.remove_node(record, [G_DATA])


def run_rule(ev: Evaluation, rule: Rule) -> int:
    """Run one CONSTRUCT rule; insert its triples and the PROV links of every node it derives."""
    try:
        triples = list(ev.query(rule.text))
    except SyntaxError as exc:
        from .errors import KnowledgeBaseError

        raise KnowledgeBaseError(f"{rule.relpath}: {exc}") from None
    quads = [ox.Quad(t.subject, t.predicate, t.object, G_INFERRED) for t in triples]
    derived: dict[ox.NamedNode, list] = {}
    patient_p = b12("patient")
    derived_from = prov("wasDerivedFrom")
    for t in triples:
        if t.predicate == patient_p:
            derived.setdefault(t.subject, [])
    for t in triples:
        if t.predicate == derived_from and t.subject in derived:
            derived[t.subject].append(t.object)
    for node, used in derived.items():
        if not isinstance(node, ox.NamedNode):
            continue
        act = ox.NamedNode(node.value + "/derivation")
        quads += [
            ox.Quad(node, prov("wasGeneratedBy"), act, G_INFERRED),
            ox.Quad(act, RDF_TYPE, prov("Activity"), G_INFERRED),
            ox.Quad(act, b12("rule"), rule.iri, G_INFERRED),
            ox.Quad(act, prov("wasAssociatedWith"), ENGINE, G_INFERRED),
        ]
        quads += [ox.Quad(act, prov("used"), u, G_INFERRED) for u in used]
    ev.backend.extend(quads)
    return len(triples)


#: Skip a rule whose guard triples (reasoner.guard) are absent; reports are the same either way
#: (tests/test_parity.py), the switch exists for that test.
USE_GUARDS = True


def guard_check(backend: Backend):
    """For an embedded store, a test "does every (predicate, object) of this guard have a
    triple"; None (run every query) for a remote store or with guards off."""
    store = backend.store if isinstance(backend, EmbeddedBackend) and USE_GUARDS else None
    if store is None:
        return None
    return lambda guard: all(next(iter(store.quads_for_pattern(None, p, o, None)), None) is not None for p, o in guard)


def run_strata(ev: Evaluation, low: int, high: int) -> None:
    passes = guard_check(ev.backend)
    guards = ev.kb.rule_guards
    for rule in ev.kb.rules_in(low, high):
        if passes is not None and not passes(guards[rule.id]):
            continue
        run_rule(ev, rule)


def classify_stage(ev: Evaluation, engine: str = "fast") -> None:
    """OWL 2 RL classification of the patient facts: ``fast`` runs the TBox compiled once per
    knowledge base (falling back to ``reasonable`` for anything it does not cover);
    ``reasonable`` runs the reference reasoner on the whole TBox every time."""
    data = ev.backend.quads(graph=G_DATA)
    data_nodes = {q.subject.value for q in data if isinstance(q.subject, ox.NamedNode)}
    facts = [q.triple for q in data] + [q.triple for q in ev.backend.quads(graph=G_INFERRED)]
    if engine == "fast":
        inferred = classify_fast(ev.kb.compiled_tbox, ev.kb.tbox_rdflib, facts, data_nodes)
    else:
        inferred = classify(ev.kb.tbox_rdflib, facts, data_nodes)
    known = set(facts)  # asserted or already inferred: not added again
    ev.backend.extend([ox.Quad(t.subject, t.predicate, t.object, G_INFERRED) for t in inferred if t not in known])


def units_stage(ev: Evaluation) -> None:
    """Convert every compared quantity to its kind's canonical unit (b12:normalizedValue …)."""
    target = {
        BASE + "value": b12("normalizedValue"),
        BASE + "referenceHigh": b12("normalizedReferenceHigh"),
        BASE + "dose": b12("normalizedDose"),
    }
    seen: set[tuple[str, str]] = set()
    added: list[ox.Quad] = []
    for row in ev.query(engine_query("quantities")):
        record, prop = row["record"], row["property"]
        key = (record.value, prop.value)
        if key in seen:
            continue
        seen.add(key)
        canonical = row["canonical"].value
        unit = row["unit"].value if row["unit"] is not None else None
        if unit is None:
            if prop.value == BASE + "value":
                ev.unused.append(Unused(record.value, f"value has no unit; cannot be compared with {canonical} thresholds", _patient_of(ev, record)))
            continue
        try:
            value = Decimal(row["value"].value)
        except ArithmeticError:
            ev.unused.append(Unused(record.value, f"value '{row['value'].value}' is not a number", _patient_of(ev, record)))
            continue
        mm = float(row["molarMass"].value) if row["molarMass"] is not None else None
        try:
            converted = units.convert(value, unit, canonical, mm)
        except units.UnitError as exc:
            what = "value" if prop.value == BASE + "value" else ("dose" if prop.value == BASE + "dose" else "reference range")
            ev.unused.append(Unused(record.value, f"{what} not used: {exc}", _patient_of(ev, record)))
            continue
        added.append(ox.Quad(record, target[prop.value], _decimal_literal(converted), G_INFERRED))
    ev.backend.extend(added)


def _patient_of(ev: Evaluation, record: ox.NamedNode) -> str | None:
    """The record's patient; with several candidates (a data error) the smallest IRI, so the
    answer does not depend on the store's order."""
    # a literal subject is an input problem, not a patient
    subjects = [q.object.value for q in ev.backend.quads(record, b12("subject")) if isinstance(q.object, ox.NamedNode)]
    if subjects:
        return min(subjects)
    owners = [q.subject.value for q in ev.backend.quads(None, b12("hasRecord"), record) if isinstance(q.subject, ox.NamedNode)]
    return min(owners) if owners else None


def unrecognised_stage(ev: Evaluation) -> None:
    for row in ev.query(engine_query("unrecognised")):
        patient = row["patient"].value if row["patient"] is not None else None
        ev.unused.append(Unused(row["record"].value, row["reason"].value, patient))


def evaluate(
    kb: KnowledgeBase,
    data: PatientData,
    as_of: dt.date,
    shacl: str = "fast",
    backend: Backend | None = None,
) -> Evaluation:
    """Run every stage; the returned store holds facts, inferences and the report items."""
    from .validate import validate_stage
    from .report import report_stage

    ev = new_evaluation(kb, data, as_of, backend)
    exclude_records(ev)
    run_strata(ev, -(10**6), PRE_CLASSIFICATION_STRATUM)
    classify_stage(ev)
    units_stage(ev)
    unrecognised_stage(ev)
    run_strata(ev, PRE_CLASSIFICATION_STRATUM, VALIDATION_STRATUM)
    validate_stage(ev, engine=shacl)
    run_strata(ev, VALIDATION_STRATUM, 10**6)
    report_stage(ev)
    return ev
