"""``b12kg serve``: the read-only SPARQL 1.1 Protocol endpoint, queried with standard clients.

One server (two workers, 5000 results at most) runs in a background thread over the examples
evaluated as of 2026-06-01; SPARQLWrapper, rdflib's SPARQLStore and urllib query it. A second one
over the same store has a 2 s time limit for the slow-query test (the first has a generous limit,
so that a busy test machine cannot fail the others).
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from pathlib import Path

import pyoxigraph as ox
import pytest
import rdflib

from reasoner import recommend
from reasoner import serve
from reasoner.errors import UsageError
from reasoner.serve import inspect_query, negotiate

SPARQLWrapper = pytest.importorskip("SPARQLWrapper")
from SPARQLWrapper import CSV, JSON, POST, POSTDIRECTLY, TSV, TURTLE, XML, SPARQLWrapper  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
AS_OF = "2026-06-01"
TIMEOUT = 2.0  # the time-limit test
MAX_RESULTS = 5000
B12 = "PREFIX b12: <https://w3id.org/b12kg/>\n"
SLOW = "SELECT (COUNT(*) AS ?n) WHERE { ?a ?b ?c . ?d ?e ?f . ?g ?h ?i }"


@pytest.fixture(scope="module")
def report(kb):
    return recommend(sorted((ROOT / "examples").glob("*.ttl")), AS_OF, kb=kb)


def _running(dataset, timeout):
    lines: list[str] = []
    srv = serve.create_server(dataset, bind="127.0.0.1", port=0, timeout=timeout, max_results=MAX_RESULTS,
                              workers=2, log=lines.append)
    srv.lines = lines
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    return srv, thread


def _stop(srv, thread):
    srv.shutdown()
    srv.close()
    thread.join(5)


@pytest.fixture(scope="module")
def server(report):
    dataset = serve.dataset_from_report(report)
    srv, thread = _running(dataset, 60.0)
    yield srv
    _stop(srv, thread)
    assert dataset.tmpdir is None and not os.path.exists(dataset.store_path)  # the temporary store is gone


@pytest.fixture(scope="module")
def strict_server(server):
    srv, thread = _running(serve.Dataset(server.dataset.store_path, "the same store"), TIMEOUT)
    yield srv
    _stop(srv, thread)


@pytest.fixture(scope="module")
def endpoint(server):
    return server.url + "/sparql"


def http(url, *, data=None, headers=None, method=None):
    """(status, headers, body) with urllib: errors are answers too."""
    req = urllib.request.Request(url, data=data, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(req, timeout=20) as resp:
            return resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.headers, err.read()


def get(endpoint, query, accept=None, **params):
    url = endpoint + "?" + urllib.parse.urlencode({"query": query, **params})
    return http(url, headers={"Accept": accept} if accept else {})


def wrapper(endpoint, query, fmt=JSON, method=None, query_type=None):
    sw = SPARQLWrapper(endpoint)
    sw.setQuery(query)
    if query_type:  # SPARQLWrapper guesses the query type from the first keyword-like word, comments included
        sw.queryType = query_type
    sw.setReturnFormat(fmt)
    if method:
        sw.setMethod(POST)
        if method == POSTDIRECTLY:
            sw.setRequestMethod(POSTDIRECTLY)
    return sw.queryAndConvert()


# -- comparing results ---------------------------------------------------------------------------

_STRING = "http://www.w3.org/2001/XMLSchema#string"


def local_term(term):
    if term is None:
        return None
    if isinstance(term, ox.NamedNode):
        return ("uri", term.value)
    if isinstance(term, ox.BlankNode):
        return ("bnode",)
    dt = None if term.language or term.datatype.value == _STRING else term.datatype.value
    return ("literal", term.value, term.language, dt)


def json_term(b):
    if b is None:
        return None
    if b["type"] == "uri":
        return ("uri", b["value"])
    if b["type"] == "bnode":
        return ("bnode",)
    return ("literal", b["value"], b.get("xml:lang"), b.get("datatype"))


def _unordered(name, term):
    """GROUP_CONCAT's order is the engine's (it differs between an in-memory and an on-disk store)."""
    if name == "documents" and term and term[0] == "literal":
        return term[:1] + ("; ".join(sorted(term[1].split("; "))),) + term[2:]
    return term


def local_rows(report, query):
    result = report.query(query)
    names = [v.value for v in result.variables]
    return names, Counter(tuple(_unordered(n, local_term(sol[n])) for n in names) for sol in result)


def remote_rows(doc):
    names = doc["head"]["vars"]
    return names, Counter(tuple(_unordered(n, json_term(b.get(n))) for n in names) for b in doc["results"]["bindings"])


# -- looking at queries before running them ------------------------------------------------------

@pytest.mark.parametrize("query", [
    "SELECT * { SERVICE <http://example.org/sparql> { ?s ?p ?o } }",
    "select * { service <http://example.org/sparql> { ?s ?p ?o } }",
    "SELECT * { ?s ?p ?o OPTIONAL { SERVICE SILENT <http://x/> { ?s ?p ?o } } }",
    "SELECT * { SERVICE<http://x/>{?s ?p ?o} }",
    "SELECT * { SERVICE?endpoint{?s ?p ?o} }",
    "PREFIX : <http://x/> SELECT * { SERVICE:x {?s ?p ?o} }",  # the engine runs this as SERVICE :x
    "SELECT * { ?s ?p trueSERVICE<http://x/> {?s ?p ?o} }",  # and this as true SERVICE <…>
    "SELECT * { SERVICE#comment\n<http://x/> {?s ?p ?o} }",
    "PREFIX ex: <http://e/> SELECT * { ?s ex:a\\' ?o . SERVICE <http://x/> {?s ?p ?o} }",  # \' is no quote
    "SELECT * { FILTER(?a<?b) SERVICE <http://x/> {?s ?p ?o} FILTER(?c>?d) }",
])
def test_service_is_found(query):
    assert inspect_query(query).service


@pytest.mark.parametrize("query", [
    'SELECT ("SERVICE <x>" AS ?x) {}',
    "SELECT * { ?s ?p ?o } # SERVICE <http://x/>",
    "SELECT * { ?s <http://example.org/service> ?o }",
    "SELECT ?service { ?service ?p ?o }",
    "SELECT * { ?s ?p '''a ' SERVICE <x> {} '' ''' }",
    'SELECT * { ?s ?p "a\\u0022 SERVICE <x> {}" }',  # \u0022 inside a string does not end it
    "PREFIX ex: <http://e/> SELECT * { ?s ex:serviceDate ?o }",
])
def test_service_is_not_imagined(query):
    info = inspect_query(query)
    assert not info.service and info.form == "SELECT" and info.error is None


def test_query_forms_updates_and_datasets():
    assert inspect_query("# Question: x?\nPREFIX a: <http://a/>\nASK {}").form == "ASK"
    assert inspect_query("BASE <http://a/> CONSTRUCT WHERE { ?s ?p ?o }").form == "CONSTRUCT"
    assert inspect_query("DESCRIBE <http://a>").form == "DESCRIBE"
    assert inspect_query("INSERT DATA { <a:b> <a:c> <a:d> }").update == "INSERT"
    assert inspect_query("PREFIX a: <http://a/> DELETE WHERE { ?s ?p ?o }").update == "DELETE"
    assert inspect_query("LOAD <http://example.org/x.ttl>").update == "LOAD"
    assert inspect_query("SELECT * {} ; CLEAR ALL").update == "CLEAR"
    assert inspect_query("SELECT * FROM <http://g> { ?s ?p ?o }").has_dataset
    assert not inspect_query("SELECT ?from { ?from ?p ?o }").has_dataset
    assert inspect_query("SELECT * { ?s ?p 'open }").error


def test_negotiation():
    assert negotiate(None, None, "results") == "json"
    assert negotiate("*/*", None, "graph") == "turtle"
    assert negotiate("text/csv", None, "results") == "csv"
    assert negotiate("application/sparql-results+xml;q=0.5, text/tab-separated-values", None, "results") == "tsv"
    assert negotiate("application/turtle,text/turtle", None, "graph") == "turtle"
    assert negotiate("application/ld+json", None, "graph") == "jsonld"
    assert negotiate("image/png", None, "results") is None
    assert negotiate("text/*", None, "graph") == "turtle"
    # a browser's Accept names nothing we serve: the format parameter decides
    browser = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
    assert negotiate(browser, "csv", "results") == "csv"
    assert negotiate(browser, None, "results") == "json"
    assert negotiate(None, "xml", "graph") == "rdfxml"
    assert negotiate(None, "csv", "graph") is None


# -- SELECT, ASK, CONSTRUCT with standard clients ------------------------------------------------

def test_select_json_with_sparqlwrapper(endpoint, report):
    q = B12 + "SELECT DISTINCT ?patient WHERE { ?patient a b12:Patient } ORDER BY ?patient"
    doc = wrapper(endpoint, q, JSON)
    assert remote_rows(doc) == local_rows(report, q)
    assert len(doc["results"]["bindings"]) == 9
    # the default graph is the union of the named graphs: a patient is typed in data and inferred
    q = B12 + "SELECT ?patient WHERE { ?patient a b12:Patient }"
    assert remote_rows(wrapper(endpoint, q, JSON)) == local_rows(report, q)


def test_select_xml_with_rdflib_sparqlstore(endpoint, report):
    from rdflib.plugins.stores.sparqlstore import SPARQLStore

    graph = rdflib.Graph(store=SPARQLStore(endpoint))  # rdflib asks for application/sparql-results+xml
    q = B12 + "SELECT DISTINCT ?patient ?date WHERE { ?patient a b12:Patient ; b12:birthDate ?date } ORDER BY ?patient"
    remote = {(str(r.patient), str(r.date)) for r in graph.query(q)}
    local = {(s["patient"].value, s["date"].value) for s in report.query(q)}
    assert remote == local and remote
    assert graph.query("ASK { ?s a <https://w3id.org/b12kg/Patient> }").askAnswer is True


def test_select_xml_csv_tsv_with_sparqlwrapper(endpoint, report):
    q = B12 + "SELECT ?patient ?g WHERE { GRAPH ?g { ?patient a b12:Patient } } ORDER BY ?patient"
    expected = {(s["patient"].value, s["g"].value) for s in report.query(q)}
    xml = wrapper(endpoint, q, XML)  # a DOM document
    rows = set()
    for result in xml.getElementsByTagName("result"):
        values = {b.getAttribute("name"): b.getElementsByTagName("uri")[0].firstChild.data
                  for b in result.getElementsByTagName("binding")}
        rows.add((values["patient"], values["g"]))
    assert rows == expected
    table = list(csv.reader(io.StringIO(wrapper(endpoint, q, CSV).decode("utf-8"))))
    assert table[0] == ["patient", "g"] and set(map(tuple, table[1:])) == expected
    tsv = wrapper(endpoint, q, TSV).decode("utf-8").splitlines()
    assert tsv[0] == "?patient\t?g"
    assert {tuple(v.strip("<>") for v in line.split("\t")) for line in tsv[1:]} == expected


def test_ask(endpoint):
    assert wrapper(endpoint, B12 + "ASK { ?p a b12:Patient }", JSON)["boolean"] is True
    assert wrapper(endpoint, B12 + "ASK { ?p a b12:NoSuchClass }", JSON)["boolean"] is False
    xml = wrapper(endpoint, "ASK { ?s ?p ?o }", XML)
    assert xml.getElementsByTagName("boolean")[0].firstChild.data == "true"


def test_construct_turtle_and_other_rdf_formats(endpoint, report):
    q = B12 + "CONSTRUCT { ?p a b12:Patient ; b12:birthDate ?d } WHERE { ?p a b12:Patient ; b12:birthDate ?d }"
    text = wrapper(endpoint, q, TURTLE)
    remote = rdflib.Graph().parse(data=text.decode("utf-8") if isinstance(text, bytes) else text, format="turtle")
    local = rdflib.Graph().parse(data="".join(f"{t} .\n" for t in report.query(q)), format="nt")
    assert len(remote) == len(local) == 18
    assert set(remote) == set(local)
    for accept, fmt in (("application/ld+json", "json-ld"), ("application/n-triples", "nt"),
                        ("application/rdf+xml", "xml")):
        status, headers, body = get(endpoint, q, accept)
        assert status == 200 and headers.get_content_type() == accept
        assert set(rdflib.Graph().parse(data=body.decode("utf-8"), format=fmt)) == set(local)
    status, headers, body = get(endpoint, q, None, format="nt")  # the format parameter, no Accept
    assert status == 200 and headers.get_content_type() == "application/n-triples"


def test_describe(endpoint):
    status, headers, body = get(endpoint, "DESCRIBE <https://example.org/b12kg/case45/patient>")
    assert status == 200 and headers.get_content_type() == "text/turtle"
    assert len(rdflib.Graph().parse(data=body.decode(), format="turtle")) > 0


def test_every_example_query_answers_as_locally(endpoint, report):
    files = sorted((ROOT / "queries").glob("*.rq"))
    assert len(files) >= 8
    nonempty = 0
    for path in files:
        text = path.read_text(encoding="utf-8")
        # SPARQLWrapper 2.0 takes 'ask' and 'dropped' in two of the header comments for the query
        # type (ASK, DROP: an update it would send as update=…), so the type is set here
        assert inspect_query(text).form == "SELECT"
        names, remote = remote_rows(wrapper(endpoint, text, JSON, query_type="SELECT"))
        local_names, local = local_rows(report, text)
        assert names == local_names, path.name
        assert remote == local, path.name
        nonempty += bool(remote)
    assert nonempty >= 6


def test_post_form_and_direct_post(endpoint, report):
    q = B12 + "SELECT ?patient WHERE { ?patient a b12:Patient }"
    expected = local_rows(report, q)
    assert remote_rows(wrapper(endpoint, q, JSON, method=POST)) == expected  # application/x-www-form-urlencoded
    assert remote_rows(wrapper(endpoint, q, JSON, method=POSTDIRECTLY)) == expected  # application/sparql-query


def test_union_default_graph_named_graphs_and_dataset_parameters(endpoint):
    def count(query, **params):
        status, _, body = get(endpoint, query, **params)
        assert status == 200, body
        return int(json.loads(body)["results"]["bindings"][0]["n"]["value"])

    graphs = json.loads(get(endpoint, "SELECT DISTINCT ?g { GRAPH ?g { ?s ?p ?o } }")[2])["results"]["bindings"]
    names = {b["g"]["value"].rsplit("/", 1)[1] for b in graphs}
    assert names == {"ontology", "data", "inferred", "report", "context"}
    total = count("SELECT (COUNT(*) AS ?n) { ?s ?p ?o }")
    data = count("SELECT (COUNT(*) AS ?n) { GRAPH b12g:data { ?s ?p ?o } }")  # b12g: is predeclared
    assert 0 < data < total
    assert count("SELECT (COUNT(*) AS ?n) { ?s ?p ?o }", **{"default-graph-uri": "https://w3id.org/b12kg/graph/data"}) == data
    assert count("SELECT (COUNT(*) AS ?n) FROM b12g:data { ?s ?p ?o }") == data
    assert count("SELECT (COUNT(*) AS ?n) { ?s b12:asOf ?d FILTER(?d = '2026-06-01'^^xsd:date) }") == 1


# -- read-only -----------------------------------------------------------------------------------

def test_updates_are_refused(endpoint):
    before = json.loads(get(endpoint, "SELECT (COUNT(*) AS ?n) { ?s ?p ?o }")[2])
    update = "INSERT DATA { GRAPH <https://w3id.org/b12kg/graph/data> { <urn:x:a> <urn:x:b> <urn:x:c> } }"
    for method in (POST, POSTDIRECTLY):  # SPARQLWrapper: update= in a form, and application/sparql-update
        sw = SPARQLWrapper(endpoint)
        sw.setQuery(update)
        sw.setMethod(POST)
        if method == POSTDIRECTLY:
            sw.setRequestMethod(POSTDIRECTLY)
        with pytest.raises(urllib.error.HTTPError) as err:
            sw.query()
        assert err.value.code == 403
        assert b"read-only" in err.value.read()
    for query in (update, "LOAD <http://example.org/data.ttl>", "DELETE WHERE { ?s ?p ?o }",
                  "CLEAR ALL", "DROP GRAPH <https://w3id.org/b12kg/graph/data>"):
        status, _, body = get(endpoint, query)
        assert status == 403 and b"read-only" in body, query
    status, _, body = http(endpoint + "?" + urllib.parse.urlencode({"update": update}))
    assert status == 403
    status, _, _ = http(endpoint, data=urllib.parse.urlencode({"update": update}).encode(),
                        headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 403
    assert json.loads(get(endpoint, "SELECT (COUNT(*) AS ?n) { ?s ?p ?o }")[2]) == before


@pytest.fixture
def listener():
    """A socket that records whether anything connected to it (a SERVICE target)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    sock.settimeout(0.2)
    yield sock

    sock.close()


