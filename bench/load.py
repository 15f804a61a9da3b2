"""Load and attack run for ``b12kg serve`` (not part of the test suite's pass/fail; a short version is
tests/test_serve_load.py).

    python bench/load.py --clients 16 --seconds 60                 # over examples/*.ttl, evaluated
    python bench/load.py --clients 16 --seconds 60 --synth 2000    # over a synthetic cohort in a store
    python bench/load.py --store DIR                                # over an existing store
    python bench/load.py --clients 4 --seconds 5 --json out.json   # the figures as JSON too ('-': stdout)

It starts ``b12kg serve`` itself (``python -m reasoner serve``) on 127.0.0.1 on a free port, waits
for it, then runs for the duration:

* ``--clients`` client threads, each sending one request after the other (a new connection each
  time, as the server speaks HTTP/1.0), drawn at random (``--seed``) from a fixed mix: every
  ``queries/*.rq`` example by GET, form POST and direct POST with a JSON, XML, CSV or TSV
  ``Accept``; CONSTRUCT and DESCRIBE queries as Turtle, JSON-LD, N-Triples or RDF/XML; ASK; the
  query page; and, at ``--hostile`` share, requests that must be refused: SPARQL Update (POST
  ``application/sparql-update``, ``update=`` form, an update sent as a query), ``LOAD <http://…>``,
  ``SERVICE`` federated queries, a syntax error, results over the result limit. Client 0 begins
  with one of each hostile request, so that even a short run sends them all;
* ``--attackers`` more threads that only send very expensive queries, back to back and in turn: a
  cross product of all triples, which must be cut off at the time limit, and a sort of one, which
  must be stopped at the memory limit, so that this many expensive queries run at almost every
  moment. (Were they drawn at a share of the clients' requests instead, their number at once would
  have no bound: each holds its client for the whole time limit.)

Every request has an expected outcome (``build_templates``: the ``expect`` of each); an error is
an outcome that differs from it (for a 200: the content type asked for, a body that parses, as many
rows or triples as the reference answer fetched before the run), a connection failure or a client
timeout. The RSS of the server process and of its worker processes is sampled every second from
/proc. Prints requests per outcome, errors, latency percentiles per group, throughput, memory,
and exits 1 if any error happened (or the server leaked a worker, or did not stop cleanly).
"""
from __future__ import annotations

import argparse
import bisect
import csv
import http.client
import io
import json
import math
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import xml.etree.ElementTree as ET
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parents[1]
AS_OF = "2026-06-01"
HOST = "127.0.0.1"  # the only address this tool ever talks to
UNREACHABLE = "http://127.0.0.1:1/"  # what the hostile LOAD and SERVICE requests name
SRX = "{http://www.w3.org/2005/sparql-results#}"

# ---------------------------------------------------------------------------------------------
# The requests
# ---------------------------------------------------------------------------------------------

RESULT_ACCEPT = {"json": "application/sparql-results+json", "xml": "application/sparql-results+xml",
                 "csv": "text/csv", "tsv": "text/tab-separated-values"}
GRAPH_ACCEPT = {"turtle": "text/turtle", "jsonld": "application/ld+json", "nt": "application/n-triples",
                "rdfxml": "application/rdf+xml"}

# outcome classes: what a response is, from its status and first line
OK, BAD_QUERY, REFUSED, TOO_LARGE, TIME_LIMIT, MEMORY_LIMIT = (
    "200 ok", "400 bad query", "403 refused", "413 too large", "503 time limit", "503 memory limit")
GOOD, REFUSAL, CUT_OFF = "good", "refused", "cut-off"  # latency groups


@dataclass(frozen=True)
class Template:
    kind: str  # the line of the mix it belongs to (TEMPLATES' keys)
    name: str  # e.g. "violations.rq POST-form csv"
    expect: str  # the outcome class it must get
    method: str
    path: str
    body: bytes | None = None
    headers: tuple = ()
    fmt: str | None = None  # for a 200: the format its body must parse as
    query: str | None = None  # for a 200: the query whose reference answer it must match
    contains: bytes = b""  # for an error: text its one-line message must contain

    @property
    def group(self) -> str:
        return GOOD if self.expect == OK else CUT_OFF if self.expect.startswith("503") else REFUSAL


def sparql(kind, name, query, expect, *, method="GET", accept=None, fmt=None, contains=b"", reference=True):
    """A request for ``query`` by GET, POST-form or POST-direct."""
    headers = {"Accept": accept} if accept else {}
    if method == "GET":
        path, body = "/sparql?" + urlencode({"query": query}), None
    elif method == "POST-form":
        path, body = "/sparql", urlencode({"query": query}).encode()
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    elif method == "POST-direct":
        path, body = "/sparql", query.encode()
        headers["Content-Type"] = "application/sparql-query"
    else:
        raise ValueError(method)
    return Template(kind, f"{name} {method}" + (f" {fmt}" if fmt else ""), expect, "GET" if method == "GET" else "POST",
                    path, body, tuple(headers.items()), fmt, query if expect == OK and reference else None, contains)


