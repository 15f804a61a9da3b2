"""The embedded, persistent store: an on-disk Oxigraph directory holding the ontology, one named
graph per patient, and the latest evaluation (inferences, report, as-of date).

Layout (all graph IRIs under https://w3id.org/b12kg/graph/):

* ``ontology``                 the encoding's ontology (refreshed on every load)
* ``patient/<sha1 of IRI>``   one patient's facts; reloading a patient replaces its graph, so a
                                rerun never duplicates anything
* ``patients``                 index: ``<patient> b12:dataGraph <graph>``; a patient is entered
                                only after its graph is completely written
* ``unassigned``               input triples that belong to no patient (reported as unused)
* ``inferred``, ``report``, ``context``   the last ``recommend --store`` run over the store

Any SPARQL 1.1 client can read it (``b12kg query --store DIR``, ``b12kg serve --store DIR``).

Input of any size goes through a :class:`Staging` area first: an on-disk SQLite database, private
to the process and deleted by the operating system when the process ends (even when it is
killed). Patients are grouped there, a batch at a time, so memory does not grow with the cohort.
"""
from __future__ import annotations

import codecs
import hashlib
import os
import sqlite3
from collections import defaultdict
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Self

import pyoxigraph as ox

from . import load as _load
from .errors import B12kgError, InputError, UsageError
from .load import PatientData, UnusedInput
from .vocab import (
    BASE,
    G_CONTEXT,
    G_DATA,
    G_INFERRED,
    G_ONTOLOGY,
    G_REPORT,
    RDF_TYPE,
    b12,
)

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


# ---- staging: input of any size, grouped by patient on disk ------------------------------------

#: RDF files streamed from disk into the staging area (the other inputs — FHIR, JSON-LD, RDF/XML,
#: folders — are read by reasoner.load as before and then staged).
_STREAM_FORMATS = {ox.RdfFormat.TURTLE, ox.RdfFormat.N_TRIPLES, ox.RdfFormat.N_QUADS, ox.RdfFormat.TRIG}
_STREAM_EXTENSIONS = {ext: f for ext, f in _load._EXTENSIONS.items() if f in _STREAM_FORMATS}
_SCAN_CHUNK = 1 << 20
_T_SUBJECT, _T_HAS_RECORD, _T_TYPE, _T_PATIENT = str(_SUBJECT), str(_HAS_RECORD), str(RDF_TYPE), str(_PATIENT)

# Patients: the NamedNode subjects typed b12:Patient, objects of b12:subject, subjects of
# b12:hasRecord (any term blocks the walk; only IRIs are grouped), as split_by_patient defines them.
_STAGE_INDEX = f"""
CREATE INDEX t_s ON t(s);
CREATE INDEX t_subject ON t(o) WHERE p = '{_T_SUBJECT}';
CREATE TABLE patients(term TEXT PRIMARY KEY, value TEXT) WITHOUT ROWID;
INSERT OR IGNORE INTO patients(term) SELECT s FROM t WHERE p = '{_T_TYPE}' AND o = '{_T_PATIENT}';
INSERT OR IGNORE INTO patients(term) SELECT o FROM t WHERE p = '{_T_SUBJECT}';
INSERT OR IGNORE INTO patients(term) SELECT s FROM t WHERE p = '{_T_HAS_RECORD}';
UPDATE patients SET value = substr(term, 2, length(term) - 2) WHERE substr(term, 1, 1) = '<' AND substr(term, 1, 2) != '<<';
CREATE INDEX patients_value ON patients(value) WHERE value IS NOT NULL;
"""
# One batch of patients (in table ``chunk``): each patient, its records, and the nodes they point
# to that are described in the data, not walking through b12:subject or into another patient.
_STAGE_REACH = f"""
INSERT INTO reach
WITH RECURSIVE walk(patient, node) AS (
    SELECT term, term FROM chunk
    UNION SELECT o, s FROM t WHERE p = '{_T_SUBJECT}' AND o IN (SELECT term FROM chunk)
    UNION SELECT s, o FROM t WHERE p = '{_T_HAS_RECORD}' AND s IN (SELECT term FROM chunk)
    UNION SELECT w.patient, t.o FROM walk AS w JOIN t ON t.s = w.node
          WHERE t.p != '{_T_SUBJECT}' AND substr(t.o, 1, 1) IN ('<', '_')
            AND t.o NOT IN (SELECT term FROM patients))
SELECT patient, node FROM walk
"""
_STAGE_ROWS = "SELECT substr(r.patient, 2, length(r.patient) - 2), t.s || ' ' || t.p || ' ' || t.o FROM reach AS r JOIN t ON t.s = r.node"