def _connected(sock) -> bool:
    try:
        conn, _ = sock.accept()
        conn.close()
        return True
    except (socket.timeout, OSError):
        return False


def test_service_is_refused_and_nothing_is_fetched(endpoint, server, listener):
    target = f"http://127.0.0.1:{listener.getsockname()[1]}/sparql"
    for query in (f"SELECT * {{ SERVICE <{target}> {{ ?s ?p ?o }} }}",
                  f"SELECT * {{ ?s ?p ?o OPTIONAL {{ SERVICE SILENT <{target}> {{ ?s ?p ?o }} }} }} LIMIT 1",
                  f"PREFIX : <{target}> SELECT * {{ SERVICE:x {{ ?s ?p ?o }} }}"):
        status, _, body = get(endpoint, query)
        assert status == 403 and b"SERVICE" in body, query
        status, _, body = http(endpoint, data=query.encode(), headers={"Content-Type": "application/sparql-query"})
        assert status == 403
    assert not _connected(listener)
    if not server.pool.isolated:
        pytest.skip("no network namespace for the workers here; the query check is the only guard")
    # the second guard: a SERVICE that reached a worker anyway could not connect anywhere
    job = {"query": f"SELECT * {{ SERVICE <{target}> {{ ?s ?p ?o }} }}", "union": True, "default_graph": None,
           "named_graphs": None, "results_format": "json", "graph_format": None, "max_results": 10}
    status, _, body, _ = server.pool.run(job)
    assert status != 200
    assert not _connected(listener)