B12 = "PREFIX b12: <https://w3id.org/b12kg/>\n"
CONSTRUCTS = {
    "construct-patients": B12 + "CONSTRUCT { ?p a b12:Patient ; b12:birthDate ?d } "
                               "WHERE { ?p a b12:Patient ; b12:birthDate ?d }",
    "construct-statements": B12 + "CONSTRUCT { ?st rdfs:label ?l ; b12:category ?c } "
                                 "WHERE { GRAPH b12g:ontology { ?st rdfs:label ?l ; b12:category ?c } }",
}
ASK = B12 + "ASK { ?p a b12:Patient }"
HUGE_SELECT = "SELECT ?a ?d WHERE { ?a ?b ?c . ?d ?e ?f }"  # triples squared rows: over any result limit
HUGE_CONSTRUCT = "CONSTRUCT { ?a <urn:b12kg:load:x> ?d } WHERE { ?a ?b ?c . ?d ?e ?f }"
EXPENSIVE = "SELECT (COUNT(*) AS ?n) WHERE { ?a ?b ?c . ?d ?e ?f . ?g ?h ?i }"  # cut off at the time limit
MEMORY_HOG = "SELECT * WHERE { ?a ?b ?c . ?d ?e ?f } ORDER BY ?f ?c"  # stopped at the memory limit
INSERT = "INSERT DATA { GRAPH <https://w3id.org/b12kg/graph/data> { <urn:b12kg:load:a> <urn:b12kg:load:b> <urn:b12kg:load:c> } }"


def examples() -> list[tuple[str, str]]:
    return [(p.name, p.read_text(encoding="utf-8")) for p in sorted((ROOT / "queries").glob("*.rq"))]


def build_templates(describe_iri: str | None) -> dict[str, list[Template]]:
    """Every request of the mix, by kind."""
    t: dict[str, list[Template]] = defaultdict(list)
    methods = ("GET", "POST-form", "POST-direct")
    for name, text in examples():
        for method in methods:
            for fmt, accept in RESULT_ACCEPT.items():
                t["example"].append(sparql("example", name, text, OK, method=method, accept=accept, fmt=fmt))
    graph_queries = dict(CONSTRUCTS)
    if describe_iri:
        graph_queries["describe-patient"] = f"DESCRIBE <{describe_iri}>"
    for name, text in graph_queries.items():
        for method in ("GET", "POST-direct"):
            for fmt, accept in GRAPH_ACCEPT.items():
                t["construct"].append(sparql("construct", name, text, OK, method=method, accept=accept, fmt=fmt))
    for fmt in ("json", "xml"):
        t["ask"].append(sparql("ask", "ask-patient", ASK, OK, accept=RESULT_ACCEPT[fmt], fmt="bool-" + fmt))
    t["page"].append(Template("page", "query page", OK, "GET", "/", fmt="html"))
    read_only = b"read-only"
    t["update"] += [
        Template("update", "INSERT DATA POST sparql-update", REFUSED, "POST", "/sparql", INSERT.encode(),
                 (("Content-Type", "application/sparql-update"),), contains=read_only),
        Template("update", "DELETE WHERE POST form update=", REFUSED, "POST", "/sparql",
                 urlencode({"update": "DELETE WHERE { ?s ?p ?o }"}).encode(),
                 (("Content-Type", "application/x-www-form-urlencoded"),), contains=read_only),
        sparql("update", "INSERT DATA as a query", INSERT, REFUSED, contains=read_only),
        sparql("update", "DROP ALL as a query", "DROP ALL", REFUSED, method="POST-direct", contains=read_only),
    ]
    t["load"] += [
        sparql("load", "LOAD as a query", f"LOAD <{UNREACHABLE}data.ttl>", REFUSED, contains=read_only),
        Template("load", "LOAD POST sparql-update", REFUSED, "POST", "/sparql",
                 f"LOAD <{UNREACHABLE}data.ttl> INTO GRAPH <urn:b12kg:load:g>".encode(),
                 (("Content-Type", "application/sparql-update"),), contains=read_only),
    ]
    t["service"] += [
        sparql("service", "SERVICE", f"SELECT * WHERE {{ SERVICE <{UNREACHABLE}> {{ ?s ?p ?o }} }}", REFUSED,
               contains=b"SERVICE"),
        sparql("service", "SERVICE SILENT", f"SELECT * WHERE {{ ?s ?p ?o OPTIONAL {{ SERVICE SILENT <{UNREACHABLE}sparql> "
               "{ ?s ?p ?o } } } LIMIT 1", REFUSED, method="POST-form", contains=b"SERVICE"),
        sparql("service", "SERVICE:prefixed", f"PREFIX : <{UNREACHABLE}> SELECT * WHERE {{ SERVICE:x {{ ?s ?p ?o }} }}",
               REFUSED, method="POST-direct", contains=b"SERVICE"),
    ]
    t["syntax"] += [
        sparql("syntax", "syntax error", "SELECT * WHERE { ?s ?p }", BAD_QUERY, contains=b"SPARQL syntax error"),
        sparql("syntax", "unterminated string", "SELECT * WHERE { ?s ?p 'open }", BAD_QUERY, method="POST-direct",
               contains=b"SPARQL syntax error"),
    ]
    t["huge"] += [
        sparql("huge", "huge SELECT", HUGE_SELECT, TOO_LARGE, accept=RESULT_ACCEPT["json"], contains=b"result too large"),
        sparql("huge", "huge CONSTRUCT", HUGE_CONSTRUCT, TOO_LARGE, method="POST-direct", accept=GRAPH_ACCEPT["turtle"],
               contains=b"result too large"),
    ]
    t["time-limit"].append(sparql("time-limit", "cross product COUNT", EXPENSIVE, TIME_LIMIT, contains=b"time limit"))
    t["memory-limit"].append(sparql("memory-limit", "cross product ORDER BY", MEMORY_HOG, MEMORY_LIMIT,
                                    contains=b"more memory"))
    return dict(t)


# The mix of the clients, in parts per hundred: good requests, then (at the --hostile share) the
# refused ones. The attackers draw from ATTACK.
GOOD_MIX = {"example": 70, "construct": 20, "ask": 5, "page": 5}
HOSTILE_MIX = {"update": 25, "load": 15, "service": 25, "syntax": 15, "huge": 20}
ATTACK_MIX = ("time-limit", "memory-limit")  # in turn


