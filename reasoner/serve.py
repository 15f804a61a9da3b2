"""``b12kg serve``: a read-only SPARQL 1.1 Protocol endpoint over an evaluation or a stored graph.

    b12kg serve examples/*.ttl --as-of 2026-06-01          # evaluate, then serve the result
    b12kg serve --store DIR                                 # serve an existing pyoxigraph store

The data is either the store of one evaluation (ontology, patient facts, inferences, reports,
context: the named graphs of :mod:`reasoner.vocab`), copied at start-up into a temporary on-disk
store, or an existing on-disk pyoxigraph store opened read-only. Queries see the union of all
named graphs as their default graph unless they (``FROM``) or the request (``default-graph-uri``,
``named-graph-uri``) say otherwise; ``GRAPH`` addresses one graph. The prefixes of
:data:`reasoner.vocab.PREFIXES` (``b12:``, ``b12g:``, ``sct:`` …) are predeclared.

Protocol (https://www.w3.org/TR/sparql11-protocol/):

* ``GET /sparql?query=…``, ``POST`` ``application/x-www-form-urlencoded`` (``query=…``) or
  ``POST`` ``application/sparql-query``. ``GET /`` is a small query page with the example queries.
* Content negotiation on ``Accept``; when Accept names no type we serve (absent, ``*/*``, a
  browser's), the ``format`` (or ``output``) parameter chooses: ``json xml csv tsv`` for
  SELECT/ASK, ``turtle jsonld nt rdfxml`` for CONSTRUCT/DESCRIBE, or a media type.
* Read-only: ``update=``, ``application/sparql-update``, any update operation (INSERT, DELETE,
  LOAD, CLEAR …) and ``SERVICE`` are refused with 403 before anything runs. The workers open the
  store read-only and, where Linux allows it, run without network access (an unprivileged network
  namespace), so even a ``SERVICE`` the check missed could not fetch anything.

Limits:

* ``--timeout``: every query runs in a worker process (a pool of ``--workers``); a query still
  running after the limit is cancelled by killing its worker (a fresh one replaces it) and the
  answer is **503** with a one-line message. When every worker stays busy for as long as the time
  limit, the answer is 503 too (with ``Retry-After``). Other clients are served meanwhile: once a
  query has run for a second (a quarter of the time limit, when that is shorter), a worker is
  added for the others, so that up to ``--extra-workers`` (default: as many as ``--workers``)
  slow queries at once hold up no one; the pool shrinks back a few seconds after they end.
* ``--max-results``: a result with more rows (SELECT) or triples (CONSTRUCT/DESCRIBE) is **not
  truncated**: the answer is **413** with a one-line message and the ``X-B12kg-Max-Results``
  header, so that no client mistakes part of a result for all of it (add a ``LIMIT``).
* ``--max-bytes`` (default 16 MiB): likewise a response body larger than this many bytes (a few
  rows of very long values) is refused with **413** and the ``X-B12kg-Max-Bytes`` header.
* ``--memory``: the address space a query may add to its worker is capped (default 2048 MiB, on
  top of the worker's ~0.4 GiB at rest); a query beyond it ends its worker (replaced) and the
  answer is 503. Should the engine itself abort (pyoxigraph 0.5 can panic on some ``ORDER BY``),
  the answer is 500 with the engine's message; the server carries on.
* A request body or query over 1 MiB is refused with 413; a body shorter than its
  ``Content-Length`` (the client closed early) with 400, never run. A body is read as UTF-8
  (``charset`` may also say us-ascii or iso-8859-1; any other is refused with 415).
* A query nested more than 256 levels deep (brackets, parentheses, braces, runs of ``!``) is
  refused with 400 before the engine sees it (its parser would overflow its stack and end the
  worker). ``default-graph-uri`` / ``named-graph-uri`` values must be valid IRIs (else 400).
* ``--max-connections`` (default 64) connections are served at once, a thread each; a connection
  beyond them is answered 503 (``Retry-After: 1``) at once and closed. A client has 30 seconds to
  send its whole request (line, headers and body), however slowly it trickles; then the connection
  is closed.

Errors are one line of ``text/plain``, http.server's own too (400 bad request line, 414, 431, 501
unknown method): 400 bad query or parameters, 403 refused (update, SERVICE,
unexpected Host header), 404, 405 wrong method, 406 no acceptable format, 411, 413, 415, 500,
503. Each request is logged as one line on stderr. SIGTERM and SIGINT stop the server cleanly.
A loopback server answers only requests whose Host header names a loopback address (a web page
cannot reach it through DNS rebinding); there is no CORS and no authentication.
"""
from __future__ import annotations

import argparse
import html
import io
import json
import math
import os
import queue
import re
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, quote, urlsplit

import pyoxigraph as ox

from .errors import B12kgError, UsageError
from .sparqltext import inspect_query
from .vocab import PREFIXES

MAX_BODY = 1 << 20  # bytes: request bodies and query texts
STARTUP_TIMEOUT = 60.0  # seconds a new worker may take to open the store
LOG_WIDTH = 160
SHRINK_AFTER = 5.0  # seconds a pool stays above its size (workers added for slow queries) before it shrinks
REQUEST_DEADLINE = 30.0  # seconds a client has to send a whole request (its line, headers and body)
MAX_BYTES = 16 << 20  # bytes: the default --max-bytes, the largest response body
MAX_CONNECTIONS = 64  # connections handled at once (one thread each); more are answered 503 at once
# the charsets a request body may name (Python's own codecs would include unicode_escape, idna …)
_CHARSETS = {"utf-8": "utf-8", "utf8": "utf-8", "us-ascii": "ascii", "ascii": "ascii",
             "iso-8859-1": "latin-1", "latin-1": "latin-1", "latin1": "latin-1"}


# ---------------------------------------------------------------------------------------------
# Content negotiation
# ---------------------------------------------------------------------------------------------

RESULT_TYPES = {  # SELECT and ASK
    "json": "application/sparql-results+json",
    "xml": "application/sparql-results+xml",
    "csv": "text/csv",
    "tsv": "text/tab-separated-values",
}
GRAPH_TYPES = {  # CONSTRUCT and DESCRIBE
    "turtle": "text/turtle",
    "jsonld": "application/ld+json",
    "nt": "application/n-triples",
    "rdfxml": "application/rdf+xml",
}
_RESULT_ACCEPT = {v: k for k, v in RESULT_TYPES.items()} | {"application/json": "json"}
_GRAPH_ACCEPT = {v: k for k, v in GRAPH_TYPES.items()} | {
    "application/x-turtle": "turtle", "application/turtle": "turtle", "text/n-triples": "nt"}
_RESULT_PARAM = {"json": "json", "xml": "xml", "csv": "csv", "tsv": "tsv"} | _RESULT_ACCEPT
_GRAPH_PARAM = {"turtle": "turtle", "ttl": "turtle", "jsonld": "jsonld", "json-ld": "jsonld", "json": "jsonld",
                "nt": "nt", "ntriples": "nt", "n-triples": "nt", "rdfxml": "rdfxml", "rdf": "rdfxml",
                "xml": "rdfxml"} | _GRAPH_ACCEPT
