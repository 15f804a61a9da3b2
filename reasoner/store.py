"""The embedded, persistent store: an on-disk Oxigraph directory holding the ontology, one named
graph per patient, and the latest evaluation (inferences, report, as-of date).

Layout (all graph IRIs under https://w3id.org/b12kg/graph/):

* ``ontology``                 the encoding's ontology (refreshed on every load)
* ``patient/<sha1 of IRI>``   one patient's facts; reloading a patient replaces its graph, so a
                                rerun never duplicates anything
* ``patients``                 index: ``<patient> b12:dataGraph <graph>``
* ``unassigned``               input triples that belong to no patient (reported as unused)
* ``inferred``, ``report``, ``context``   the last ``recommend --store`` run over the store

Any SPARQL 1.1 client can read it (``b12kg query --store DIR``, ``b12kg serve --store DIR``).
"""
from __future__ import annotations

import hashlib
from collections import defaultdict
from pathlib import Path

import pyoxigraph as ox

from .errors import B12kgError, UsageError
from .load import PatientData, UnusedInput
from .vocab import BASE, G_CONTEXT, G_DATA, G_INFERRED, G_ONTOLOGY, G_REPORT, RDF_TYPE, b12

G_PATIENTS = ox.NamedNode(BASE + "graph/patients")
G_UNASSIGNED = ox.NamedNode(BASE + "graph/unassigned")
PATIENT_GRAPH = BASE + "graph/patient/"
UNUSED_GRAPH = BASE + "graph/unused/"
_SUBJECT = b12("subject")
_HAS_RECORD = b12("hasRecord")
_PATIENT = b12("Patient")
_DATA_GRAPH = b12("dataGraph")


def patient_graph(patient: str) -> ox.NamedNode:
    return ox.NamedNode(PATIENT_GRAPH + hashlib.sha1(patient.encode("utf-8")).hexdigest())


def unused_graph(patient: str | None) -> ox.NamedNode:
    key = hashlib.sha1((patient or "").encode("utf-8")).hexdigest()
    return ox.NamedNode(UNUSED_GRAPH + key)


def split_by_patient(quads: list[ox.Quad]) -> tuple[dict[str, list[ox.Quad]], list[ox.Quad]]:
    """Group data triples by patient: the patient node, its records (b12:subject / b12:hasRecord)
    and the nodes they point to (frequency nodes, skolemised blank nodes) that are described in
    the data. Returns ({patient IRI: triples}, unassigned triples)."""
    by_subject: dict[object, list[ox.Quad]] = defaultdict(list)
    patients: set = set()
    records: dict[object, set] = defaultdict(set)
    for q in quads:
        by_subject[q.subject].append(q)
        if q.predicate == RDF_TYPE and q.object == _PATIENT:
            patients.add(q.subject)
        elif q.predicate == _SUBJECT:
            patients.add(q.object)
            records[q.object].add(q.subject)
        elif q.predicate == _HAS_RECORD:
            patients.add(q.subject)
            records[q.subject].add(q.object)
    out: dict[str, list[ox.Quad]] = {}
    assigned: set = set()
    for p in patients:
        if not isinstance(p, ox.NamedNode):
            continue
        seen: set = set()
        todo = [p, *records.get(p, ())]
        while todo:
            node = todo.pop()
            if node in seen:
                continue
            seen.add(node)
            for q in by_subject.get(node, ()):
                if q.object in by_subject and q.object not in seen and q.predicate != _SUBJECT and q.object not in patients:
                    todo.append(q.object)
        out[p.value] = [q for node in seen for q in by_subject.get(node, ())]
        assigned |= seen
    unassigned = [q for s, qs in by_subject.items() if s not in assigned for q in qs]
    return out, unassigned