def _sqlite_tmpdir() -> str:
    """The directory SQLite puts its temporary database in (for error messages)."""
    for d in (os.environ.get("SQLITE_TMPDIR"), os.environ.get("TMPDIR"), "/var/tmp", "/usr/tmp", "/tmp"):
        if d and os.path.isdir(d) and os.access(d, os.W_OK | os.X_OK):
            return d
    return "."


def _staging_error(exc: BaseException) -> B12kgError:
    msg = " ".join(str(exc).split())
    return B12kgError(f"temporary staging database in {_sqlite_tmpdir()}: {msg} "
                      "(set TMPDIR to a directory with more room)")


def _stream_plan(path: str, fmt: str | None) -> tuple[ox.RdfFormat, str] | None:
    """(format, content digest) when ``path`` is plainly an RDF file that reasoner.load would read
    with parse_rdf, so that it can be parsed straight from disk; None for everything else (FHIR,
    JSON-LD, RDF/XML, folders, anything unusual: not a regular file, too large, empty, a byte-order
    mark, binary or not UTF-8), which reasoner.load reads and judges with its own messages."""
    p = Path(path)
    try:
        if not p.is_file() or not 0 < p.stat().st_size <= _load.MAX_INPUT_BYTES:
            return None
    except OSError:
        return None
    if fmt is not None:
        if fmt.lower() in _load.FHIR_FORMATS:
            return None
        try:
            rdf_format = _load.sniff_format(path, b"", fmt)
        except InputError:
            return None
    else:
        rdf_format = _STREAM_EXTENSIONS.get(p.suffix.lower())
    if rdf_format not in _STREAM_FORMATS:
        return None
    digest = hashlib.sha1()
    utf8 = codecs.getincrementaldecoder("utf-8")()
    tail = b""
    text_seen = False
    try:
        with open(path, "rb") as f:
            chunk = f.read(_SCAN_CHUNK)
            if not _plain_text_head(path, chunk[:4096]):
                return None
            while chunk:
                digest.update(chunk)
                utf8.decode(chunk)
                if fmt is None and b'"resourceType"' in tail + chunk:
                    return None  # could be FHIR: reasoner.load decides
                text_seen = text_seen or bool(chunk.strip())
                tail = chunk[-16:]
                chunk = f.read(_SCAN_CHUNK)
        utf8.decode(b"", final=True)
    except (OSError, UnicodeDecodeError):
        return None
    if not text_seen:
        return None  # empty: reasoner.load says so
    return rdf_format, digest.hexdigest()[:12]


def _plain_text_head(path: str, head: bytes) -> bool:
    """No byte-order mark, no NUL, and whatever else the loader's own text check refuses."""
    if head.startswith((b"\xef\xbb\xbf", b"\xfe\xff", b"\xff\xfe", b"\x00\x00\xfe\xff")) or b"\x00" in head:
        return False
    cut = head[:len(head) - _incomplete_tail(head)]
    try:
        _load.check_text(path, cut)  # the loader's hostile-input check (encodings, binary content)
    except InputError:
        return False
    return True