FORMAT_CHOICES = ("json", "xml", "csv", "tsv", "turtle", "jsonld", "nt", "rdfxml")


def _parse_accept(header: str | None) -> list[tuple[str, float, int]]:
    out = []
    for i, part in enumerate((header or "").split(",")):
        fields = [f.strip() for f in part.split(";")]
        mtype = fields[0].lower()
        if not mtype:
            continue
        q = 1.0
        for f in fields[1:]:
            if f.lower().startswith("q="):
                try:
                    q = float(f[2:])
                except ValueError:
                    q = 0.0
        out.append((mtype, q, i))
    return out


def negotiate(accept: str | None, fmt: str | None, kind: str) -> str | None:
    """The format key for ``kind`` ('results' or 'graph'), or None when nothing acceptable.

    A type the Accept header names explicitly wins (highest q, then first listed); otherwise the
    ``format`` parameter decides; otherwise a wildcard (or no Accept at all) gives the default.
    """
    table, by_param, default = ((_RESULT_ACCEPT, _RESULT_PARAM, "json") if kind == "results"
                                else (_GRAPH_ACCEPT, _GRAPH_PARAM, "turtle"))
    entries = _parse_accept(accept)
    explicit = [(q, -i, table[t]) for t, q, i in entries if t in table and q > 0]
    if explicit:
        return max(explicit)[2]
    if fmt:
        return by_param.get(fmt.strip().lower())
    if not entries:
        return default
    for t, q, _ in sorted(entries, key=lambda e: (-e[1], e[2])):
        if q <= 0:
            continue
        if t == "*/*":
            return default
        if t.endswith("/*"):
            major = t[:-1]
            for mtype, key in table.items():
                if mtype.startswith(major):
                    return key
    return None


# ---------------------------------------------------------------------------------------------
# Worker processes: each opens the store read-only and answers one job at a time
# ---------------------------------------------------------------------------------------------

_XSD_STRING = "http://www.w3.org/2001/XMLSchema#string"
_RDF_LANGSTRING = "http://www.w3.org/1999/02/22-rdf-syntax-ns#langString"


def _one_line(exc) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _drop_network() -> bool:
    """Best effort: move this process into a new (empty) network namespace (Linux only)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        clone_newuser, clone_newnet = 0x10000000, 0x40000000
        return libc.unshare(clone_newuser | clone_newnet) == 0
    except Exception:
        return False


def _term_json(term) -> dict:
    if isinstance(term, ox.NamedNode):
        return {"type": "uri", "value": term.value}
    if isinstance(term, ox.BlankNode):
        return {"type": "bnode", "value": term.value}
    if isinstance(term, ox.Literal):
        out = {"type": "literal", "value": term.value}
        if term.language:
            out["xml:lang"] = term.language
        elif term.datatype.value not in (_XSD_STRING, _RDF_LANGSTRING):
            out["datatype"] = term.datatype.value
        return out
    if isinstance(term, ox.Triple):
        return {"type": "triple", "value": {"subject": _term_json(term.subject),
                                            "predicate": _term_json(term.predicate),
                                            "object": _term_json(term.object)}}
    raise TypeError(f"unexpected term {term!r}")


def _too_large(max_results: int, what: str):
    return (413, "text/plain; charset=utf-8",
            (f"result too large: more than {max_results} {what} (the limit is --max-results {max_results}); "
             "add a LIMIT or narrow the query\n").encode(),
            {"X-B12kg-Max-Results": str(max_results)})


def _host(client_address) -> str:
    """The client's address for a log line ("-" when the socket has none)."""
    return client_address[0] if isinstance(client_address, tuple) and client_address else "-"


def _too_many_bytes(max_bytes: int, size: int):
    return (413, "text/plain; charset=utf-8",
            (f"result too large: {size} bytes, more than {max_bytes} (the limit is --max-bytes {max_bytes}); "
             "add a LIMIT or select fewer or shorter values\n").encode(),
            {"X-B12kg-Max-Bytes": str(max_bytes)})


def execute(store, job: dict):
    """Run one query job; return (status, content type, body, extra headers); a body over the job's
    ``max_bytes`` becomes a 413."""
    reply = _execute(store, job)
    max_bytes = job.get("max_bytes")
    if max_bytes and reply[0] == 200 and len(reply[2]) > max_bytes:
        return _too_many_bytes(max_bytes, len(reply[2]))
    return reply


def _execute(store, job: dict):
    """Run one query job; return (status, content type, body, extra headers)."""
    kw: dict = {"prefixes": PREFIXES}
    if job.get("default_graph") is not None or job.get("named_graphs") is not None:
        kw["default_graph"] = [ox.NamedNode(g) for g in job.get("default_graph") or []]
        kw["named_graphs"] = [ox.NamedNode(g) for g in job.get("named_graphs") or []]
    elif job.get("union", True):
        kw["use_default_graph_as_union"] = True
    max_results = job["max_results"]
    try:
        result = store.query(job["query"], **kw)
        if isinstance(result, ox.QuerySolutions):
            key = job.get("results_format")
            if key is None:
                return _not_acceptable("results")
            variables = [v.value for v in result.variables]
            solutions = []
            for n, sol in enumerate(result):  # counted before any is converted: a refusal costs little
                if n >= max_results:
                    return _too_large(max_results, "rows")
                solutions.append(sol)
            bindings = []
            for sol in solutions:
                row = {}
                for name in variables:
                    term = sol[name]
                    if term is not None:
                        row[name] = _term_json(term)
                bindings.append(row)
            body = json.dumps({"head": {"vars": variables}, "results": {"bindings": bindings}},
                              ensure_ascii=False, separators=(",", ":")).encode("utf-8")
            if key != "json":
                parsed = ox.parse_query_results(body, format=ox.QueryResultsFormat.JSON)
                body = parsed.serialize(format=_RESULTS_OX[key])
            return 200, _content_type(RESULT_TYPES[key]), body, {"X-B12kg-Result-Count": str(len(bindings))}
        if isinstance(result, ox.QueryBoolean):
            key = job.get("results_format")
            if key is None:
                return _not_acceptable("results")
            return 200, _content_type(RESULT_TYPES[key]), result.serialize(format=_RESULTS_OX[key]), {}
        key = job.get("graph_format")
        if key is None:
            return _not_acceptable("graph")
        triples = []
        for n, triple in enumerate(result):
            if n >= max_results:
                return _too_large(max_results, "triples")
            triples.append(triple)
        if key in ("turtle", "rdfxml"):
            body = ox.serialize(triples, format=_GRAPH_OX[key], prefixes=PREFIXES)
        else:
            body = ox.serialize(triples, format=_GRAPH_OX[key])
        return 200, _content_type(GRAPH_TYPES[key]), body or b"", {"X-B12kg-Result-Count": str(len(triples))}
    except SyntaxError as exc:
        return 400, "text/plain; charset=utf-8", f"SPARQL syntax error: {_one_line(exc)}\n".encode(), {}
    except (ValueError, RuntimeError) as exc:
        return 400, "text/plain; charset=utf-8", f"query failed: {_one_line(exc)}\n".encode(), {}
    except MemoryError:
        raise
    except Exception as exc:  # an I/O error of the store, or a bug: the worker stays up
        return 500, "text/plain; charset=utf-8", f"query failed: {_one_line(exc)}\n".encode(), {}