# -- limits --------------------------------------------------------------------------------------

def test_slow_query_is_cancelled_while_others_are_served(strict_server):
    server = strict_server
    endpoint = server.url + "/sparql"
    outcome = {}

    def slow():
        t0 = time.monotonic()
        outcome["slow"] = get(endpoint, SLOW)
        outcome["slow_time"] = time.monotonic() - t0

    cancelled = server.pool.cancelled
    thread = threading.Thread(target=slow)
    thread.start()
    time.sleep(0.3)
    t0 = time.monotonic()
    status, _, body = get(endpoint, B12 + "SELECT (COUNT(DISTINCT ?p) AS ?n) { ?p a b12:Patient }")
    assert status == 200 and json.loads(body)["results"]["bindings"][0]["n"]["value"] == "9"
    assert thread.is_alive(), time.monotonic() - t0  # answered while the slow query runs
    thread.join(10)
    status, _, body = outcome["slow"]
    assert status == 503
    assert b"time limit" in body and len(body.decode().strip().splitlines()) == 1
    assert TIMEOUT <= outcome["slow_time"] < TIMEOUT + 5
    assert server.pool.cancelled == cancelled + 1
    for _ in range(4):  # the server keeps answering, with a fresh worker in place of the killed one
        status, _, _ = get(endpoint, "ASK { ?s ?p ?o }")
        assert status == 200
    deadline = time.monotonic() + 10
    while server.pool._idle.qsize() < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.pool._idle.qsize() == 2