def mix_weights(hostile: float) -> dict[str, float]:
    good = {k: (1 - hostile) * v / sum(GOOD_MIX.values()) for k, v in GOOD_MIX.items()}
    bad = {k: hostile * v / sum(HOSTILE_MIX.values()) for k, v in HOSTILE_MIX.items()}
    return {k: w for k, w in (good | bad).items() if w > 0}


# ---------------------------------------------------------------------------------------------
# One request, and whether its answer is the expected one
# ---------------------------------------------------------------------------------------------

@dataclass
class Outcome:
    name: str
    kind: str
    group: str
    expect: str
    observed: str
    start: float
    end: float
    error: str | None = None  # None: as expected
    client: int = -1

    @property
    def latency(self) -> float:
        return self.end - self.start


def outcome_class(status: int, body: bytes) -> str:
    if status == 200:
        return OK
    if status == 503:
        if b"time limit" in body:
            return TIME_LIMIT
        if b"more memory" in body:
            return MEMORY_LIMIT
        if b"busy" in body:
            return "503 busy"
    return {400: BAD_QUERY, 403: REFUSED, 413: TOO_LARGE}.get(status, f"{status} other")


def _rdf_format(fmt):
    import pyoxigraph as ox

    return {"turtle": ox.RdfFormat.TURTLE, "jsonld": ox.RdfFormat.JSON_LD, "nt": ox.RdfFormat.N_TRIPLES,
            "rdfxml": ox.RdfFormat.RDF_XML}[fmt]


def count_body(fmt: str, body: bytes):
    """The number of rows or triples (or the boolean) in a 200 body; raises when it does not parse."""
    if fmt == "json":
        return len(json.loads(body)["results"]["bindings"])
    if fmt == "xml":
        root = ET.fromstring(body)
        return len(root.findall(f"{SRX}results/{SRX}result"))
    if fmt == "csv":
        rows = list(csv.reader(io.StringIO(body.decode("utf-8"), newline="")))
        if not rows:
            raise ValueError("no header row")
        return len(rows) - 1
    if fmt == "tsv":
        lines = body.decode("utf-8").split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        if not lines or not lines[0].startswith("?"):
            raise ValueError("no header row")
        return len(lines) - 1
    if fmt == "bool-json":
        return json.loads(body)["boolean"]
    if fmt == "bool-xml":
        return ET.fromstring(body).find(f"{SRX}boolean").text.strip() == "true"
    if fmt == "html":
        if b"b12kg SPARQL endpoint" not in body:
            raise ValueError("not the query page")
        return None
    import pyoxigraph as ox

    return sum(1 for _ in ox.parse(body, format=_rdf_format(fmt)))


def expected_type(t: Template) -> str:
    if t.fmt == "html":
        return "text/html"
    if t.fmt.startswith("bool-"):
        return RESULT_ACCEPT[t.fmt[5:]]
    return (RESULT_ACCEPT | GRAPH_ACCEPT)[t.fmt]


def fetch(port: int, t: Template, timeout: float):
    """(status, headers, body, start, end) of one request on a new connection; raises on failure."""
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    start = time.monotonic()
    try:
        conn.request(t.method, t.path, body=t.body, headers=dict(t.headers))
        resp = conn.getresponse()
        body = resp.read()
        return resp.status, resp.headers, body, start, time.monotonic()
    finally:
        conn.close()


def check(t: Template, status: int, headers, body: bytes, references: dict) -> tuple[str, str | None]:
    """(observed class, error or None)."""
    observed = outcome_class(status, body)
    if observed != t.expect:
        first = body.decode("utf-8", "replace").strip().splitlines()[:1]
        return observed, f"expected {t.expect}, got {status}: {first[0][:200] if first else ''}"
    ctype = (headers.get("Content-Type") or "").split(";")[0].strip().lower()
    if t.expect != OK:
        if ctype != "text/plain":
            return observed, f"an error answer as {ctype!r}, not text/plain"
        if t.contains not in body:
            return observed, f"the message lacks {t.contains.decode()!r}: {body[:200]!r}"
        if len(body.decode("utf-8", "replace").strip().splitlines()) != 1:
            return observed, "an error message of more than one line"
        if t.expect == TOO_LARGE and not headers.get("X-B12kg-Max-Results"):
            return observed, "413 without X-B12kg-Max-Results"
        return observed, None
    if ctype != expected_type(t):
        return observed, f"Content-Type {ctype!r}, asked for {expected_type(t)!r}"
    try:
        n = count_body(t.fmt, body)
    except Exception as exc:  # noqa: BLE001 - any parse failure is the error reported
        return observed, f"the {t.fmt} body does not parse: {type(exc).__name__}: {str(exc)[:200]}"
    if t.query is not None:
        want = references.get(t.query)
        if n != want:
            return observed, f"{n} rows/triples, the reference answer has {want}"
        count = headers.get("X-B12kg-Result-Count")
        if not t.fmt.startswith("bool-") and count is not None and int(count) != want:
            return observed, f"X-B12kg-Result-Count {count}, the reference answer has {want}"
    return observed, None


def attempt(port: int, t: Template, references: dict, timeout: float, client: int = -1) -> Outcome:
    start = time.monotonic()
    try:
        status, headers, body, start, end = fetch(port, t, timeout)
    except TimeoutError as exc:
        return Outcome(t.name, t.kind, t.group, t.expect, "client timeout", start, time.monotonic(),
                       f"client timeout after {timeout:g} s ({exc})", client)
    except (OSError, http.client.HTTPException) as exc:
        return Outcome(t.name, t.kind, t.group, t.expect, "connection failure", start, time.monotonic(),
                       f"connection failure: {type(exc).__name__}: {exc}", client)
    observed, error = check(t, status, headers, body, references)
    return Outcome(t.name, t.kind, t.group, t.expect, observed, start, end, error, client)