def _content_type(mtype: str) -> str:
    return mtype + "; charset=utf-8" if mtype.startswith("text/") else mtype


def _not_acceptable(kind: str):
    table = RESULT_TYPES if kind == "results" else GRAPH_TYPES
    return (406, "text/plain; charset=utf-8",
            f"not acceptable: this query's result can be served as {', '.join(table.values())}\n".encode(), {})


_RESULTS_OX = {"json": ox.QueryResultsFormat.JSON, "xml": ox.QueryResultsFormat.XML,
               "csv": ox.QueryResultsFormat.CSV, "tsv": ox.QueryResultsFormat.TSV}
_GRAPH_OX = {"turtle": ox.RdfFormat.TURTLE, "jsonld": ox.RdfFormat.JSON_LD, "nt": ox.RdfFormat.N_TRIPLES,
             "rdfxml": ox.RdfFormat.RDF_XML}


def _address_space() -> int:
    """This process's address space in bytes (0 when unknown)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _limit_memory(mib: int) -> None:
    """Let a query add at most ``mib`` MiB to this worker's address space (best effort): an
    allocation beyond it fails, which ends the query (and, from the engine, the worker)."""
    if mib <= 0:
        return
    try:
        import resource

        limit = _address_space() + mib * 1024 * 1024
        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        if hard != resource.RLIM_INFINITY:
            limit = min(limit, hard)
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    except (ImportError, ValueError, OSError):
        pass


def _worker_main(store_path: str, conn, backstop: int, memory: int = 0, stderr_path: str | None = None) -> None:
    """Body of a worker process: open the store read-only, then answer jobs until told to stop."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group; the parent decides
    signal.signal(signal.SIGALRM, signal.SIG_DFL)  # the backstop alarm ends this process
    if stderr_path:  # the engine's last words (a panic, a failed allocation) for the server to report
        try:
            fd = os.open(stderr_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            os.dup2(fd, 2)
            os.close(fd)
        except OSError:
            pass
    isolated = _drop_network()  # first: a new user namespace needs a single-threaded process
    try:
        store = ox.Store.read_only(store_path)
    except Exception as exc:
        conn.send(("error", f"{store_path}: cannot open the store: {_one_line(exc)}"))
        return
    _limit_memory(memory)  # after the store has started its threads, which the limit could starve
    conn.send(("ready", isolated))
    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError):
            return  # the server went away
        if job is None:
            return
        signal.alarm(backstop)  # should the server fail to kill a runaway query, it ends itself
        try:
            reply = execute(store, job)
        except MemoryError:
            reply = _plain(503, f"query stopped: it needed more memory than its worker may use (the limit is "
                                f"--memory {memory} MiB)")
        except BaseException as exc:  # noqa: BLE001 - the reply must be sent
            reply = (500, "text/plain; charset=utf-8", f"query failed: {_one_line(exc)}\n".encode(), {})
        signal.alarm(0)
        try:
            conn.send(reply)
        except (BrokenPipeError, OSError):
            return


@dataclass(eq=False)  # hashed by identity
class _Worker:
    process: object
    conn: object
    stderr_path: str
    isolated: bool = False