def test_result_size_limit(endpoint, report):
    total = len(report.store)
    assert total > MAX_RESULTS
    status, headers, body = get(endpoint, "SELECT * { ?s ?p ?o }")
    assert status == 413 and headers["X-B12kg-Max-Results"] == str(MAX_RESULTS)
    assert f"more than {MAX_RESULTS} rows".encode() in body and b"LIMIT" in body
    status, headers, body = get(endpoint, "CONSTRUCT WHERE { ?s ?p ?o }")
    assert status == 413 and b"triples" in body
    status, headers, body = get(endpoint, f"SELECT * {{ ?s ?p ?o }} LIMIT {MAX_RESULTS}")
    assert status == 200 and len(json.loads(body)["results"]["bindings"]) == MAX_RESULTS
    assert headers["X-B12kg-Result-Count"] == str(MAX_RESULTS)


def _job(query, **kw):
    return {"query": query, "union": True, "default_graph": None, "named_graphs": None, "results_format": "json",
            "graph_format": "turtle", "max_results": MAX_RESULTS} | kw


def test_busy_workers_and_memory_limit(server):
    # one worker and no extra one, busy with a slow query: a second query waits the time limit for
    # it, then gets 503
    pool = serve.WorkerPool(server.dataset.store_path, 1, 1.0, extra=0)
    pool.start()
    try:
        slow = {}
        thread = threading.Thread(target=lambda: slow.update(reply=pool.run(_job(SLOW))))
        thread.start()
        time.sleep(0.1)
        status, _, body, headers = pool.run(_job("ASK { ?s ?p ?o }"))
        assert status == 503 and b"busy" in body and headers["Retry-After"] == "1"
        thread.join(10)
        assert slow["reply"][0] == 503 and b"time limit" in slow["reply"][2]
    finally:
        pool.close()
    # a query that needs more memory than --memory ends its worker, which is replaced
    pool = serve.WorkerPool(server.dataset.store_path, 1, 60.0, memory=300)
    pool.start()
    try:
        status, _, body, _ = pool.run(_job("SELECT * { ?a ?b ?c . ?d ?e ?f } ORDER BY ?f ?c"))  # ~1 s
        assert status == 503 and b"more memory" in body and b"--memory 300" in body
        assert pool.run(_job("ASK { ?s ?p ?o }"))[0] == 200  # the replacement answers
    finally:
        pool.close()
    assert not os.path.exists(pool._logdir)