# ---------------------------------------------------------------------------------------------
# The server under test, and its memory
# ---------------------------------------------------------------------------------------------

def _children_map() -> dict[int, list[int]]:
    out: dict[int, list[int]] = defaultdict(list)
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2:].split()
        out[int(fields[1])].append(int(name))
    return out


def descendants(pid: int) -> list[int]:
    tree, out, todo = _children_map(), [], [pid]
    while todo:
        for child in tree.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS (KiB) and Threads of a process ({} when it is gone)."""
    out = {}
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key in ("VmRSS", "Threads"):
                    out[key] = int(value.split()[0])
    except (OSError, ValueError, IndexError):
        return {}
    return out


def is_worker(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return b"spawn_main" in f.read()
    except OSError:
        return False


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
        return stat[stat.rfind(b")") + 2:stat.rfind(b")") + 3] != b"Z"
    except OSError:
        return False


def tcp_counters() -> dict[str, int]:
    """TcpExt ListenOverflows and ListenDrops of this network namespace (connections dropped because
    a listening socket's accept queue was full; the client retries the SYN a second later)."""
    try:
        with open("/proc/net/netstat", encoding="ascii") as f:
            lines = f.read().splitlines()
    except OSError:
        return {}
    for names, values in zip(lines[::2], lines[1::2]):
        if names.startswith("TcpExt:"):
            table = dict(zip(names.split()[1:], values.split()[1:]))
            return {k: int(table[k]) for k in ("ListenOverflows", "ListenDrops") if k in table}
    return {}


@dataclass
class Sample:
    t: float  # seconds since the clients started (negative: before)
    server_mib: float  # the HTTP server process
    workers_mib: float  # all its descendants (worker processes, multiprocessing's resource tracker)
    workers: int  # worker processes alive
    threads: int  # threads of the server process
    fds: int  # open file descriptors of the server process


def sample(pid: int, t0: float) -> Sample | None:
    own = proc_status(pid)
    if not own:
        return None
    kids = descendants(pid)
    rss = [proc_status(k).get("VmRSS", 0) for k in kids]
    try:
        fds = len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        fds = -1
    return Sample(round(time.monotonic() - t0, 2), own.get("VmRSS", 0) / 1024, sum(rss) / 1024,
                  sum(is_worker(k) for k in kids), own.get("Threads", 0), fds)


class Server:
    """``b12kg serve`` in a child process, on 127.0.0.1 and a free port, its log in a file."""

    def __init__(self, serve_args: list[str], log_path: Path, startup_timeout: float = 600.0):
        self.log_path = log_path
        self.log = open(log_path, "w", encoding="utf-8")  # noqa: SIM115 - open for the server's lifetime
        cmd = [sys.executable, "-m", "reasoner", "serve", "--bind", HOST, "--port", "0", *serve_args]
        self.command = cmd
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self.log, cwd=ROOT)
        self.pid = self.proc.pid
        self.port = None
        deadline = time.monotonic() + startup_timeout
        try:
            while self.port is None:
                m = re.search(r"SPARQL endpoint http://127\.0\.0\.1:(\d+)/sparql", self.log_text())
                if m:
                    self.port = int(m.group(1))
                elif self.proc.poll() is not None:
                    raise RuntimeError(f"b12kg serve exited with {self.proc.returncode} before listening:\n"
                                       + self.log_text()[-2000:])
                elif time.monotonic() > deadline:
                    raise RuntimeError(f"b12kg serve did not listen within {startup_timeout:g} s")
                else:
                    time.sleep(0.1)
        except BaseException:
            self.stop()
            raise

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""

    def stop(self, timeout: float = 30.0) -> dict:
        """SIGTERM; the exit code, how long it took, and which of its processes outlived it."""
        kids = descendants(self.pid) if self.proc.poll() is None else []
        t = time.monotonic()
        code = self.proc.poll()
        if code is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                code = self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                code = f"killed after {timeout:g} s"
                self.proc.wait()
        took = time.monotonic() - t
        deadline = time.monotonic() + 5
        while any(alive(k) for k in kids) and time.monotonic() < deadline:
            time.sleep(0.1)
        left = [k for k in kids if alive(k)]
        self.log.close()
        return {"exit_code": code, "seconds": round(took, 2), "processes_left": left}


# ---------------------------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------------------------

def percentiles(xs: list[float]) -> dict:
    if not xs:
        return {"n": 0}
    xs = sorted(xs)

    def rank(p):  # nearest rank
        return xs[max(0, min(len(xs) - 1, math.ceil(p * len(xs)) - 1))]

    return {"n": len(xs), "min": xs[0], "p50": rank(0.50), "p90": rank(0.90), "p99": rank(0.99), "max": xs[-1],
            "mean": sum(xs) / len(xs)}


def slope_per_minute(points: list[tuple[float, float]]) -> float | None:
    if len(points) < 3:
        return None
    n = len(points)
    mx = sum(p[0] for p in points) / n
    my = sum(p[1] for p in points) / n
    var = sum((p[0] - mx) ** 2 for p in points)
    if var == 0:
        return None
    return 60 * sum((p[0] - mx) * (p[1] - my) for p in points) / var


@dataclass
class Config:
    clients: int = 16
    attackers: int = 2
    seconds: float = 60.0
    seed: int = 1
    hostile: float = 0.2
    query_timeout: float = 5.0
    query_memory: int = 256
    max_results: int = 10000
    workers: int = 2
    extra_workers: int | None = None  # the server's default
    client_timeout: float = 0.0  # 0: query_timeout * 3 + 30
    inputs: list = field(default_factory=list)
    store: str | None = None
    as_of: str = AS_OF
    log: str | None = None

    def timeout(self) -> float:
        return self.client_timeout or self.query_timeout * 3 + 30