class WorkerPool:
    """A few worker processes; a query over its time limit costs its worker, which is replaced.

    Slow queries do not hold up the others: once a query has run for ``slow_after`` seconds (a
    second, or a quarter of the time limit when that is shorter), a worker is added for the other
    queries, up to ``extra`` such workers at a time (default: as many as ``size``), so that up to
    ``extra`` slow or runaway queries at once leave ``size`` workers for everyone else. A query
    cut off at the time limit costs its worker, and the added one takes its place. Once the pool
    has been above its target size (``size``, plus one per slow query running, up to ``extra``) for
    ``shrink_after`` seconds, its idle workers beyond it exit, so that a run of slow queries does
    not start and stop a worker for each.
    """

    def __init__(self, store_path: str, size: int, timeout: float, log=None, memory: int = 0,
                 extra: int | None = None):
        import multiprocessing

        self.store_path = store_path
        self.size = size
        self.timeout = timeout
        self.memory = memory
        self.extra = size if extra is None else max(0, extra)
        self.slow_after = min(1.0, timeout / 4)
        self.log = log or (lambda msg: None)
        self._ctx = multiprocessing.get_context("spawn")  # no fork of a threaded server
        self._idle: queue.Queue = queue.Queue()
        self._all: set = set()  # every worker process, starting ones included
        self._starting: set = set()  # started, not ready yet
        self._pending = 0  # workers asked for whose process is not started yet
        self._slow = 0  # queries running for longer than slow_after
        self._lock = threading.Lock()
        self.closed = False
        self.isolated = False
        self._logdir = tempfile.mkdtemp(prefix="b12kg-serve-workers-")
        self.cancelled = 0  # queries killed at the time limit (for tests and logs)
        self.added = 0  # workers added for slow queries (for tests and logs)
        self.shrink_after = SHRINK_AFTER

    def _target(self) -> int:
        return self.size + min(self.extra, self._slow)

    def _spawn(self, reserved: bool = False) -> _Worker:
        if reserved and self.closed:
            raise RuntimeError("the pool is closed")
        parent, child = self._ctx.Pipe(duplex=True)
        backstop = int(math.ceil(self.timeout)) + 10
        fd, stderr_path = tempfile.mkstemp(prefix="worker-", suffix=".log", dir=self._logdir)
        os.close(fd)
        p = self._ctx.Process(target=_worker_main, args=(self.store_path, child, backstop, self.memory, stderr_path),
                              name="b12kg-serve-worker", daemon=True)
        try:
            p.start()
        except BaseException:
            parent.close()
            child.close()
            try:
                os.unlink(stderr_path)
            except OSError:
                pass
            raise
        child.close()
        w = _Worker(p, parent, stderr_path)
        with self._lock:
            self._all.add(w)
            self._starting.add(w)
            if reserved:
                self._pending -= 1
        return w

    def _await_ready(self, w: _Worker) -> str | None:
        """Wait for a new worker; put it in the idle queue, or return why it failed."""
        try:
            if not w.conn.poll(STARTUP_TIMEOUT):
                raise EOFError("no answer")
            status, detail = w.conn.recv()
        except (EOFError, OSError) as exc:
            last = [line for line in self._stderr_tail(w) if line.strip()]
            status, detail = "error", f"a query worker did not start: {_one_line(last[-1] if last else exc)}"
        if status != "ready":
            self._discard(w)
            return detail
        w.isolated = bool(detail)
        with self._lock:
            self._starting.discard(w)
            closed = self.closed
            if closed:
                self._all.discard(w)
        if closed:
            self._retire(w)
            return None
        self._idle.put(w)
        return None

    def start(self) -> None:
        try:
            workers = [self._spawn() for _ in range(self.size)]
            errors = [e for e in (self._await_ready(w) for w in workers) if e]
        except BaseException:
            self.close()
            raise
        if errors:
            self.close()
            raise UsageError(errors[0])
        self.isolated = all(w.isolated for w in workers)
        threading.Thread(target=self._shrink, name="b12kg-serve-shrink", daemon=True).start()

    def _top_up(self, delay: float = 0.5) -> None:
        """Start workers (in the background) until the pool has its target size."""
        with self._lock:
            if self.closed:
                return
            missing = self._target() - len(self._all) - self._pending
            if missing <= 0:
                return
            self._pending += missing
        started = 0
        try:
            for _ in range(missing):
                threading.Thread(target=self._add_worker, args=(delay,), name="b12kg-serve-respawn",
                                 daemon=True).start()
                started += 1
        except Exception as exc:  # e.g. "can't start new thread": the next query's top-up tries again
            self.log(f"cannot start a replacement worker now: {_one_line(exc)}")
        finally:
            if started < missing:  # no thread will start (and count down) these
                with self._lock:
                    self._pending -= missing - started

    def _add_worker(self, delay: float) -> None:
        try:
            error = self._await_ready(self._spawn(reserved=True))
        except Exception as exc:  # e.g. out of processes
            with self._lock:
                self._pending -= 1
            error = _one_line(exc)
        if error and not self.closed:
            self.log(f"a replacement worker failed (trying again in {delay:g} s): {error}")
            time.sleep(delay)
            self._top_up(min(delay * 2, 30.0))

    def _shrink(self) -> None:
        """Background: retire idle workers beyond the target size once it has lasted shrink_after."""
        since = None
        while not self.closed:
            time.sleep(0.5)
            with self._lock:
                over = len(self._all) - len(self._starting) - self._target()
            if over <= 0:
                since = None
                continue
            now = time.monotonic()
            since = now if since is None else since
            if now - since < self.shrink_after:
                continue
            for _ in range(over):
                try:
                    w = self._idle.get_nowait()
                except queue.Empty:
                    break
                with self._lock:
                    keep = self.closed or len(self._all) - len(self._starting) <= self._target()
                    if not keep:
                        self._all.discard(w)
                if keep:
                    self._idle.put(w)
                    break
                self._retire(w)
            since = None

    def _retire(self, w: _Worker) -> None:
        """Let an idle worker exit, and reap it in the background."""
        try:
            w.conn.send(None)
        except (OSError, ValueError):
            pass
        threading.Thread(target=self._discard, args=(w,), name="b12kg-serve-retire", daemon=True).start()

    def _discard(self, w: _Worker) -> None:
        with self._lock:
            self._all.discard(w)
            self._starting.discard(w)
        try:
            w.process.join(0.5 if w.process.is_alive() else 0)
            if w.process.is_alive():
                w.process.kill()
            w.process.join(2)
        except Exception:
            pass
        try:
            w.conn.close()
        except Exception:
            pass
        try:
            os.unlink(w.stderr_path)
        except OSError:
            pass

    def _kill(self, w: _Worker) -> None:
        with self._lock:
            self._all.discard(w)
        try:
            w.process.kill()
        except Exception:
            pass
        self._discard(w)

    @staticmethod
    def _stderr_tail(w: _Worker) -> list[str]:
        try:
            with open(w.stderr_path, "rb") as f:
                f.seek(0, os.SEEK_END)
                f.seek(max(0, f.tell() - 8192))
                return f.read().decode("utf-8", "replace").splitlines()
        except (OSError, ValueError):
            return []

    def _crash_message(self, w: _Worker) -> tuple[int, str]:
        """Why a worker died in the middle of a query, from its last words."""
        w.process.join(2)
        tail = self._stderr_tail(w)
        limit = f"the limit is --memory {self.memory} MiB" if self.memory else "there is no --memory limit"
        if any("memory allocation of" in line for line in tail) or w.process.exitcode == -signal.SIGKILL:
            return 503, f"query stopped: it needed more memory than its worker may use ({limit})"
        for i, line in enumerate(tail):
            if " panicked at " in line and i + 1 < len(tail):
                return 500, f"query failed: the query engine aborted: {_one_line(tail[i + 1])}"
        return 500, f"query failed: the query engine aborted (out of memory, {limit}, or an engine failure)"

    def _slow_changed(self, delta: int) -> None:
        with self._lock:
            self._slow += delta
            if delta > 0 and self._slow <= self.extra:
                self.added += 1
        if delta > 0:
            self._top_up()

    def run(self, job: dict):
        """(status, content type, body, headers) for one job, within the time limit."""
        if self.closed:
            return _plain(503, "the server is shutting down")
        try:
            w = self._idle.get_nowait()
        except queue.Empty:
            self._top_up()  # should a worker have failed to start earlier
            try:
                w = self._idle.get(timeout=self.timeout)
            except queue.Empty:
                return _plain(503, f"all {self.workers()} query workers are busy; try again later",
                              {"Retry-After": "1"})
        # from here on the worker is this query's: whatever happens (even an exception), the finally
        # clause puts it back (when it answered) or kills it, and undoes the slow count
        slow = False
        keep = False
        try:
            if self.closed:
                return _plain(503, "the server is shutting down")
            reply = None
            try:
                w.conn.send(job)
                ready = w.conn.poll(self.slow_after)
                if not ready and self.slow_after < self.timeout:
                    slow = True  # from now on it runs beside the pool's size, not in it
                    self._slow_changed(+1)
                    ready = w.conn.poll(self.timeout - self.slow_after)
                if ready:
                    reply = w.conn.recv()
            except (EOFError, OSError):
                if self.closed:
                    return _plain(503, "the server is shutting down")
                status, message = self._crash_message(w)
                return _plain(status, message + "; its worker has been replaced")
            if reply is not None:
                keep = True
                return reply
            self.cancelled += 1
            return _plain(503, f"query cancelled: it ran longer than the time limit of {self.timeout:g} s (--timeout)")
        finally:
            try:
                if slow:
                    self._slow_changed(-1)
            finally:
                if keep:
                    self._idle.put(w)
                else:
                    self._kill(w)
                    self._top_up()

    def workers(self) -> int:
        """Worker processes, starting ones included."""
        with self._lock:
            return len(self._all)

    def close(self) -> None:
        self.closed = True
        with self._lock:
            workers = list(self._all)
        for w in workers:
            self._kill(w)
        shutil.rmtree(self._logdir, ignore_errors=True)


def _plain(status: int, message: str, headers: dict | None = None):
    return status, "text/plain; charset=utf-8", (message + "\n").encode("utf-8"), headers or {}


# ---------------------------------------------------------------------------------------------
# The data: an evaluation copied to a temporary on-disk store, or an existing store
# ---------------------------------------------------------------------------------------------


@dataclass
class Dataset:
    store_path: str
    description: str
    graphs: list[tuple[str, int | None]] = field(default_factory=list)
    tmpdir: str | None = None

    def cleanup(self) -> None:
        if self.tmpdir:
            shutil.rmtree(self.tmpdir, ignore_errors=True)
            self.tmpdir = None


def _graph_counts(store) -> list[tuple[str, int | None]]:
    rows = store.query("SELECT ?g (COUNT(*) AS ?n) WHERE { GRAPH ?g { ?s ?p ?o } } GROUP BY ?g ORDER BY ?g")
    return [(sol["g"].value, int(sol["n"].value)) for sol in rows]