def _workers(pid: int) -> list[int]:
    """The worker processes (multiprocessing children) of a process."""
    out = []
    for name in os.listdir("/proc"):
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                stat = f.read()
            with open(f"/proc/{name}/cmdline", "rb") as f:
                cmdline = f.read()
        except OSError:
            continue
        rest = stat[stat.rfind(b")") + 2:].split()
        if int(rest[1]) == pid and b"spawn_main" in cmdline and rest[0] != b"Z":
            out.append(int(name))
    return out


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_slow_queries_do_not_hold_up_the_others(server):
    # Regression (bench/load.py, 16 clients and 2 attackers): two queries cut off at the time limit
    # held both workers, so everyone else got "503 all workers are busy". Now a query running longer
    # than slow_after gets a worker added beside it (up to `extra` at once).
    pool = serve.WorkerPool(server.dataset.store_path, 1, 4.0)  # one worker, one extra for a slow query
    assert pool.extra == 1 and pool.slow_after == 1.0  # a second, or a quarter of the time limit
    pool.slow_after = 0.3
    pool.start()
    try:
        slow, fast = {}, {}

        def run_slow():
            slow["reply"] = pool.run(_job(SLOW))
            slow["end"] = time.monotonic()

        thread = threading.Thread(target=run_slow)
        thread.start()
        time.sleep(0.1)
        status, _, body, _ = pool.run(_job(B12 + "ASK { ?p a b12:Patient }"))  # waits for the added worker
        fast["end"] = time.monotonic()
        assert status == 200 and b"true" in body
        assert thread.is_alive()  # answered while the slow query still runs
        assert pool.workers() == 2
        first = {w.process.pid for w in list(pool._all)}
        thread.join(15)
        assert slow["reply"][0] == 503 and b"time limit" in slow["reply"][2]
        assert fast["end"] < slow["end"] and pool.added == 1 and pool.cancelled == 1
        # back to one worker (the killed one is not replaced: the added one takes its place), which answers
        assert pool.run(_job("ASK { ?s ?p ?o }"))[0] == 200
        deadline = time.monotonic() + 10
        while pool.workers() != 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert pool.workers() == 1
        pids = {w.process.pid for w in list(pool._all)} | first
    finally:
        pool.close()
    # a slow query that ends by itself: the added worker stays for shrink_after seconds (a run of slow
    # queries would use it), then the pool is back to its size
    pool = serve.WorkerPool(server.dataset.store_path, 1, 30.0)
    pool.slow_after, pool.shrink_after = 0.3, 1.0
    pool.start()
    try:
        t0 = time.monotonic()
        slow_but_finite = "SELECT (COUNT(*) AS ?n) WHERE { SELECT * WHERE { ?a ?b ?c . ?d ?e ?f } LIMIT 10000000 }"
        status, _, body, _ = pool.run(_job(slow_but_finite))
        assert status == 200 and time.monotonic() - t0 > pool.slow_after and pool.added == 1
        pids |= {w.process.pid for w in list(pool._all)}
        deadline = time.monotonic() + 15
        while not (pool.workers() == 1 and pool._idle.qsize() == 1) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert pool.workers() == 1 and pool._idle.qsize() == 1
        assert pool.run(_job("ASK { ?s ?p ?o }"))[0] == 200
    finally:
        pool.close()
    deadline = time.monotonic() + 5
    while set(_workers(os.getpid())) & pids and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not set(_workers(os.getpid())) & pids


def test_many_connections_at_once_are_queued_not_dropped(server):
    # Regression (bench/load.py, 16 clients): socketserver's accept queue of 5 overflowed, and the
    # kernel dropped connections (a 1 s SYN retry) or reset them (ConnectionResetError).
    import selectors

    srv = serve.create_server(serve.Dataset(server.dataset.store_path, "the same store"), port=0, workers=1)
    try:  # not accepting: every connection waits in the accept queue
        assert srv.request_queue_size >= 64
        sel = selectors.DefaultSelector()
        socks = []
        for _ in range(48):
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", srv.port))
            sel.register(s, selectors.EVENT_WRITE)
            socks.append(s)
        connected, deadline = set(), time.monotonic() + 0.8  # before any SYN retry (1 s)
        while len(connected) < len(socks) and time.monotonic() < deadline:
            for key, _ in sel.select(0.1):
                if key.fileobj.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0:
                    connected.add(key.fileobj)
                sel.unregister(key.fileobj)
        assert len(connected) == len(socks)
        for s in socks:
            s.close()
    finally:
        srv.close()


def test_an_engine_abort_is_reported(tmp_path):
    class Process:
        exitcode = -signal.SIGABRT

        def join(self, timeout=None):
            pass

    log = tmp_path / "worker.log"
    log.write_text("thread '<unnamed>' (1) panicked at smallsort.rs:854:5:\n"
                   "user-provided comparison function does not correctly implement a total order\n"
                   "stack backtrace:\n")
    pool = serve.WorkerPool(str(tmp_path), 1, 1.0, memory=2048)
    try:
        status, message = pool._crash_message(serve._Worker(Process(), None, str(log)))
    finally:
        pool.close()
    assert status == 500
    assert message == ("query failed: the query engine aborted: user-provided comparison function does not "
                       "correctly implement a total order")


# -- protocol errors -----------------------------------------------------------------------------