def _incomplete_tail(data: bytes) -> int:
    """How many bytes at the end of ``data`` are an incomplete UTF-8 sequence."""
    for back in range(1, min(4, len(data)) + 1):
        b = data[-back]
        if b & 0xC0 != 0x80:  # a lead byte (or ASCII): complete when its sequence fits
            need = 1 if b < 0x80 else 2 if b >> 5 == 0b110 else 3 if b >> 4 == 0b1110 else 4 if b >> 3 == 0b11110 else 1
            return back if need > back else 0
    return 0


def nt_term(term, skolem=None, _depth: int = 0) -> str:
    """A term in N-Triples syntax. ``str()`` of a pyoxigraph term is that, except for an RDF 1.2
    triple term, whose ``str()`` lacks the ``<<( … )>>`` around it; blank nodes inside it go
    through ``skolem`` when one is given. Triple terms nested beyond reasoner.load.MAX_NESTING
    raise _TooDeep (the loader refuses them too)."""
    if type(term) is ox.Triple:
        if _depth >= _load.MAX_NESTING:
            raise _TooDeep()
        return f"<<( {nt_term(term.subject, skolem)} {term.predicate} {nt_term(term.object, skolem, _depth + 1)} )>>"
    if skolem is not None and type(term) is ox.BlankNode:
        return skolem(term)
    return str(term)


class _TooDeep(ValueError):
    pass


def _rdf_rows(path: str, rdf_format: ox.RdfFormat, digest: str) -> Iterator[tuple[str, str, str]]:
    """The triples of an RDF file as N-Triples terms, exactly as reasoner.load.parse_rdf reads
    them (graph names dropped, blank nodes skolemised to ``urn:b12kg:bnode:<digest>:<n>`` in order
    of first appearance), parsed from disk without holding the file."""
    bnodes: dict[str, str] = {}
    blank = ox.BlankNode

    def skolem(term) -> str:
        iri = bnodes.get(term.value)
        if iri is None:
            iri = f"<urn:b12kg:bnode:{digest}:{len(bnodes)}>"
            bnodes[term.value] = iri
        return iri

    triple = ox.Triple
    try:
        for q in ox.parse(path=path, format=rdf_format, base_iri=Path(path).resolve().as_uri()):
            s, o = q.subject, q.object
            yield ((skolem(s) if type(s) is blank else str(s)), str(q.predicate),
                   (skolem(o) if type(o) is blank else nt_term(o, skolem) if type(o) is triple else str(o)))
    except SyntaxError as exc:
        raise _load.rdf_syntax_error(path, rdf_format, exc) from None
    except _TooDeep:
        raise _load.triple_terms_too_deep(path) from None
    except (ValueError, OSError) as exc:
        raise InputError(path, f"cannot parse as {rdf_format.name}: {exc}") from None


def _quad_rows(quads: Iterable[ox.Quad]) -> Iterator[tuple[str, str, str]]:
    triple = ox.Triple
    for q in quads:
        o = q.object
        yield str(q.subject), str(q.predicate), (nt_term(o) if type(o) is triple else str(o))