def dataset_from_store(source_store, description: str) -> Dataset:
    """Copy an in-memory store (e.g. ``report.store``) to a temporary on-disk store."""
    tmpdir = tempfile.mkdtemp(prefix="b12kg-serve-")
    path = os.path.join(tmpdir, "store")
    try:
        disk = ox.Store(path)
        disk.bulk_extend(source_store.quads_for_pattern(None, None, None, None))
        disk.flush()
        graphs = _graph_counts(disk)
        del disk  # closes the read-write instance before the workers open it read-only
    except BaseException:
        shutil.rmtree(tmpdir, ignore_errors=True)
        raise
    return Dataset(path, description, graphs, tmpdir)


def dataset_from_directory(path: str) -> Dataset:
    if not os.path.isdir(path):
        raise UsageError(f"--store {path}: not a directory")
    try:
        store = ox.Store.read_only(path)
        graphs = sorted((g.value, None) for g in store.named_graphs())
        del store
    except OSError as exc:
        raise UsageError(f"--store {path}: cannot open it as a pyoxigraph store: {_one_line(exc)}") from None
    return Dataset(os.path.abspath(path), f"the store {path}", graphs)


# ---------------------------------------------------------------------------------------------
# The query page
# ---------------------------------------------------------------------------------------------

DEFAULT_QUERY = """SELECT ?graph (COUNT(*) AS ?triples) WHERE {
  GRAPH ?graph { ?s ?p ?o }
}
GROUP BY ?graph
ORDER BY ?graph
"""


@dataclass
class Example:
    name: str
    question: str
    text: str


def load_examples(directory: Path | None = None) -> list[Example]:
    """The informaticians' queries (queries/*.rq) with the question in their header comment."""
    if directory is None:
        from .kb import PROJECT_ROOT

        directory = PROJECT_ROOT / "queries"
    out = []
    for path in sorted(Path(directory).glob("*.rq")):
        try:
            text = path.read_text(encoding="utf-8")
        except OSError:
            continue
        comment = []
        for line in text.splitlines():
            if not line.startswith("#"):
                break
            comment.append(line.lstrip("#").strip())
        question = " ".join(comment)
        question = question.split("Question:", 1)[1].strip() if "Question:" in question else question
        out.append(Example(path.name, question, text))
    return out


def _short(iri: str) -> str:
    matches = [(len(ns), prefix, ns) for prefix, ns in PREFIXES.items() if iri.startswith(ns) and iri != ns]
    if matches:
        _, prefix, ns = max(matches)
        return f"{prefix}:{iri[len(ns):]}"
    return f"<{iri}>"


_CSS = """body{font:15px/1.45 system-ui,sans-serif;margin:1.5em auto;max-width:62em;padding:0 1em;color:#222}
textarea{width:100%;font:13px/1.4 ui-monospace,monospace;box-sizing:border-box}
pre{background:#f5f5f5;padding:.6em;overflow:auto;font-size:12px}
.ex{border-top:1px solid #ddd;margin-top:1em}.ex h3{margin:.6em 0 .2em;font-size:15px}
.muted{color:#666}code{font-size:13px}button{font-size:15px;padding:.2em 1.2em}"""


def render_page(server: "SparqlServer", query: str | None = None) -> bytes:
    e = html.escape
    ds = server.dataset
    shown = 40
    graphs = "".join(
        f"<li><code>{e(_short(g))}</code>{'' if n is None else f' <span class=muted>({n} triples)</span>'}</li>"
        for g, n in ds.graphs[:shown])
    if len(ds.graphs) > shown:
        graphs += f"<li class=muted>and {len(ds.graphs) - shown} more</li>"
    options = "".join(f"<option value={f}>{f}</option>" for f in FORMAT_CHOICES)
    examples = []
    for ex in server.examples:
        load = "/?query=" + quote(ex.text, safe="") + "#editor"
        run = "/sparql?query=" + quote(ex.text, safe="")
        examples.append(
            f'<div class=ex><h3>{e(ex.name)}</h3><p>{e(ex.question)}</p>'
            f'<p><a href="{e(load)}">Load into the editor</a> · <a href="{e(run)}">Run</a></p>'
            f"<pre>{e(ex.text)}</pre></div>")
    prefixes = " ".join(f"<code>{e(p)}:</code>" for p in PREFIXES)
    page = f"""<!DOCTYPE html>
<html lang=en><head><meta charset=utf-8><title>b12kg SPARQL endpoint</title>
<meta name=viewport content="width=device-width,initial-scale=1"><style>{_CSS}</style></head>
<body><h1>b12kg SPARQL endpoint</h1>
<p>Serving {e(ds.description)}. Read-only SPARQL 1.1 Protocol at <code>/sparql</code> (GET or POST).
The default graph is the union of the named graphs:</p><ul>{graphs}</ul>
<p class=muted>Time limit {server.timeout:g} s per query (503 beyond it); results over {server.max_results} rows
or triples are refused (413), not truncated: add a <code>LIMIT</code>. Updates and <code>SERVICE</code> are refused (403).
Predeclared prefixes: {prefixes}.</p>
<form id=editor method=get action="/sparql">
<textarea name=query rows=14 spellcheck=false>{e(query or DEFAULT_QUERY)}</textarea>
<p><label>Format <select name=format><option value="">(from the Accept header)</option>{options}</select></label>
<button type=submit>Run</button></p></form>
<h2>Example queries</h2>{''.join(examples) or '<p class=muted>none found</p>'}
</body></html>
"""
    return page.encode("utf-8")


_PAGE_CSP = ("default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; base-uri 'none'; "
             "frame-ancestors 'none'")

# ---------------------------------------------------------------------------------------------
# HTTP
# ---------------------------------------------------------------------------------------------

_LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1", "[::1]"}


def _is_loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class _DeadlineReader(io.RawIOBase):
    """The request's socket, read with an overall deadline (``handler._deadline``), not only a
    time limit per read: a client trickling a byte at a time cannot hold its thread for longer."""

    def __init__(self, handler: "Handler"):
        super().__init__()
        self._handler = handler

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        h = self._handler
        sock = h.connection
        if h._deadline is not None:
            left = h._deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("the request took too long to arrive")
            sock.settimeout(min(left, h.timeout))
        return sock.recv_into(b)