def test_protocol_errors(endpoint, server):
    status, headers, body = get(endpoint, "SELECT * WHERE { ?s ?p }")
    assert status == 400 and headers.get_content_type() == "text/plain"
    assert body.decode().count("\n") == 1 and body.startswith(b"SPARQL syntax error")
    assert http(endpoint)[0] == 400  # no query
    assert http(endpoint + "?query=ASK%7B%7D&query=ASK%7B%7D")[0] == 400
    assert get(endpoint, "SELECT * { ?s ?p ?o } LIMIT 1", "image/png")[0] == 406
    assert get(endpoint, "CONSTRUCT WHERE { ?s ?p ?o } LIMIT 1", "text/csv")[0] == 406
    assert get(endpoint, "ASK {}", None, format="yaml")[0] == 400
    for method in ("PUT", "DELETE", "PATCH"):
        status, headers, _ = http(endpoint, data=b"x", method=method)
        assert status == 405 and headers["Allow"] == "GET, POST"
    assert http(endpoint, data=b"ASK {}", headers={"Content-Type": "text/plain"})[0] == 415
    big = b"ASK {} #" + b"x" * (serve.MAX_BODY + 10)
    assert http(endpoint, data=big, headers={"Content-Type": "application/sparql-query"})[0] == 413
    assert http(server.url + "/nothing")[0] == 404
    # DNS-rebinding protection: a loopback server answers to loopback names only
    assert http(server.url + "/", headers={"Host": "attacker.example"})[0] == 403
    assert http(server.url + "/", headers={"Host": f"localhost:{server.port}"})[0] == 200


def test_query_page(server):
    status, headers, body = http(server.url + "/")
    page = body.decode("utf-8")
    assert status == 200 and headers.get_content_type() == "text/html"
    assert "default-src 'none'" in headers["Content-Security-Policy"]
    assert re.search(r'<form[^>]*action="/sparql"', page) and "<textarea name=query" in page
    assert not re.search(r'(src|href)="(https?:)?//', page)  # no external assets
    assert "<code>b12g:data</code>" in page
    for path in sorted((ROOT / "queries").glob("*.rq")):
        assert path.name in page
        question = path.read_text(encoding="utf-8").splitlines()[0].split("Question:", 1)[1].strip()
        assert question.split(",")[0].replace("'", "&#x27;") in page
        assert "/sparql?query=" + urllib.parse.quote(path.read_text(encoding="utf-8"), safe="") in page
    status, _, body = http(server.url + "/?query=" + urllib.parse.quote("ASK { <x:&> ?p ?o }"))
    assert "ASK { &lt;x:&amp;&gt; ?p ?o }</textarea>" in body.decode()


def test_one_log_line_per_request(endpoint, server):
    get(endpoint, "ASK { ?logged1 ?p ?o }")
    get(endpoint, "SELECT * WHERE { ?logged2")
    deadline = time.monotonic() + 5  # a line is written just after the answer
    while sum("logged" in line for line in server.lines) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    ok = [line for line in server.lines if "logged1" in line]
    bad = [line for line in server.lines if "logged2" in line]
    assert len(ok) == 1 and len(bad) == 1
    assert re.search(r'"GET /sparql\?query=ASK.*" 200 \d+ [\d.]+s$', ok[0])
    assert " 400 " in bad[0] and "SPARQL syntax error" in bad[0]


# -- the command -------------------------------------------------------------------------------

def _parser():
    parser = argparse.ArgumentParser(prog="b12kg")
    serve.add_parser(parser.add_subparsers(dest="command"))
    return parser


def test_parser_and_usage_errors(tmp_path):
    args = _parser().parse_args(["serve", "a.ttl", "--as-of", AS_OF, "--port", "0"])
    assert args.handler is serve.run and args.inputs == ["a.ttl"] and args.port == 0
    assert (args.bind, args.timeout, args.max_results, args.store) == ("127.0.0.1", 10.0, 10000, None)
    with pytest.raises(UsageError, match="not both"):
        serve.run(_parser().parse_args(["serve", "a.ttl", "--store", str(tmp_path)]))
    with pytest.raises(UsageError, match="patient files"):
        serve.run(_parser().parse_args(["serve"]))
    with pytest.raises(UsageError, match="not a directory"):
        serve.run(_parser().parse_args(["serve", "--store", str(tmp_path / "missing")]))
    with pytest.raises(UsageError, match="cannot open"):
        serve.run(_parser().parse_args(["serve", "--store", str(tmp_path)]))  # an empty directory is no store


def test_port_in_use(server):
    dataset = serve.Dataset(server.dataset.store_path, "the same store")
    with pytest.raises(UsageError, match="cannot listen on 127.0.0.1"):
        serve.create_server(dataset, port=server.port, workers=1)


def test_serve_a_store_directory_and_stop_on_sigterm(report, tmp_path):
    store_dir = tmp_path / "store"
    disk = ox.Store(str(store_dir))
    disk.bulk_extend(report.store.quads_for_pattern(None, None, None, None))
    disk.flush()
    del disk
    proc = subprocess.Popen(
        [sys.executable, "-m", "reasoner.serve", "--store", str(store_dir), "--port", "0", "--timeout", "5"],
        stderr=subprocess.PIPE, text=True, cwd=ROOT)
    lines: queue.Queue = queue.Queue()
    reader = threading.Thread(target=lambda: [lines.put(line) for line in proc.stderr] + [lines.put(None)], daemon=True)
    reader.start()
    try:
        url = None
        while url is None:
            line = lines.get(timeout=30)
            assert line is not None, "the server exited before listening"
            m = re.search(r"SPARQL endpoint (http://127\.0\.0\.1:\d+/sparql)", line)
            url = m and m.group(1)
        status, _, body = get(url, B12 + "SELECT (COUNT(DISTINCT ?p) AS ?n) { ?p a b12:Patient }")
        assert status == 200 and json.loads(body)["results"]["bindings"][0]["n"]["value"] == "9"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
        reader.join(5)
        rest = "".join(iter(lines.get_nowait, None))
        assert "SIGTERM: stopping" in rest and rest.rstrip().endswith("stopped")
        assert '"GET /sparql?query=' in rest
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert (store_dir / "CURRENT").exists()  # a --store is left as it was