class Staging:
    """Patient input on disk, grouped by patient a batch at a time.

    Every triple is a row of a private SQLite database (terms in N-Triples syntax) that SQLite
    keeps in a deleted temporary file: memory stays at SQLite's page cache whatever the number
    of patients, and nothing is left behind when the process ends or is killed. Grouping is the
    grouping of :func:`split_by_patient`, computed by one recursive query per batch.

    Use: ``with Staging.from_sources(paths) as st:`` then ``st.groups(n)`` (every patient, in
    sorted order, once) and afterwards ``st.unassigned()`` and ``st.unused``.
    """

    def __init__(self) -> None:
        self.unused: list[UnusedInput] = []
        self.sources: list[str] = []
        self._grouped = False
        try:
            self.db = sqlite3.connect("", isolation_level=None)
            self.db.executescript(
                "PRAGMA temp_store = FILE; PRAGMA cache_size = -16000; PRAGMA journal_mode = OFF; "
                "PRAGMA synchronous = OFF; PRAGMA locking_mode = EXCLUSIVE;"
                "CREATE TABLE t(s TEXT NOT NULL, p TEXT NOT NULL, o TEXT NOT NULL);"
                "CREATE TABLE chunk(term TEXT PRIMARY KEY) WITHOUT ROWID;"
                "CREATE TABLE reach(patient TEXT, node TEXT);"
                "CREATE TABLE assigned(s TEXT PRIMARY KEY) WITHOUT ROWID;")
        except sqlite3.Error as exc:
            raise _staging_error(exc) from None
        self._ready = False

    # ---- filling ---------------------------------------------------------------------------------

    @classmethod
    def from_sources(cls, paths: list[str], fmt: str | None = None) -> Staging:
        """Stage input files and folders as reasoner.load.load_sources reads them. Plain RDF files
        (Turtle, N-Triples, N-Quads, TriG) are streamed from disk; the other inputs are read by
        load_sources together (FHIR references resolve across them) and then staged."""
        from .load import load_sources

        st = cls()
        try:
            rest = []
            for path in paths:
                plan = _stream_plan(path, fmt)
                if plan is None:
                    rest.append(path)
                else:
                    st._insert(_rdf_rows(path, *plan))
                    st.sources.append(path)
            if rest:
                st.add_data(load_sources(rest, fmt=fmt))
            st.sources = list(dict.fromkeys(st.sources))
            st.finish()
        except BaseException:
            st.close()
            raise
        return st

    @classmethod
    def from_data(cls, data: PatientData) -> Staging:
        st = cls()
        try:
            st.add_data(data)
            st.finish()
        except BaseException:
            st.close()
            raise
        return st

    def add_data(self, data: PatientData) -> None:
        self._insert(_quad_rows(data.quads))
        self.unused.extend(data.unused)
        self.sources.extend(data.sources)

    def _insert(self, rows: Iterable[tuple[str, str, str]]) -> None:
        if self._ready:
            raise RuntimeError("staging is finished; no more input can be added")
        try:
            self.db.execute("BEGIN")
            self.db.executemany("INSERT INTO t VALUES (?, ?, ?)", rows)
            self.db.execute("COMMIT")
        except sqlite3.Error as exc:
            self._rollback()
            raise _staging_error(exc) from None
        except BaseException:
            self._rollback()
            raise

    def _rollback(self) -> None:
        try:
            self.db.execute("ROLLBACK")
        except sqlite3.Error:
            pass

    def finish(self) -> None:
        """Index the staged triples and find the patients; no input can be added afterwards."""
        if not self._ready:
            try:
                self.db.executescript(_STAGE_INDEX)
            except sqlite3.Error as exc:
                raise _staging_error(exc) from None
            self._ready = True

    # ---- reading ---------------------------------------------------------------------------------

    def patient_count(self) -> int:
        try:
            return self.db.execute("SELECT count(*) FROM patients WHERE value IS NOT NULL").fetchone()[0]
        except sqlite3.Error as exc:
            raise _staging_error(exc) from None

    def is_patient(self, iri: str | None) -> bool:
        try:
            return iri is not None and self.db.execute("SELECT 1 FROM patients WHERE value = ?", (iri,)).fetchone() is not None
        except sqlite3.Error as exc:
            raise _staging_error(exc) from None

    def groups(self, batch_size: int) -> Iterator[tuple[list[str], list[tuple[str, str]]]]:
        """Every patient (IRIs in sorted order), ``batch_size`` at a time: (patient IRIs, rows of
        (patient IRI, "subject predicate object" in N-Triples syntax)). A node shared by several
        patients is in each of their groups, as in split_by_patient."""
        self.finish()
        last = None
        batch_size = max(1, batch_size)
        try:
            while True:
                if last is None:
                    cur = self.db.execute("SELECT value FROM patients WHERE value IS NOT NULL ORDER BY value LIMIT ?", (batch_size,))
                else:
                    cur = self.db.execute("SELECT value FROM patients WHERE value IS NOT NULL AND value > ? ORDER BY value LIMIT ?",
                                          (last, batch_size))
                chunk = [r[0] for r in cur]
                if not chunk:
                    break
                last = chunk[-1]
                self.db.execute("BEGIN")
                self.db.execute("DELETE FROM chunk")
                self.db.execute("DELETE FROM reach")
                self.db.executemany("INSERT INTO chunk VALUES (?)", ((f"<{v}>",) for v in chunk))
                self.db.execute(_STAGE_REACH)
                self.db.execute("INSERT OR IGNORE INTO assigned SELECT node FROM reach")
                rows = self.db.execute(_STAGE_ROWS).fetchall()
                self.db.execute("COMMIT")
                yield chunk, rows
        except sqlite3.Error as exc:
            self._rollback()
            raise _staging_error(exc) from None
        self._grouped = True

    def unassigned(self) -> list[str]:
        """Triples ("s p o") that belong to no patient; after :meth:`groups` went through them all."""
        if not self._grouped:
            raise RuntimeError("Staging.unassigned() needs a complete pass of groups() first")
        try:
            return [r[0] for r in self.db.execute("SELECT s || ' ' || p || ' ' || o FROM t WHERE s NOT IN (SELECT s FROM assigned)")]
        except sqlite3.Error as exc:
            raise _staging_error(exc) from None

    def close(self) -> None:
        try:
            self.db.close()
        except sqlite3.Error:
            pass

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def nquads_text(triples: list[str], graph: ox.NamedNode | None) -> bytes:
    """N-Quads (N-Triples without a graph) for staged triples ("s p o" in N-Triples syntax)."""
    if not triples:
        return b""
    end = f" {graph} .\n" if graph is not None else " .\n"
    return (end.join(triples) + end).encode("utf-8")