def references(port: int, templates: dict[str, list[Template]], timeout: float, max_results: int) -> dict:
    """The reference answer (rows, triples or boolean) of every query of a good request, as JSON/N-Triples."""
    refs: dict = {}
    for kind in ("example", "construct", "ask"):
        for t in templates.get(kind, []):
            if t.query in refs:
                continue
            fmt = "json" if kind == "example" else "nt" if kind == "construct" else "bool-json"
            probe = sparql(kind, t.name, t.query, OK, accept=(RESULT_ACCEPT | GRAPH_ACCEPT)[fmt.replace("bool-", "")],
                           fmt=fmt, reference=False)
            status, _, body, _, _ = fetch(port, probe, timeout)
            if status != 200:
                hint = " (raise --max-results)" if status == 413 else ""
                raise RuntimeError(f"the reference answer of {t.name.split()[0]} failed with {status}{hint}: "
                                   f"{body[:200].decode('utf-8', 'replace')}")
            refs[t.query] = count_body(fmt, body)
    return refs


def find_patient(port: int, timeout: float) -> str | None:
    q = B12 + "SELECT ?p WHERE { ?p a b12:Patient } ORDER BY ?p LIMIT 1"
    status, _, body, _, _ = fetch(port, sparql("probe", "probe", q, OK, accept=RESULT_ACCEPT["json"]), timeout)
    rows = json.loads(body)["results"]["bindings"] if status == 200 else []
    return rows[0]["p"]["value"] if rows else None


def run_load(cfg: Config, port: int, pid: int | None = None, progress=None) -> dict:
    """Run the clients and attackers against the server on ``port``; return the figures."""
    timeout = cfg.timeout()
    templates = build_templates(find_patient(port, timeout))
    refs = references(port, templates, timeout, cfg.max_results)
    weights = mix_weights(cfg.hostile)
    kinds, kind_weights = list(weights), list(weights.values())
    attack_kinds = [k for k in ATTACK_MIX if templates.get(k)]
    t0 = time.monotonic()
    deadline = t0 + cfg.seconds
    results: list[list[Outcome]] = [[] for _ in range(cfg.clients + cfg.attackers)]
    samples: list[Sample] = []
    stop = threading.Event()

    if pid is not None:
        s = sample(pid, t0)
        if s:
            samples.append(s)

    sweep = [t for k in HOSTILE_MIX if weights.get(k) for t in templates[k]]  # every hostile request once

    def client(i: int) -> None:
        rng = random.Random(cfg.seed * 1000 + i)
        out = results[i]
        first = list(sweep) if i == 0 else []  # client 0 begins with them, so that even a short run sends each
        while time.monotonic() < deadline:
            if first:
                t = first.pop(0)
            else:
                kind = rng.choices(kinds, kind_weights)[0]
                t = rng.choice(templates[kind])
            out.append(attempt(port, t, refs, timeout, i))

    def attacker(i: int) -> None:
        out = results[i]
        n = i - cfg.clients  # attackers take turns: one starts with the time limit, the next with the memory limit
        while time.monotonic() < deadline:
            kind = attack_kinds[n % len(attack_kinds)]
            out.append(attempt(port, templates[kind][0], refs, timeout, i))
            n += 1

    seen: set[int] = {k for k in descendants(pid) if is_worker(k)} if pid is not None else set()
    initial = set(seen)

    def sampler() -> None:
        tick = 0
        while not stop.wait(0.2):  # worker processes 5 times a second (to count the ones started), the rest every second
            seen.update(k for k in _children_map().get(pid, []) if k not in seen and is_worker(k))
            tick += 1
            if tick % 5:
                continue
            s = sample(pid, t0)
            if s:
                samples.append(s)
                if progress:
                    done = sum(len(r) for r in results)
                    errors = sum(o.error is not None for r in results for o in r)
                    progress(f"{s.t:5.0f} s  {done} requests  {errors} errors  server {s.server_mib:.0f} MiB  "
                             f"workers {s.workers} ({s.workers_mib:.0f} MiB)")

    threads = [threading.Thread(target=client, args=(i,), name=f"client-{i}", daemon=True) for i in range(cfg.clients)]
    threads += [threading.Thread(target=attacker, args=(cfg.clients + i,), name=f"attacker-{i}", daemon=True)
                for i in range(cfg.attackers)]
    watcher = threading.Thread(target=sampler, name="sampler", daemon=True) if pid is not None else None
    if watcher:
        watcher.start()
    tcp_before = tcp_counters()
    load_before = os.getloadavg()
    cpu_before = os.times()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    ended = time.monotonic()
    tcp_after = tcp_counters()
    cpu_after = os.times()
    stop.set()
    if watcher:
        watcher.join(5)
    outcomes = [o for r in results for o in r]
    figures = summarize(cfg, outcomes, samples, ended - t0, refs, templates)
    if pid is not None:
        figures["workers_started"] = len(seen - initial)  # seen at a 0.2 s sampling: a lower bound
    figures["loadavg_1min"] = {"before": load_before[0], "after": os.getloadavg()[0]}
    cpu = (cpu_after.user - cpu_before.user) + (cpu_after.system - cpu_before.system)
    figures["client_cpu_share"] = round(cpu / (ended - t0), 2)  # of one core, this process (clients' parsing)
    figures["tcp_listen_overflows"] = {k: tcp_after[k] - tcp_before.get(k, 0) for k in tcp_after}
    return figures


def overlapping_good(outcomes: list[Outcome]) -> list[int]:
    """For each cut-off request, how many good requests completed while it was running."""
    good_ends = sorted(o.end for o in outcomes if o.group == GOOD and o.error is None)
    return [bisect.bisect_left(good_ends, o.end) - bisect.bisect_right(good_ends, o.start)
            for o in outcomes if o.group == CUT_OFF]


