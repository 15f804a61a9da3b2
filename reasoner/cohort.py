"""Cohort evaluation: many patients, in batches, on both cores, streamed out as NDJSON or CSV.

Patients are evaluated in batches (one working store per batch, the whole pipeline per batch);
batches run in worker processes (``--jobs``), in order, so the output is deterministic. A batch
that fails is re-run one patient at a time, so one bad patient is reported with its id and the
rest of the cohort still completes. Results can be written back into an embedded store.

Input files are staged on disk first (:class:`reasoner.store.Staging`) and batches are cut from
there, so the parent process holds a few batches, never the cohort: memory does not grow with the
number of patients.
"""
from __future__ import annotations

import csv
import datetime as dt
import io
import json
import os
import sys
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import pyoxigraph as ox

from .errors import B12kgError
from .load import PatientData, UnusedInput
from .vocab import G_CONTEXT, G_DATA, G_INFERRED, G_REPORT

KEYS = ("findings", "recommendations", "violations", "conflicts")
_RESULT_GRAPHS = (G_INFERRED, G_REPORT, G_CONTEXT)


@dataclass
class Batch:
    patients: list[str]
    nquads: bytes
    unused: list[tuple[str, str, str | None]]


def _serialize(quads: Iterable[ox.Quad]) -> bytes:
    return ox.serialize(quads, format=ox.RdfFormat.N_QUADS) or b""


def _evaluate(nquads: bytes, unused, as_of: str, keep_results: bool, shacl: str):
    from .api import default_kb
    from .backend import EmbeddedBackend
    from .pipeline import evaluate
    from .report import to_dict

    data = PatientData(quads=list(ox.parse(nquads, format=ox.RdfFormat.N_QUADS)) if nquads else [])
    data.unused = [UnusedInput(r, why, p) for r, why, p in unused]
    # A fresh working store per batch, not one from the knowledge base's pool: a pooled in-memory
    # store keeps every term it has ever held, so a worker reusing one grows with the cohort
    # (about 75 KB per patient); the copy of the ontology costs ~5 ms per batch of 200.
    ev = evaluate(default_kb(), data, dt.date.fromisoformat(as_of), shacl=shacl, backend=EmbeddedBackend())
    patients = [p for p in to_dict(ev)["patients"]]
    results = b""
    if keep_results:
        results = _serialize(q for g in _RESULT_GRAPHS for q in ev.backend.quads(graph=g))
    return patients, results


def evaluate_batch(batch: Batch, as_of: str, keep_results: bool = False, shacl: str = "fast"):
    """Evaluate one batch; on failure evaluate its patients one by one and report the failures."""
    try:
        return _evaluate(batch.nquads, batch.unused, as_of, keep_results, shacl)
    except (B12kgError, Exception) as exc:  # noqa: BLE001 - reported per patient, never lost
        if len(batch.patients) == 1:
            msg = " ".join(str(exc).split()) or type(exc).__name__
            return [{"patient": batch.patients[0], "error": f"{type(exc).__name__}: {msg}"}], b""
    out, results = [], b""
    quads = list(ox.parse(batch.nquads, format=ox.RdfFormat.N_QUADS)) if batch.nquads else []
    from .store import split_by_patient

    groups, _ = split_by_patient(quads)
    for p in batch.patients:
        single = Batch([p], _serialize(groups.get(p, [])), [u for u in batch.unused if u[2] == p])
        got, res = evaluate_batch(single, as_of, keep_results, shacl)
        out += got
        results += res
    return out, results


def batches_from_staging(staging, batch_size: int) -> Iterator[Batch]:
    """Batches of ``batch_size`` patients in patient IRI order, cut from a staging area; then one
    batch of the triples and unused records that belong to no patient, if there are any."""
    from .store import nquads_text

    unused_by_patient: dict[str | None, list] = {}
    for u in staging.unused:
        key = u.patient if staging.is_patient(u.patient) else None
        unused_by_patient.setdefault(key, []).append((u.resource, u.reason, u.patient))
    for chunk, rows in staging.groups(batch_size):
        unused = [u for p in chunk for u in unused_by_patient.get(p, [])]
        yield Batch(chunk, nquads_text([triple for _, triple in rows], G_DATA), unused)
    loose = nquads_text(staging.unassigned(), G_DATA)
    leftovers = unused_by_patient.get(None, [])
    if loose or leftovers:
        yield Batch([], loose, leftovers)


def batches_from_data(data: PatientData, batch_size: int) -> Iterator[Batch]:
    """Batches from patient data already in memory (the same grouping, through a staging area)."""
    from .store import Staging

    with Staging.from_data(data) as staging:
        yield from batches_from_staging(staging, batch_size)


def batches_from_store(pstore, batch_size: int) -> Iterator[Batch]:
    patients = pstore.patients()
    unused = pstore.unused()
    for i in range(0, len(patients), batch_size):
        chunk = patients[i:i + batch_size]
        chunk_set = set(chunk)
        yield Batch(chunk, pstore.patient_nquads(chunk), [(u.resource, u.reason, u.patient) for u in unused if u.patient in chunk_set])
    known = set(patients)
    rest = [(u.resource, u.reason, u.patient) for u in unused if u.patient not in known]
    loose = pstore.unassigned_quads()
    if rest or loose:
        yield Batch([], _serialize(loose), rest)


def run_cohort(batches: Iterable[Batch], as_of: dt.date, *, jobs: int = 1, keep_results: bool = False,
               shacl: str = "fast", progress: bool = False, total: int | None = None) -> Iterator[tuple[list[dict], bytes]]:
    """Yield (patient results, result N-Quads) per batch, in input order."""
    start = time.perf_counter()
    done = 0

    def tick(n: int) -> None:
        nonlocal done
        done += n
        if progress:
            rate = done / max(time.perf_counter() - start, 1e-9)
            of = f"/{total}" if total else ""
            print(f"\r{done}{of} patients, {rate:,.0f}/s", end="", file=sys.stderr, flush=True)

    if jobs <= 1:
        for b in batches:
            got = evaluate_batch(b, as_of.isoformat(), keep_results, shacl)
            tick(len(b.patients))
            yield got
    else:
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            pending = []
            for b in batches:
                pending.append((len(b.patients), pool.submit(evaluate_batch, b, as_of.isoformat(), keep_results, shacl)))
                while len(pending) > jobs * 2:
                    n, fut = pending.pop(0)
                    got = fut.result()
                    tick(n)
                    yield got
            for n, fut in pending:
                got = fut.result()
                tick(n)
                yield got
    if progress:
        print(file=sys.stderr)


def default_jobs() -> int:
    return max(1, min(2, os.cpu_count() or 1))


# ---- output views ------------------------------------------------------------------------------


def ndjson_line(patient: dict, as_of: dt.date) -> str:
    return json.dumps({"as_of": as_of.isoformat(), **patient}, ensure_ascii=False, sort_keys=False) + "\n"


CSV_FIELDS = ("patient", "findings", "recommendations", "violations", "conflicts", "unused", "ids", "error")


def csv_header() -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow(CSV_FIELDS)
    return buf.getvalue()


def csv_line(patient: dict) -> str:
    ids = sorted(i["id"] for k in KEYS for i in patient.get(k, []))
    row = [patient.get("patient", ""), *(len(patient.get(k, [])) for k in KEYS), len(patient.get("unused", [])),
           " ".join(ids), patient.get("error", "")]
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow(row)
    return buf.getvalue()