def _as_staging(data: PatientData | Staging) -> tuple[Staging, bool]:
    if isinstance(data, Staging):
        return data, False
    return Staging.from_data(data), True


def _store_error(path, exc: BaseException, doing: str = "write") -> B12kgError:
    """One line for a failure of the on-disk store: a full disk, a lock, or damaged files
    (pyoxigraph raises RuntimeError for RocksDB corruption, OSError for I/O errors)."""
    msg = " ".join(str(exc).split())
    if "Corruption" in msg:
        return B12kgError(f"--store {path}: the store is damaged ({msg}); load the patients again into a new directory")
    return B12kgError(f"--store {path}: cannot {doing}: {msg}")


_STORE_FAILURES = (OSError, RuntimeError)


#: Patients written to a store per step (one bulk write of their graphs, then their index entries).
LOAD_CHUNK = 1000
#: Result quads removed per step when the previous run's results are cleared.
_CLEAR_STEP = 50000


class PatientStore:
    """An on-disk store directory (created if missing)."""

    def __init__(self, path: str | Path, *, read_only: bool = False):
        self.path = Path(path)
        if read_only and not self.path.exists():
            raise UsageError(f"--store {path}: no such store directory (create it with b12kg load)")
        try:
            self.store = ox.Store.read_only(str(self.path)) if read_only else ox.Store(str(self.path))
        except _STORE_FAILURES as exc:
            raise _store_error(path, exc, "open the store") from None

    # ---- writing -------------------------------------------------------------------------------

    def load(self, data: PatientData | Staging, kb) -> dict:
        """Add (or replace) the patients of ``data`` (PatientData or a Staging); refresh the
        ontology graph. Patients are written LOAD_CHUNK at a time: their old graphs are dropped,
        the new ones written, and only then are they entered in the index graph. A load that is
        killed leaves a readable store; running it again completes it without duplicates."""
        st, own = _as_staging(data)
        try:
            return self._load(st, kb)
        except _STORE_FAILURES as exc:
            raise _store_error(self.path, exc) from None
        except (SyntaxError, ValueError) as exc:  # staged text the store cannot read back: a bug, said in one line
            raise B12kgError(f"--store {self.path}: the staged input could not be written: {' '.join(str(exc).split())}") from None
        finally:
            if own:
                st.close()

    def _load(self, st: Staging, kb) -> dict:
        self._drop(G_ONTOLOGY)
        self.store.bulk_extend(kb.ontology_quads)
        unused: dict[str | None, list[UnusedInput]] = defaultdict(list)
        for u in st.unused:
            unused[u.patient if st.is_patient(u.patient) else None].append(u)
        patients = triples = 0
        for chunk, rows in st.groups(LOAD_CHUNK):
            by_patient: dict[str, list] = defaultdict(list)
            for patient, triple in rows:
                by_patient[patient].append(triple)
            body = []
            for patient in chunk:
                g = patient_graph(patient)
                self._drop(g)
                body.append(nquads_text(by_patient.get(patient, ()), g))
            self.store.bulk_load(b"".join(body), format=ox.RdfFormat.N_QUADS)
            self.store.extend([ox.Quad(ox.NamedNode(p), _DATA_GRAPH, patient_graph(p), G_PATIENTS) for p in chunk])
            for patient in chunk:
                self._write_unused(patient, unused.get(patient, []))
            self.store.flush()  # the store's write buffers grow until flushed
            patients += len(chunk)
            triples += len(rows)
        if unused.get(None):
            self._write_unused(None, unused[None], replace=False)
        loose = list(st.unassigned())
        if loose:
            self.store.bulk_load(nquads_text(loose, G_UNASSIGNED), format=ox.RdfFormat.N_QUADS)
        self.store.flush()
        return {"patients": patients, "triples": triples, "unassigned": len(loose)}

    def add_results(self, quads: list[ox.Quad] | bytes) -> None:
        """Add evaluation results: quads, or N-Quads text (parsed and written natively)."""
        try:
            if isinstance(quads, bytes):
                if quads:
                    self.store.bulk_load(quads, format=ox.RdfFormat.N_QUADS)
            else:
                self.store.bulk_extend(quads)
        except _STORE_FAILURES as exc:
            raise _store_error(self.path, exc) from None

    def clear_results(self) -> None:
        """Remove the previous run's results, a bounded number of quads at a time: one
        remove_graph of millions of result quads holds them all in memory (2 GiB for the results
        of 10,000 patients)."""
        try:
            for g in (G_INFERRED, G_REPORT, G_CONTEXT):
                if not self.store.contains_named_graph(g):
                    continue
                step = (f"DELETE {{ GRAPH {g} {{ ?s ?p ?o }} }} WHERE {{ {{ SELECT ?s ?p ?o WHERE {{ GRAPH {g} {{ ?s ?p ?o }} }} "
                        f"LIMIT {_CLEAR_STEP} }} }}")
                while next(iter(self.store.quads_for_pattern(None, None, None, g)), None) is not None:
                    self.store.update(step)
                    self.store.flush()  # the store's write buffers grow until flushed
                self.store.remove_graph(g)
        except _STORE_FAILURES as exc:
            raise _store_error(self.path, exc) from None

    def flush(self) -> None:
        try:
            self.store.flush()
        except _STORE_FAILURES as exc:
            raise _store_error(self.path, exc) from None

    # ---- reading -------------------------------------------------------------------------------

    def patients(self) -> list[str]:
        try:
            return sorted({q.subject.value for q in self.store.quads_for_pattern(None, _DATA_GRAPH, None, G_PATIENTS)})
        except _STORE_FAILURES as exc:
            raise _store_error(self.path, exc, "read") from None

    def patient_data(self, patients: list[str]) -> PatientData:
        """The facts of these patients as data-graph quads for an evaluation."""
        data = PatientData(sources=[str(self.path)])
        for p in patients:
            g = patient_graph(p)
            data.quads.extend(ox.Quad(q.subject, q.predicate, q.object, G_DATA) for q in self.store.quads_for_pattern(None, None, None, g))
        return data

    def patient_nquads(self, patients: list[str]) -> bytes:
        """The facts of these patients as data-graph N-Quads, written natively (no Python objects
        per triple): the batch input of a cohort run over the store."""
        end = f" {G_DATA} .\n".encode()
        try:
            return b"".join((self.store.dump(format=ox.RdfFormat.N_TRIPLES, from_graph=patient_graph(p)) or b"").replace(b" .\n", end)
                            for p in patients)
        except _STORE_FAILURES as exc:
            raise _store_error(self.path, exc, "read") from None

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
        try:
            for q in self.store.quads_for_pattern(None, b12("unusedReason"), None, None):
                if not q.graph_name.value.startswith(UNUSED_GRAPH):
                    continue
                patient = next((p.object.value for p in self.store.quads_for_pattern(q.subject, b12("patient"), None, q.graph_name)), None)
                out.append(UnusedInput(q.subject.value, q.object.value, patient))
        except _STORE_FAILURES as exc:
            raise _store_error(self.path, exc, "read") from None
        return sorted(out, key=lambda u: (u.patient or "", u.resource, u.reason))

    def unassigned_quads(self) -> list[ox.Quad]:
        try:
            return [ox.Quad(q.subject, q.predicate, q.object, G_DATA) for q in self.store.quads_for_pattern(None, None, None, G_UNASSIGNED)]
        except _STORE_FAILURES as exc:
            raise _store_error(self.path, exc, "read") from None

    def query(self, sparql: str):
        try:
            return self.store.query(sparql, use_default_graph_as_union=True)
        except _STORE_FAILURES as exc:
            raise _store_error(self.path, exc, "read") from None

    def _drop(self, g: ox.NamedNode) -> None:
        if self.store.contains_named_graph(g):
            self.store.remove_graph(g)