def summarize(cfg: Config, outcomes: list[Outcome], samples: list[Sample], elapsed: float, refs, templates) -> dict:
    errors = [o for o in outcomes if o.error is not None]
    by_kind = Counter(o.kind for o in outcomes)
    by_observed = Counter(o.observed for o in outcomes)
    lat = {g: percentiles([o.latency for o in outcomes if o.group == g and o.error is None])
           for g in (GOOD, REFUSAL, CUT_OFF)}
    lat_kind = {k: percentiles([o.latency for o in outcomes if o.kind == k and o.error is None]) for k in sorted(by_kind)}
    during = overlapping_good(outcomes)
    cut_off = [o for o in outcomes if o.group == CUT_OFF]
    figures = {
        "config": asdict(cfg),
        "elapsed_s": round(elapsed, 2),
        "requests": len(outcomes),
        "throughput_rps": round(len(outcomes) / elapsed, 1) if elapsed else None,
        "good_throughput_rps": round(sum(o.group == GOOD for o in outcomes) / elapsed, 1) if elapsed else None,
        "errors": len(errors),
        "error_kinds": dict(Counter(f"{o.kind}: {o.error.split(':')[0]}" for o in errors)),
        "error_examples": [f"{o.name}: {o.error}" for o in errors[:20]],
        "by_kind": dict(sorted(by_kind.items())),
        "by_outcome": dict(sorted(by_observed.items())),
        "by_group": dict(Counter(o.group for o in outcomes)),
        "latency_s": lat,
        "latency_by_kind_s": lat_kind,
        "reference_counts": len(refs),
        "templates": sum(len(v) for v in templates.values()),
        "cut_off": {
            "requests": len(cut_off),
            "max_in_flight": max_in_flight(cut_off),
            "good_completed_during_each": percentiles([float(n) for n in during]),
            "with_no_good_completed_during": sum(1 for n in during if n == 0),
        },
    }
    if samples:
        figures["memory"] = memory_figures(samples, cfg.seconds)
    return figures


def max_in_flight(outcomes: list[Outcome]) -> int:
    events = sorted([(o.start, 1) for o in outcomes] + [(o.end, -1) for o in outcomes])
    n = best = 0
    for _, d in events:
        n += d
        best = max(best, n)
    return best