# -- hardening (review 2) ------------------------------------------------------------------------

def _raw(port, data: bytes, *, half_close=False, timeout=20.0) -> bytes:
    """Send bytes on a fresh connection and read until the server closes it."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        if half_close:
            s.shutdown(socket.SHUT_WR)
        out = b""
        while True:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            out += chunk
    return out


def _one_line_plain(status, headers, body):
    return headers.get_content_type() == "text/plain" and body.decode().count("\n") == 1 and body.endswith(b"\n")


def test_only_utf8_request_bodies_are_decoded(endpoint):
    # Regression: charset=unicode_escape made the server decode with that codec; a lone surrogate
    # then raised UnicodeEncodeError (a traceback, no answer at all)
    for ctype, body in [
        ("application/sparql-query; charset=unicode_escape", b'SELECT * WHERE { ?s ?p "\\ud800" }'),
        ("application/x-www-form-urlencoded; charset=unicode_escape", b"query=ASK+%7B%7D+%22\\ud800%22"),
        ("application/sparql-query; charset=idna", b"ASK {}"),
    ]:
        status, headers, answer = http(endpoint, data=body, headers={"Content-Type": ctype})
        assert status == 415 and _one_line_plain(status, headers, answer) and b"utf-8" in answer, (ctype, answer)
    status, headers, answer = http(endpoint, data=b"ASK { ?s ?p '\xff' }",
                                   headers={"Content-Type": "application/sparql-query"})
    assert status == 400 and _one_line_plain(status, headers, answer)
    for charset in ("utf-8", "UTF-8", "us-ascii", "iso-8859-1"):
        status, _, answer = http(endpoint, data=b"ASK { ?s ?p ?o }",
                                 headers={"Content-Type": f"application/sparql-query; charset={charset}"})
        assert status == 200 and b"true" in answer


def test_a_body_shorter_than_its_content_length_is_not_run(server):
    # Regression: a client that closed its side after part of the body had that part run
    query = b"ASK { ?shortbody ?p ?o }"
    answer = _raw(server.port, b"POST /sparql HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/sparql-query\r\n"
                               b"Content-Length: %d\r\n\r\n" % (len(query) + 50) + query, half_close=True)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.split(b" ")[1] == b"400" and body.count(b"\n") == 1 and b"Content-Length" in body
    assert not any("shortbody" in line and " 200 " in line for line in server.lines)


@pytest.mark.parametrize("graph", ["a:%zz", "a:b[c", "http://x/a#b#c"])
def test_invalid_graph_iris_are_bad_requests(endpoint, graph):
    # Regression: these passed the handler's check and failed in the worker (500)
    for name in ("default-graph-uri", "named-graph-uri"):
        status, headers, body = get(endpoint, "ASK {}", **{name: graph})
        assert status == 400 and _one_line_plain(status, headers, body) and b"not an absolute IRI" in body


def test_http_server_errors_are_one_line_of_text(server):
    # Regression: http.server's own errors were a 13-line HTML page
    cases = [
        (b"FOO /sparql HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", b"501"),
        (b"GET /" + b"a" * 70000 + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", b"414"),
        (b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * 70000 + b"\r\n\r\n", b"431"),
        (b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n" + b"X-A: a\r\n" * 150 + b"\r\n", b"431"),
        (b"GET / HTTP/9.9\r\nHost: 127.0.0.1\r\n\r\n", b"505"),
    ]
    for request, code in cases:
        answer = _raw(server.port, request)
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.split(b"\r\n")[0].split(b" ")[1] == code, answer[:200]
        assert b"Content-Type: text/plain; charset=utf-8" in head
        assert body.count(b"\n") == 1 and b"<" not in body, body


def test_deep_nesting_is_refused_before_the_engine(endpoint, server, report, tmp_path):
    # Regression: ((((…)))) or STR(STR(…)) 100,000 deep overflowed the engine's parser stack and
    # ended a worker each time (reported as out of memory)
    assert inspect_query("ASK { FILTER((1)) }").depth == 3
    assert inspect_query("ASK { ?s ?p '(((' } # (((").depth == 1  # strings and comments do not count
    assert inspect_query("ASK { FILTER(" + "(" * 250 + "1" + ")" * 250 + ") }").error is None
    deep = ["ASK { FILTER(" + "(" * 100000 + "1" + ")" * 100000 + ") }",
            "ASK { FILTER(" + "STR(" * 20000 + "1" + ")" * 20000 + ") }",
            "ASK { FILTER(" + "!" * 100000 + "true) }",
            "ASK " + "{" * 300 + "}" * 300]
    for q in deep:
        assert inspect_query(q).error == "SPARQL syntax error: nested more than 256 levels deep"
    status, _, body = get(endpoint, "ASK { FILTER(" + "(" * 250 + "true" + ")" * 250 + ") }")
    assert status == 200 and b"true" in body  # deep but within the limit: the engine copes
    before = {w.process.pid for w in list(server.pool._all)}
    for q in deep:
        status, headers, body = http(endpoint, data=q.encode(), headers={"Content-Type": "application/sparql-query"})
        assert status == 400 and _one_line_plain(status, headers, body) and b"nested more than 256" in body
    assert {w.process.pid for w in list(server.pool._all)} == before  # no worker was lost
    from reasoner.errors import InputError
    from reasoner.query import run_query_file

    path = tmp_path / "deep.rq"
    path.write_text(deep[0], encoding="utf-8")
    with pytest.raises(InputError, match="nested more than 256"):
        run_query_file(report, str(path))


def test_checking_a_large_query_takes_little_memory():
    # Regression: each (?:A|B)* of the tokenizer kept a backtracking entry per character: checking
    # one 1 MiB query took ~390 MB
    import tracemalloc

    n = 1 << 18
    for text in ["a." * (n // 2), 'ASK { ?s ?p "' + "x" * n + '" }', "<" + "x" * n + ">",
                 "ASK { ?s ?p '''" + "x'" * (n // 2) + "''' }", "SELECT * { ?s a:" + "%41" * (n // 3) + " ?o }"]:
        tracemalloc.start()
        try:
            inspect_query(text)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < 16 << 20, (text[:20], peak)


def test_a_failing_query_run_or_thread_start_does_not_leak_a_worker(server, monkeypatch):
    # Regression: an exception between taking a worker and returning it leaked the worker (the pool
    # then answered 503 "busy" for ever); a respawn thread that failed to start was counted pending
    pool = serve.WorkerPool(server.dataset.store_path, 1, 30.0, extra=0)
    pool.start()
    try:
        with pytest.raises(Exception):
            pool.run(_job("ASK {}", unpicklable=lambda: None))
        assert pool.run(_job("ASK { ?s ?p ?o }"))[0] == 200  # a replacement answers
        # the next respawn thread cannot start (as when the process is out of threads)
        start = threading.Thread.start

        def failing_start(self):
            if self.name == "b12kg-serve-respawn":
                raise RuntimeError("can't start new thread")
            return start(self)

        monkeypatch.setattr(threading.Thread, "start", failing_start)
        with pytest.raises(Exception):
            pool.run(_job("ASK {}", unpicklable=lambda: None))
        assert pool._pending == 0 and pool.workers() == 0
        monkeypatch.setattr(threading.Thread, "start", start)
        assert pool.run(_job("ASK { ?s ?p ?o }"))[0] == 200  # the next query's top-up starts one
        assert pool._pending == 0 and pool.workers() == 1
    finally:
        pool.close()


def test_connections_are_capped_and_requests_have_a_deadline(server):
    # Regression: one thread per connection without a cap, and a client trickling its request a
    # byte at a time could hold its thread for ever
    srv, thread = None, None
    lines: list[str] = []
    srv = serve.create_server(serve.Dataset(server.dataset.store_path, "the same store"), port=0, workers=1,
                              max_connections=2, log=lines.append)
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    try:
        idle = [socket.create_connection(("127.0.0.1", srv.port), timeout=20) for _ in range(2)]
        deadline = time.monotonic() + 10
        answer = b""
        while time.monotonic() < deadline:  # until both idle connections have their threads
            answer = _raw(srv.port, b"GET /sparql?query=ASK%7B%7D HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            if answer.startswith(b"HTTP/1.0 503"):
                break
            time.sleep(0.05)
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.0 503 ") and b"Retry-After: 1" in head
        assert body.count(b"\n") == 1 and b"too many connections" in body and srv.refused >= 1
        for s in idle:
            s.close()
        ok = b""
        deadline = time.monotonic() + 10
        while not ok.startswith(b"HTTP/1.0 200") and time.monotonic() < deadline:
            ok = _raw(srv.port, b"GET /sparql?query=ASK%7B%7D HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        assert ok.startswith(b"HTTP/1.0 200")
        # a client trickling its request is cut off at the request deadline, however slowly it sends
        srv.request_deadline = 1.0
        closed = False
        with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as s:
            request = b"POST /sparql HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100000\r\n\r\n" + b"q" * 100000
            for i in range(0, 200):  # 200 bytes, a byte every 0.1 s: 20 s unless cut off
                try:
                    s.sendall(request[i:i + 1])
                    time.sleep(0.1)
                    s.setblocking(False)
                    try:
                        if s.recv(1) == b"":
                            closed = True
                            break
                    except BlockingIOError:
                        pass
                    finally:
                        s.setblocking(True)
                        s.settimeout(5)
                except OSError:  # reset
                    closed = True
                    break
        assert closed
    finally:
        srv.shutdown()
        srv.close()
        thread.join(5)


def test_response_size_limit_in_bytes(server):
    # Regression: --max-results counts rows, so a few rows of very long values made a response of
    # any size (held in the server's memory for each client that did not read it)
    binds = 'BIND("xxxxxxxxxxxxxxxx" AS ?a0) ' + " ".join(f"BIND(CONCAT(?a{i},?a{i}) AS ?a{i + 1})" for i in range(10))
    query = "SELECT ?a10 WHERE { VALUES ?i { " + " ".join(str(i) for i in range(40)) + " } " + binds + " }"  # ~650 KB
    srv = serve.create_server(serve.Dataset(server.dataset.store_path, "the same store"), port=0, workers=1,
                              max_bytes=100_000)
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    try:
        endpoint = srv.url + "/sparql"
        for fmt in ("json", "csv", "xml"):
            status, headers, body = get(endpoint, query, format=fmt)
            assert status == 413 and headers["X-B12kg-Max-Bytes"] == "100000", (fmt, body[:100])
            assert _one_line_plain(status, headers, body) and b"--max-bytes" in body
        status, headers, body = get(endpoint, query + " LIMIT 2", format="csv")
        assert status == 200 and len(body) < 100_000  # within the limit: served whole
        construct = ("CONSTRUCT { ?s <a:p> ?a10 } WHERE { VALUES ?i { " + " ".join(str(i) for i in range(40)) + " } "
                     + binds + ' BIND(IRI(CONCAT("a:s", STR(?i))) AS ?s) }')
        status, headers, body = get(endpoint, construct, "text/turtle")
        assert status == 413 and headers["X-B12kg-Max-Bytes"] == "100000"
    finally:
        srv.shutdown()
        srv.close()
        thread.join(5)
    with pytest.raises(UsageError, match="--max-bytes"):
        serve.create_server(serve.Dataset(server.dataset.store_path, "x"), port=0, max_bytes=10)