class RemotePatientStore:
    """A SPARQL 1.1 store used the way the embedded store is: ``load`` puts patients into the data
    graph (replacing each patient's earlier records), ``evaluate`` runs the pipeline there."""

    def __init__(self, url: str, timeout: float | None = None):
        from .backend import DEFAULT_TIMEOUT, RemoteBackend

        self.url = url
        self.backend = RemoteBackend(url, timeout=DEFAULT_TIMEOUT if timeout is None else timeout)

    def load(self, data: PatientData | Staging, kb) -> dict:
        """Replace each patient's records in the data graph, LOAD_CHUNK patients per request."""
        st, own = _as_staging(data)
        try:
            patients = triples = 0
            for chunk, rows in st.groups(LOAD_CHUNK):
                deletes = []
                for p in chunk:
                    iri = ox.NamedNode(p)
                    deletes.append(f"DELETE WHERE {{ GRAPH {G_DATA} {{ {iri} ?p ?o }} }}")
                    deletes.append(f"DELETE {{ GRAPH {G_DATA} {{ ?r ?p ?o }} }} WHERE {{ GRAPH {G_DATA} {{ ?r {_SUBJECT} {iri} ; ?p ?o }} }}")
                self.backend.update(" ;\n".join(deletes))
                self.backend.post_ntriples(G_DATA, nquads_text([t for _, t in rows], None))
                patients += len(chunk)
                triples += len(rows)
            loose = list(st.unassigned())
            if loose:
                self.backend.post_ntriples(G_DATA, nquads_text(loose, None))
            return {"patients": patients, "triples": triples + len(loose), "unassigned": len(loose)}
        finally:
            if own:
                st.close()

    def evaluate(self, kb, as_of, shacl: str = "fast"):
        from .pipeline import evaluate

        if shacl != "fast":
            raise UsageError("a remote store is validated with the fast (SPARQL) engine only")
        self.backend.drop_graphs([G_ONTOLOGY, G_INFERRED, G_REPORT, G_CONTEXT])
        return evaluate(kb, PatientData(), as_of, backend=self.backend)

    def query(self, sparql: str):
        return self.backend.query(sparql)