def memory_figures(samples: list[Sample], seconds: float) -> dict:
    total = [(s.t, s.server_mib + s.workers_mib) for s in samples]
    server = [(s.t, s.server_mib) for s in samples]
    run = [s for s in samples if s.t >= 0]
    n = max(1, len(run) // 10)
    first, last = run[:n] or samples[:1], run[-n:] or samples[-1:]

    def mean(xs):
        return round(sum(xs) / len(xs), 1)

    return {
        "samples": len(samples),
        "server_start_mib": round(samples[0].server_mib, 1),
        "server_peak_mib": round(max(s.server_mib for s in samples), 1),
        "server_end_mib": round(samples[-1].server_mib, 1),
        "server_first_tenth_mean_mib": mean([s.server_mib for s in first]),
        "server_last_tenth_mean_mib": mean([s.server_mib for s in last]),
        "server_slope_mib_per_min": round(slope_per_minute([p for p in server if p[0] >= 0]) or 0.0, 2),
        "total_start_mib": round(total[0][1], 1),
        "total_peak_mib": round(max(t for _, t in total), 1),
        "total_end_mib": round(total[-1][1], 1),
        "total_first_tenth_mean_mib": mean([s.server_mib + s.workers_mib for s in first]),
        "total_last_tenth_mean_mib": mean([s.server_mib + s.workers_mib for s in last]),
        "total_slope_mib_per_min": round(slope_per_minute([p for p in total if p[0] >= 0]) or 0.0, 2),
        "workers_min": min(s.workers for s in run) if run else None,
        "workers_max": max(s.workers for s in run) if run else None,
        "threads_start": samples[0].threads,
        "threads_max": max(s.threads for s in samples),
        "threads_end": samples[-1].threads,
        "fds_start": samples[0].fds,
        "fds_max": max(s.fds for s in samples),
        "fds_end": samples[-1].fds,
        "series": [asdict(s) for s in samples],
    }


def settle(pid: int, workers: int, timeout: float = 30.0) -> dict:
    """After the run: the worker processes once replacements are done, threads and fds at rest."""
    deadline = time.monotonic() + timeout
    kids: list[int] = []
    while time.monotonic() < deadline:
        kids = [k for k in descendants(pid) if is_worker(k)]
        if len(kids) == workers:
            break
        time.sleep(0.2)
    s = sample(pid, time.monotonic())
    return {"workers": len(kids), "expected_workers": workers, "server_mib": round(s.server_mib, 1) if s else None,
            "workers_mib": round(s.workers_mib, 1) if s else None, "threads": s.threads if s else None,
            "fds": s.fds if s else None}


# ---------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------

def _latency_row(label: str, p: dict) -> str:
    return f"{label} {p['n']:>6} {_ms(p['p50']):>9} {_ms(p['p90']):>9} {_ms(p['p99']):>9} {_ms(p['max']):>9}"


def _ms(x) -> str:
    return f"{x * 1000:.0f} ms" if x < 10 else f"{x:.1f} s"


def render(f: dict) -> str:
    c = f["config"]
    lines = [f"b12kg serve under load: {c['clients']} clients + {c['attackers']} attackers for {c['seconds']:g} s "
             f"(hostile share {c['hostile']:.0%}, seed {c['seed']}; server: {c['workers']} workers, "
             f"--timeout {c['query_timeout']:g}, --memory {c['query_memory']}, --max-results {c['max_results']}"
             + (f", --extra-workers {c['extra_workers']}" if c.get("extra_workers") is not None else "") + ")"]
    if f.get("server"):
        lines.append(f"data: {f['server']['description']}")
    lines.append(f"requests: {f['requests']} in {f['elapsed_s']:.1f} s = {f['throughput_rps']:.1f}/s "
                 f"(good ones {f['good_throughput_rps']:.1f}/s); errors: {f['errors']}")
    if "client_cpu_share" in f:
        lines.append(f"load generator CPU: {f['client_cpu_share']:.2f} of a core; machine load average (1 min) "
                     f"{f['loadavg_1min']['before']:.1f} before, {f['loadavg_1min']['after']:.1f} after "
                     f"({os.cpu_count()} cores)")
    lines.append("by kind:    " + ", ".join(f"{k} {v}" for k, v in f["by_kind"].items()))
    lines.append("by outcome: " + ", ".join(f"{k} {v}" for k, v in f["by_outcome"].items()))
    lines.append("latency (as expected):   n       p50       p90       p99       max")
    for g, p in f["latency_s"].items():
        if p["n"]:
            lines.append(_latency_row(f"  {g:<19}", p))
    for k, p in f["latency_by_kind_s"].items():
        if p["n"]:
            lines.append(_latency_row(f"    {k:<17}", p))
    co = f["cut_off"]
    if co["requests"]:
        g = co["good_completed_during_each"]
        lines.append(f"cut-off queries: {co['requests']} (at most {co['max_in_flight']} at once); good requests "
                     f"completed while each ran: min {g['min']:.0f}, median {g['p50']:.0f}; "
                     f"cut-off queries during which none completed: {co['with_no_good_completed_during']}")
    m = f.get("memory")
    if m:
        lines.append(f"memory (RSS, {m['samples']} samples): server process start {m['server_start_mib']:.0f} MiB, "
                     f"peak {m['server_peak_mib']:.0f}, end {m['server_end_mib']:.0f} (first/last tenth "
                     f"{m['server_first_tenth_mean_mib']:.0f}/{m['server_last_tenth_mean_mib']:.0f}, "
                     f"trend {m['server_slope_mib_per_min']:+.1f} MiB/min)")
        lines.append(f"  with workers: start {m['total_start_mib']:.0f} MiB, peak {m['total_peak_mib']:.0f}, end "
                     f"{m['total_end_mib']:.0f} (first/last tenth {m['total_first_tenth_mean_mib']:.0f}/"
                     f"{m['total_last_tenth_mean_mib']:.0f}, trend {m['total_slope_mib_per_min']:+.1f} MiB/min); "
                     f"worker processes {m['workers_min']}-{m['workers_max']}; server threads "
                     f"{m['threads_start']}/{m['threads_max']}/{m['threads_end']}, fds {m['fds_start']}/"
                     f"{m['fds_max']}/{m['fds_end']} (start/max/end)")
    if "workers_started" in f:
        lines.append(f"worker processes started during the run (replacements, extra ones; seen every 0.2 s): "
                     f"{f['workers_started']}")
    if f.get("tcp_listen_overflows"):
        lines.append("accept queue overflows during the run (this network namespace): "
                     + ", ".join(f"{k} {v}" for k, v in f["tcp_listen_overflows"].items()))
    a = f.get("after")
    if a:
        lines.append(f"after the run: answers {a['answers']}; worker processes {a['workers']} (expected "
                     f"{a['expected_workers']}) with {a['workers_mib']} MiB; server {a['server_mib']} MiB, threads "
                     f"{a['threads']}, fds {a['fds']}")
    st = f.get("stop")
    if st:
        lines.append(f"stop (SIGTERM): exit code {st['exit_code']} in {st['seconds']} s; processes left "
                     f"{st['processes_left'] or 'none'}; tracebacks in the server log: {st['tracebacks']}")
    for e in f["error_examples"]:
        lines.append(f"ERROR {e}")
    if f.get("failed"):
        lines.append("FAILED: " + "; ".join(f["failed"]))
    else:
        lines.append("OK: 0 errors, every request got its expected outcome")
    return "\n".join(lines)


def verdict(f: dict) -> list[str]:
    failed = []
    if f["errors"]:
        failed.append(f"{f['errors']} errors")
    a = f.get("after")
    if a and not a["answers"]:
        failed.append("the server did not answer after the run")
    if a and a["workers"] != a["expected_workers"]:
        failed.append(f"{a['workers']} worker processes after the run, expected {a['expected_workers']}")
    st = f.get("stop")
    if st and (st["exit_code"] != 0 or st["processes_left"] or st["tracebacks"]):
        failed.append(f"unclean stop: exit {st['exit_code']}, left {st['processes_left']}, tracebacks {st['tracebacks']}")
    return failed


def prepare_synth(n: int, seed: int, workdir: Path, as_of: str) -> Path:
    """A synthetic cohort loaded into a store and evaluated (so that it holds reports)."""
    store = workdir / f"kb-{n}-{seed}"
    if (store / ".evaluated").exists():
        return store
    cohort = workdir / f"cohort-{n}-{seed}.ttl"
    cli = [sys.executable, "-m", "reasoner"]
    subprocess.run([*cli, "synth", "--n", str(n), "--seed", str(seed), "--as-of", as_of, "-o", str(cohort)],
                   check=True, cwd=ROOT)
    subprocess.run([*cli, "load", str(cohort), "--store", str(store)], check=True, cwd=ROOT)
    subprocess.run([*cli, "recommend", "--store", str(store), "--as-of", as_of, "-f", "ndjson", "-o", os.devnull],
                   check=True, cwd=ROOT)
    (store / ".evaluated").write_text("")
    return store


def serve_args(cfg: Config) -> list[str]:
    args = ["--timeout", f"{cfg.query_timeout:g}", "--max-results", str(cfg.max_results), "--workers", str(cfg.workers),
            "--memory", str(cfg.query_memory)]
    if cfg.extra_workers is not None:
        args += ["--extra-workers", str(cfg.extra_workers)]
    if cfg.store:
        return [*args, "--store", cfg.store]
    return [*args, "--as-of", cfg.as_of, *cfg.inputs]


def run(cfg: Config, progress=None) -> dict:
    """Start the server, run the load, check the server afterwards, stop it; the figures."""
    log = Path(cfg.log) if cfg.log else Path(tempfile.mkstemp(prefix="b12kg-load-", suffix=".log")[1])
    t = time.monotonic()
    server = Server(serve_args(cfg), log)
    started = time.monotonic() - t
    stop = None
    try:
        figures = run_load(cfg, server.port, server.pid, progress)
        ok = sparql("probe", "after", "ASK { ?s ?p ?o }", OK, accept=RESULT_ACCEPT["json"])
        try:
            status, _, body, _, _ = fetch(server.port, ok, cfg.timeout())
            answers = status == 200 and json.loads(body)["boolean"] is True
        except (OSError, http.client.HTTPException, ValueError, KeyError):
            answers = False
        figures["after"] = {"answers": answers, **settle(server.pid, cfg.workers)}
    finally:
        stop = server.stop()
        text = server.log_text()
        stop["tracebacks"] = text.count("Traceback")
        stop["log"] = str(log)
    m = re.search(r"serving (.*?); SPARQL endpoint", text)
    figures["server"] = {"command": " ".join(server.command), "startup_s": round(started, 1),
                         "description": m.group(1) if m else None, "log_lines": text.count("\n")}
    figures["stop"] = stop
    figures["failed"] = verdict(figures)
    if not cfg.log and not figures["failed"]:
        log.unlink(missing_ok=True)
    return figures


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("inputs", nargs="*", help="patient files to evaluate and serve (default: examples/*.ttl)")
    p.add_argument("--clients", type=int, default=16, help="client threads sending the mix (default 16)")
    p.add_argument("--attackers", type=int, default=2,
                   help="more threads sending only very expensive queries, back to back (default 2)")
    p.add_argument("--seconds", type=float, default=60.0, help="duration (default 60)")
    p.add_argument("--seed", type=int, default=1, help="random seed of the mix (default 1)")
    p.add_argument("--hostile", type=float, default=0.2, help="share of the clients' requests that must be refused (default 0.2)")
    p.add_argument("--store", metavar="DIR", help="serve this store (b12kg serve --store) instead of evaluating files")
    p.add_argument("--synth", type=int, metavar="N", help="serve a synthetic cohort of N patients: b12kg synth, load "
                   "--store, recommend --store (kept in --workdir for the next run)")
    p.add_argument("--workdir", default=None, help="where --synth keeps its cohort and store (default: a temporary directory)")
    p.add_argument("--as-of", default=AS_OF, help=f"evaluation date of the inputs (default {AS_OF})")
    p.add_argument("--query-timeout", type=float, default=5.0, help="the server's --timeout (default 5 s)")
    p.add_argument("--query-memory", type=int, default=256, help="the server's --memory in MiB (default 256)")
    p.add_argument("--max-results", type=int, default=10000, help="the server's --max-results (default 10000)")
    p.add_argument("--workers", type=int, default=2, help="the server's --workers (default 2)")
    p.add_argument("--extra-workers", type=int, default=None, help="the server's --extra-workers (default: its default)")
    p.add_argument("--client-timeout", type=float, default=0.0,
                   help="a request with no answer after this long is an error (default: 3 x --query-timeout + 30 s)")
    p.add_argument("--log", help="keep the server's log in this file (by default kept only when the run fails)")
    p.add_argument("--json", metavar="FILE", help="also write the figures as JSON ('-': stdout, instead of the text)")
    p.add_argument("--quiet", action="store_true", help="no progress line every second")
    a = p.parse_args(argv)
    if not 0 <= a.hostile <= 1:
        p.error("--hostile is a share between 0 and 1")
    if a.clients < 1 or a.attackers < 0 or a.seconds <= 0:
        p.error("--clients must be at least 1, --attackers at least 0, --seconds positive")
    store = a.store
    if a.synth:
        if a.store or a.inputs:
            p.error("--synth makes its own store: no --store or input files with it")
        workdir = Path(a.workdir or tempfile.mkdtemp(prefix="b12kg-load-"))
        workdir.mkdir(parents=True, exist_ok=True)
        t = time.monotonic()
        store = str(prepare_synth(a.synth, a.seed, workdir, a.as_of))
        print(f"synthetic cohort of {a.synth} in {store} ({time.monotonic() - t:.0f} s)", file=sys.stderr)
    inputs = a.inputs or ([] if store else [str(p) for p in sorted((ROOT / "examples").glob("*.ttl"))])
    if store and a.inputs:
        p.error("give input files or --store, not both")
    cfg = Config(clients=a.clients, attackers=a.attackers, seconds=a.seconds, seed=a.seed, hostile=a.hostile,
                 query_timeout=a.query_timeout, query_memory=a.query_memory, max_results=a.max_results,
                 workers=a.workers, extra_workers=a.extra_workers, client_timeout=a.client_timeout, inputs=inputs, store=store, as_of=a.as_of,
                 log=a.log)
    progress = None if a.quiet else (lambda line: print(line, file=sys.stderr, flush=True))
    figures = run(cfg, progress)
    if a.json == "-":
        json.dump(figures, sys.stdout, indent=1)
        print()
    else:
        print(render(figures))
        if a.json:
            Path(a.json).write_text(json.dumps(figures, indent=1) + "\n", encoding="utf-8")
    return 1 if figures["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