class PatientStore:
    """An on-disk store directory (created if missing)."""

    def __init__(self, path: str | Path, *, read_only: bool = False):
        self.path = Path(path)
        if read_only and not self.path.exists():
            raise UsageError(f"--store {path}: no such store directory (create it with b12kg load)")
        try:
            self.store = ox.Store.read_only(str(self.path)) if read_only else ox.Store(str(self.path))
        except OSError as exc:
            raise B12kgError(f"--store {path}: cannot open the store: {exc}") from None

    # ---- writing -------------------------------------------------------------------------------

    def load(self, data: PatientData, kb) -> dict:
        """Add (or replace) the patients of ``data``; refresh the ontology graph."""
        self._drop(G_ONTOLOGY)
        self.store.bulk_extend(kb.ontology_quads)
        groups, unassigned = split_by_patient(data.quads)
        unused: dict[str | None, list[UnusedInput]] = defaultdict(list)
        for u in data.unused:
            unused[u.patient if u.patient in groups else None].append(u)
        for patient, quads in sorted(groups.items()):
            g = patient_graph(patient)
            self._drop(g)
            self.store.bulk_extend(ox.Quad(q.subject, q.predicate, q.object, g) for q in quads)
            self.store.add(ox.Quad(ox.NamedNode(patient), _DATA_GRAPH, g, G_PATIENTS))
            self._write_unused(patient, unused.get(patient, []))
        if unused.get(None):
            self._write_unused(None, unused[None], replace=False)
        if unassigned:
            self.store.bulk_extend(ox.Quad(q.subject, q.predicate, q.object, G_UNASSIGNED) for q in unassigned)
        self.store.flush()
        return {"patients": len(groups), "triples": sum(len(v) for v in groups.values()), "unassigned": len(unassigned)}

    def add_results(self, quads: list[ox.Quad]) -> None:
        self.store.bulk_extend(quads)

    def clear_results(self) -> None:
        for g in (G_INFERRED, G_REPORT, G_CONTEXT):
            self._drop(g)

    # ---- reading -------------------------------------------------------------------------------

    def patients(self) -> list[str]:
        return sorted({q.subject.value for q in self.store.quads_for_pattern(None, _DATA_GRAPH, None, G_PATIENTS)})

    def patient_data(self, patients: list[str]) -> PatientData:
        """The facts of these patients as data-graph quads for an evaluation."""
        data = PatientData(sources=[str(self.path)])
        for p in patients:
            g = patient_graph(p)
            data.quads.extend(ox.Quad(q.subject, q.predicate, q.object, G_DATA) for q in self.store.quads_for_pattern(None, None, None, g))
        return data

    def _write_unused(self, patient: str | None, entries: list[UnusedInput], replace: bool = True) -> None:
        g = unused_graph(patient)
        if replace:
            self._drop(g)
        for u in entries:
            node = ox.NamedNode(u.resource)
            self.store.add(ox.Quad(node, b12("unusedReason"), ox.Literal(u.reason), g))
            if patient:
                self.store.add(ox.Quad(node, b12("patient"), ox.NamedNode(patient), g))

    def unused(self) -> list[UnusedInput]:
        """Input records the loader could not use (kept with the store, reported by every run)."""
        out = []
        for q in self.store.quads_for_pattern(None, b12("unusedReason"), None, None):
            if not q.graph_name.value.startswith(UNUSED_GRAPH):
                continue
            patient = next((p.object.value for p in self.store.quads_for_pattern(q.subject, b12("patient"), None, q.graph_name)), None)
            out.append(UnusedInput(q.subject.value, q.object.value, patient))
        return sorted(out, key=lambda u: (u.patient or "", u.resource, u.reason))

    def unassigned_quads(self) -> list[ox.Quad]:
        return [ox.Quad(q.subject, q.predicate, q.object, G_DATA) for q in self.store.quads_for_pattern(None, None, None, G_UNASSIGNED)]

    def query(self, sparql: str):
        return self.store.query(sparql, use_default_graph_as_union=True)

    def _drop(self, g: ox.NamedNode) -> None:
        if self.store.contains_named_graph(g):
            self.store.remove_graph(g)


class RemotePatientStore:
    """A SPARQL 1.1 store used the way the embedded store is: ``load`` puts patients into the data
    graph (replacing each patient's earlier records), ``evaluate`` runs the pipeline there."""

    def __init__(self, url: str):
        from .backend import RemoteBackend

        self.url = url
        self.backend = RemoteBackend(url)

    def load(self, data: PatientData, kb) -> dict:
        groups, unassigned = split_by_patient(data.quads)
        if groups:
            deletes = []
            for p in sorted(groups):
                iri = ox.NamedNode(p)
                deletes.append(f"DELETE WHERE {{ GRAPH {G_DATA} {{ {iri} ?p ?o }} }}")
                deletes.append(f"DELETE {{ GRAPH {G_DATA} {{ ?r ?p ?o }} }} WHERE {{ GRAPH {G_DATA} {{ ?r {_SUBJECT} {iri} ; ?p ?o }} }}")
            self.backend.update(" ;\n".join(deletes))
        quads = [ox.Quad(q.subject, q.predicate, q.object, G_DATA) for qs in groups.values() for q in qs]
        quads += [ox.Quad(q.subject, q.predicate, q.object, G_DATA) for q in unassigned]
        self.backend.extend(quads)
        return {"patients": len(groups), "triples": len(quads), "unassigned": len(unassigned)}

    def evaluate(self, kb, as_of, shacl: str = "fast"):
        from .pipeline import evaluate

        if shacl != "fast":
            raise UsageError("a remote store is validated with the fast (SPARQL) engine only")
        self.backend.drop_graphs([G_ONTOLOGY, G_INFERRED, G_REPORT, G_CONTEXT])
        return evaluate(kb, PatientData(), as_of, backend=self.backend)

    def query(self, sparql: str):
        return self.backend.query(sparql)