class Handler(BaseHTTPRequestHandler):
    server: "SparqlServer"
    timeout = 30  # seconds a client may take to send its request (and to take each part of the answer)
    _deadline: float | None = None  # while reading a request: when it must have arrived entirely
    _t0: float | None = None

    def setup(self):
        super().setup()
        self.rfile.close()  # the socket's own reader; reads go through the deadline instead
        self.rfile = io.BufferedReader(_DeadlineReader(self))

    def handle_one_request(self):
        self._t0 = None  # a new request on this connection (the log line of an error says so)
        self._deadline = time.monotonic() + getattr(self.server, "request_deadline", REQUEST_DEADLINE)
        super().handle_one_request()

    def _received(self) -> None:
        """The request has been read: answering it is not bound by the request deadline."""
        if self._deadline is not None:
            self._deadline = None
            try:
                self.connection.settimeout(self.timeout)
            except OSError:
                pass

    def send_error(self, code, message=None, explain=None):
        """http.server's own errors (bad request line, 414, 431, 501 …) as one line of text/plain,
        like the others, instead of its HTML page."""
        self._received()
        self.close_connection = True
        if self.request_version == "HTTP/0.9":  # an unreadable request line: answer with a status line anyway
            self.request_version = "HTTP/1.0"
        short = self.responses.get(code, ("error", ""))[0]
        text = _one_line(message or short)
        if explain and explain not in text:
            text = f"{text}: {_one_line(explain)}"
        body = (text + "\n").encode("utf-8", "replace")
        self.send_response(code)
        self.send_header("Connection", "close")
        if code >= 200 and code not in (204, 205, 304):
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.send_header("X-Content-Type-Options", "nosniff")
        self.end_headers()
        if self.command != "HEAD" and code >= 200 and code not in (204, 205, 304):
            try:
                self.wfile.write(body)
            except OSError:
                pass

    @property
    def server_version(self):  # noqa: D401
        from . import __version__

        return f"b12kg/{__version__}"

    # -- logging: one line per request -------------------------------------------------------

    def log_message(self, format, *args):  # noqa: A002 - http.server's signature
        self.server.log(f"{self.address_string()} {format % args}")

    def log_error(self, format, *args):  # noqa: A002 - the request line is logged anyway
        if format.startswith("Request timed out"):  # no answer is sent: say so in the log
            self.server.log(f"{self.address_string()} request timed out (it must arrive within "
                            f"{getattr(self.server, 'request_deadline', REQUEST_DEADLINE):g} s): connection closed")

    def log_request(self, code="-", size="-"):
        if getattr(self, "_t0", None) is None:  # http.server's own errors (bad request line…)
            self.server.log(f'{self.address_string()} "{self._clean(self.requestline)}" {code}')

    @staticmethod
    def _clean(text: str) -> str:
        text = "".join(c if c.isprintable() else "?" for c in text)
        return text if len(text) <= LOG_WIDTH else text[:LOG_WIDTH - 1] + "…"

    def _log_line(self, status: int, size: int, note: str | None) -> None:
        took = time.monotonic() - self._t0
        line = f'{self.address_string()} "{self._clean(self.requestline)}" {status} {size} {took:.3f}s'
        if note:
            line += f" - {self._clean(note)}"
        self.server.log(line)

    # -- sending ------------------------------------------------------------------------------

    def _send(self, status: int, ctype: str, body: bytes, headers: dict | None = None, *, head_only=False) -> None:
        self._received()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if not head_only:
            try:
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass
        note = body.decode("utf-8", "replace").strip() if status >= 400 and ctype.startswith("text/plain") else None
        self._log_line(status, len(body), note)

    def _error(self, status: int, message: str, headers: dict | None = None) -> None:
        self._send(status, "text/plain; charset=utf-8", (" ".join(message.split()) + "\n").encode("utf-8"), headers)

    # -- routing ------------------------------------------------------------------------------

    def _begin(self) -> str | None:
        """Common checks; returns the path, or None when a response has been sent."""
        self._t0 = time.monotonic()
        if not self.server.host_allowed(self.headers.get("Host")):
            self.close_connection = True
            self._error(403, f"unexpected Host header '{self.headers.get('Host')}' (this server answers to its "
                             "loopback address only; DNS-rebinding protection)")
            return None
        return urlsplit(self.path).path

    def do_GET(self):
        self._get(head_only=False)

    def do_HEAD(self):
        self._get(head_only=True)

    def _get(self, head_only: bool):
        path = self._begin()
        if path is None:
            return
        self._received()
        params = parse_qs(urlsplit(self.path).query, keep_blank_values=True)
        if path in ("/", "/index.html"):
            query = (params.get("query") or [None])[0]
            self._send(200, "text/html; charset=utf-8", render_page(self.server, query),
                       {"Content-Security-Policy": _PAGE_CSP}, head_only=head_only)
        elif path == "/sparql":
            if head_only:
                self._error(405, "HEAD is not supported on /sparql; use GET or POST", {"Allow": "GET, POST"})
            else:
                self._sparql(params, None)
        else:
            self._error(404, f"not found: {path} (the endpoint is /sparql, the query page /)")

    def do_POST(self):
        path = self._begin()
        if path is None:
            return
        if path != "/sparql":
            if path in ("/", "/index.html"):
                self._error(405, "POST goes to /sparql", {"Allow": "GET, HEAD"})
            else:
                self._error(404, f"not found: {path} (the endpoint is /sparql)")
            self.close_connection = True
            return
        params = parse_qs(urlsplit(self.path).query, keep_blank_values=True)
        ctype = self.headers.get_content_type()
        if ctype == "application/sparql-update":
            self.close_connection = True
            self._error(403, "this endpoint is read-only: SPARQL Update is refused")
            return
        length = self.headers.get("Content-Length")
        if length is None:
            self.close_connection = True
            self._error(411, "a POST needs a Content-Length")
            return
        try:
            n = int(length)
            if n < 0:
                raise ValueError
        except ValueError:
            self.close_connection = True
            self._error(400, f"bad Content-Length '{length}'")
            return
        if n > MAX_BODY:
            self.close_connection = True
            if n <= 16 * MAX_BODY:  # read and drop it, so that the client sees the answer
                self._discard_body(n)
            self._error(413, f"request body too large: {n} bytes (the limit is {MAX_BODY})")
            return
        body = self.rfile.read(n)
        if len(body) < n:  # the client closed its side early: never run part of a query
            self.close_connection = True
            self._error(400, f"the request body ended after {len(body)} of its {n} bytes (Content-Length)")
            return
        self._received()
        charset = (self.headers.get_content_charset() or "utf-8").lower()
        codec = _CHARSETS.get(charset)
        if codec is None:
            self.close_connection = True
            self._error(415, f"unsupported charset '{charset[:40]}': send the request body as utf-8")
            return
        try:
            text = body.decode(codec)
        except UnicodeError:
            self._error(400, f"the request body is not valid {charset}")
            return
        if ctype == "application/x-www-form-urlencoded":
            form = parse_qs(text, keep_blank_values=True)
            for k, v in form.items():
                params.setdefault(k, []).extend(v)
            self._sparql(params, None)
        elif ctype == "application/sparql-query":
            if "query" in params:
                self._error(400, "a query given both as the body and as a 'query' parameter")
                return
            self._sparql(params, text)
        else:
            self._error(415, f"unsupported Content-Type '{ctype}': use application/sparql-query or "
                             "application/x-www-form-urlencoded")

    def _discard_body(self, n: int) -> None:
        try:
            while n > 0:
                chunk = self.rfile.read(min(n, 1 << 16))
                if not chunk:
                    break
                n -= len(chunk)
        except OSError:
            pass

    def _not_allowed(self):
        path = self._begin()
        if path is None:
            return
        self.close_connection = True
        allow = "GET, POST" if path == "/sparql" else "GET, HEAD"
        self._error(405, f"method {self.command} is not allowed on {path} (this endpoint is read-only)", {"Allow": allow})

    do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_CONNECT = do_TRACE = _not_allowed

    # -- the protocol -------------------------------------------------------------------------

    def _sparql(self, params: dict, body_query: str | None) -> None:
        if "update" in params:
            self._error(403, "this endpoint is read-only: SPARQL Update is refused")
            return
        if body_query is None:
            queries = params.get("query", [])
            if not queries:
                self._error(400, "missing 'query' parameter")
                return
            if len(queries) > 1:
                self._error(400, "more than one 'query' parameter")
                return
            query = queries[0]
        else:
            query = body_query
        if len(query.encode("utf-8")) > MAX_BODY:
            self._error(413, f"query too large (the limit is {MAX_BODY} bytes)")
            return
        if not query.strip():
            self._error(400, "empty query")
            return
        info = inspect_query(query)
        if info.update:
            self._error(403, f"this endpoint is read-only: SPARQL Update ({info.update}) is refused")
            return
        if info.service:
            self._error(403, "SERVICE (federated query) is refused: this endpoint never fetches anything")
            return
        if info.error:
            self._error(400, info.error)
            return
        graphs = {}
        for name in ("default-graph-uri", "named-graph-uri"):
            values = params.get(name, [])
            for v in values:
                valid = bool(re.fullmatch(r"[A-Za-z][A-Za-z0-9+.-]*:[^\s<>\"{}|^`\\]*", v))
                if valid:
                    try:
                        ox.NamedNode(v)  # as the worker will (a%zz, a[b, a#b#c pass the pattern above)
                    except (ValueError, TypeError):
                        valid = False
                if not valid:
                    self._error(400, f"{name}: '{v[:200]}' is not an absolute IRI")
                    return
            graphs[name] = values
        fmt = next((params[k][-1] for k in ("format", "output") if params.get(k) and params[k][-1].strip()), None)
        if fmt and fmt.strip().lower() not in _RESULT_PARAM and fmt.strip().lower() not in _GRAPH_PARAM:
            self._error(400, f"format: unknown value '{fmt}' (one of {', '.join(FORMAT_CHOICES)}, or a media type)")
            return
        accept = self.headers.get("Accept")
        results_format = negotiate(accept, fmt, "results")
        graph_format = negotiate(accept, fmt, "graph")
        vary = {"Vary": "Accept"}
        if info.form in ("SELECT", "ASK") and results_format is None:
            status, ctype, body, headers = _not_acceptable("results")
            self._send(status, ctype, body, headers | vary)
            return
        if info.form in ("CONSTRUCT", "DESCRIBE") and graph_format is None:
            status, ctype, body, headers = _not_acceptable("graph")
            self._send(status, ctype, body, headers | vary)
            return
        job = {
            "query": query,
            "union": not info.has_dataset,
            "default_graph": graphs["default-graph-uri"] if any(graphs.values()) else None,
            "named_graphs": graphs["named-graph-uri"] if any(graphs.values()) else None,
            "results_format": results_format,
            "graph_format": graph_format,
            "max_results": self.server.max_results,
            "max_bytes": self.server.max_bytes,
        }
        status, ctype, body, headers = self.server.pool.run(job)
        self._send(status, ctype, body, dict(headers) | vary)


class SparqlServer(ThreadingHTTPServer):
    """The HTTP server, its dataset and its worker pool."""

    daemon_threads = True
    # the accept queue: socketserver's 5 overflows when a few dozen clients connect at once, and the
    # kernel then drops connections (the client retries a second later) or resets them
    request_queue_size = 128

    def __init__(self, address, dataset: Dataset, *, timeout: float, max_results: int, workers: int,
                 memory: int = 0, examples: list[Example] | None = None, log=None, extra_workers: int | None = None,
                 max_connections: int = MAX_CONNECTIONS, max_bytes: int = MAX_BYTES):
        self._log = log or (lambda line: print(f"b12kg serve: {line}", file=sys.stderr, flush=True))
        self.max_connections = max_connections
        self._connections = threading.BoundedSemaphore(max_connections)
        self.request_deadline = REQUEST_DEADLINE
        self.refused = 0  # connections answered 503 because max_connections were being handled
        host = address[0]
        if ":" in host:
            self.address_family = socket.AF_INET6
        try:
            super().__init__(address, Handler)
        except OSError as exc:
            raise UsageError(f"cannot listen on {host}:{address[1]}: {exc.strerror or exc}") from None
        self.dataset = dataset
        self.timeout = timeout
        self.max_results = max_results
        self.max_bytes = max_bytes
        self.examples = load_examples() if examples is None else examples
        self.loopback_only = _is_loopback(host)
        self._allowed_hosts = _LOOPBACK_NAMES | {host.lower(), f"[{host.lower()}]"}
        self.pool = WorkerPool(dataset.store_path, workers, timeout, log=self.log, memory=memory, extra=extra_workers)
        try:
            self.pool.start()
        except BaseException:
            self.server_close()
            raise
        self._closed = False

    def log(self, line: str) -> None:
        self._log(line)

    # -- one thread per connection, up to max_connections at once ------------------------------

    def process_request(self, request, client_address):
        if not self._connections.acquire(blocking=False):
            self._refuse(request, client_address)
            return
        try:
            super().process_request(request, client_address)  # starts the connection's thread
        except BaseException:
            self._connections.release()
            raise  # socketserver answers by closing the connection

    def process_request_thread(self, request, client_address):
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._connections.release()

    def handle_error(self, request, client_address):
        """An exception while handling a connection: one log line (socketserver prints a traceback)."""
        exc = sys.exc_info()[1]
        host = _host(client_address)
        self.log(f"{host} connection failed: {type(exc).__name__}: {_one_line(exc)}")

    def _refuse(self, request, client_address) -> None:
        """Answer 503 at once, without a thread, and close: all max_connections are in use."""
        self.refused += 1
        body = (f"too many connections: {self.max_connections} are being served; try again later\n").encode()
        head = (f"{Handler.protocol_version} 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n"
                f"Content-Length: {len(body)}\r\nRetry-After: 1\r\nCache-Control: no-store\r\n"
                "Connection: close\r\n\r\n").encode()
        try:
            request.setblocking(False)  # never wait on this client in the thread that accepts
            request.send(head + body)
            request.shutdown(socket.SHUT_WR)
            try:
                request.recv(1 << 16)  # what the client sent already: closing on unread data resets
            except OSError:
                pass
        except OSError:
            pass
        self.shutdown_request(request)
        host = _host(client_address)
        self.log(f"{host} 503 - too many connections ({self.max_connections} at once)")

    @property
    def port(self) -> int:
        return self.server_address[1]

    @property
    def url(self) -> str:
        host = self.server_address[0]
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.port}"

    def host_allowed(self, host_header: str | None) -> bool:
        if not self.loopback_only or host_header is None:
            return True
        host = host_header.strip().lower()
        m = re.fullmatch(r"(\[[^\]]*\]|[^:]*)(?::\d+)?", host)
        return bool(m) and m.group(1) in self._allowed_hosts

    def close(self) -> None:
        """Stop the workers, close the socket, remove a temporary store (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self.pool.close()
        self.server_close()
        self.dataset.cleanup()


def create_server(dataset: Dataset, *, bind: str = "127.0.0.1", port: int = 7878, timeout: float = 10.0,
                  max_results: int = 10000, workers: int = 2, memory: int = 2048, examples=None,
                  log=None, extra_workers: int | None = None, max_connections: int = MAX_CONNECTIONS,
                  max_bytes: int = MAX_BYTES) -> SparqlServer:
    """A ready server (workers started, socket bound); call ``serve_forever()`` then ``close()``."""
    if not timeout > 0:
        raise UsageError("--timeout must be a positive number of seconds")
    if max_results < 1:
        raise UsageError("--max-results must be at least 1")
    if workers < 1:
        raise UsageError("--workers must be at least 1")
    if extra_workers is not None and extra_workers < 0:
        raise UsageError("--extra-workers must be at least 0")
    if memory < 0 or 0 < memory < 64:
        raise UsageError("--memory must be at least 64 (MiB), or 0 for no limit")
    if not 0 <= port <= 65535:
        raise UsageError(f"--port {port}: not a port number")
    if max_connections < 1:
        raise UsageError("--max-connections must be at least 1")
    if max_bytes < 1024:
        raise UsageError("--max-bytes must be at least 1024")
    return SparqlServer((bind, port), dataset, timeout=timeout, max_results=max_results, workers=workers,
                        memory=memory, examples=examples, log=log, extra_workers=extra_workers,
                        max_connections=max_connections, max_bytes=max_bytes)


# ---------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "serve",
        help="a read-only SPARQL 1.1 endpoint over evaluated patients (or a stored graph), with a query page",
        description="Evaluate the patient files and serve the result (ontology, patient facts, inferences, "
                    "reports as named graphs; their union is the default graph) as a read-only SPARQL 1.1 "
                    "Protocol endpoint at /sparql, with a query page at /. Or serve an existing pyoxigraph "
                    "store with --store. Updates and SERVICE are refused (403); a query over --timeout is "
                    "cancelled (503); a result over --max-results rows or triples is refused (413), never "
                    "truncated.")
    p.add_argument("inputs", nargs="*", metavar="PATIENT",
                   help="patient data to evaluate: RDF files, FHIR R4 JSON, FHIR Bulk Data NDJSON, or a folder of them")
    p.add_argument("--input-format", default=None,
                   help="force the input format (turtle, nt, jsonld, xml, fhir, ndjson); by default it is detected")
    p.add_argument("--store", metavar="DIR", default=None,
                   help="serve this on-disk pyoxigraph store (opened read-only) instead of evaluating patient files")
    p.add_argument("--as-of", dest="as_of", default=None, help="evaluation date YYYY-MM-DD (default: today)")
    p.add_argument("--bind", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    p.add_argument("--port", type=int, default=7878, help="port (default: 7878; 0 picks a free one)")
    p.add_argument("--timeout", type=float, default=10.0, help="time limit per query in seconds (default: 10)")
    p.add_argument("--max-results", type=int, default=10000,
                   help="most rows (SELECT) or triples (CONSTRUCT/DESCRIBE) in a result; larger results are "
                        "refused with 413 (default: 10000)")
    p.add_argument("--workers", type=int, default=2, help="query worker processes (default: 2)")
    p.add_argument("--extra-workers", type=int, default=None, metavar="N",
                   help="worker processes added while queries run for more than a second, so that up to N slow "
                        "queries at once do not hold up the others (default: as many as --workers; 0: none)")
    p.add_argument("--memory", type=int, default=2048, metavar="MIB",
                   help="memory one query may take in its worker, in MiB (address space beyond the worker's "
                        "own); a query beyond it is stopped with 503 (default: 2048; 0: no limit)")
    p.add_argument("--max-bytes", type=int, default=MAX_BYTES, metavar="BYTES",
                   help=f"largest response body in bytes; a larger result is refused with 413, never truncated "
                        f"(default: {MAX_BYTES}, 16 MiB)")
    p.add_argument("--max-connections", type=int, default=MAX_CONNECTIONS, metavar="N",
                   help=f"connections served at once; more are answered 503 at once (default: {MAX_CONNECTIONS})")
    p.set_defaults(handler=run)
    return p


def build_dataset(args) -> Dataset:
    if args.store and args.inputs:
        raise UsageError("serve: give patient files or --store DIR, not both")
    if args.store:
        if args.as_of:
            raise UsageError("serve: --as-of applies to patient files; a --store was evaluated already")
        return dataset_from_directory(args.store)
    if not args.inputs:
        raise UsageError("serve: give patient files to evaluate, or --store DIR")
    from .api import recommend

    report = recommend(args.inputs, args.as_of, input_format=getattr(args, "input_format", None))
    return dataset_from_report(report, args.inputs)


def dataset_from_report(report, inputs=()) -> Dataset:
    n = len(report.patients)
    files = len(list(inputs))
    what = f"{n} patient{'s' if n != 1 else ''}"
    if files:
        what += f" from {files} input{'s' if files != 1 else ''}"
    return dataset_from_store(report.store, f"{what}, evaluated as of {report.evaluation.as_of.isoformat()}")


def _interrupt(signum, frame):
    raise KeyboardInterrupt  # while starting: unwind, so that temporary files and workers go too


def run(args) -> int:
    previous = {s: signal.signal(s, _interrupt) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        return _run(args)
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def _run(args) -> int:
    dataset = build_dataset(args)
    try:
        server = create_server(dataset, bind=args.bind, port=args.port, timeout=args.timeout,
                               max_results=args.max_results, workers=args.workers, memory=args.memory,
                               extra_workers=getattr(args, "extra_workers", None),
                               max_connections=getattr(args, "max_connections", MAX_CONNECTIONS),
                               max_bytes=getattr(args, "max_bytes", MAX_BYTES))
    except BaseException:
        dataset.cleanup()
        raise

    def stop(signum, frame):
        server.log(f"{signal.Signals(signum).name}: stopping")
        threading.Thread(target=server.shutdown, name="b12kg-serve-stop", daemon=True).start()

    try:
        for s in (signal.SIGTERM, signal.SIGINT):
            signal.signal(s, stop)
        if not server.loopback_only:
            server.log(f"warning: listening on {args.bind}, reachable from other machines; there is no "
                       "authentication and the data may be patient data")
        isolation = ("workers have no network access" if server.pool.isolated
                     else "SERVICE is refused by the query check")
        server.log(f"serving {dataset.description}; SPARQL endpoint {server.url}/sparql, query page {server.url}/ "
                   f"({args.workers} workers and up to {server.pool.extra} more for slow queries, "
                   f"{args.timeout:g} s time limit, {args.max_results} results at most, "
                   f"{isolation})")
        server.serve_forever(poll_interval=0.25)
    finally:
        server.close()
    server.log("stopped")
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m reasoner.serve …`` (the same as ``b12kg serve …``)."""
    from .cli import _Parser

    parser = _Parser(prog="b12kg")
    add_parser(parser.add_subparsers(dest="command", parser_class=_Parser))
    try:
        args = parser.parse_args(["serve", *(sys.argv[1:] if argv is None else argv)])
        return args.handler(args)
    except B12kgError as exc:
        print(f"b12kg: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("b12kg: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
