"""Where an evaluation's triples live: an embedded Oxigraph store or any SPARQL 1.1 store.

The pipeline talks to a backend through four calls — ``query`` (SPARQL over the union of all
graphs), ``extend`` (add quads), ``quads`` (pattern match) and ``remove_node`` — so the same rule
and shape queries run unchanged in Oxigraph in process or on a remote GraphDB, Fuseki, Virtuoso
or Oxigraph server (SPARQL 1.1 Query, Update and Graph Store protocols). The remote store must
expose the union of its named graphs as the default graph (Oxigraph: ``serve
--union-default-graph``; Fuseki: ``tdb2:unionDefaultGraph true``; GraphDB/RDF4J do by default).
"""
from __future__ import annotations

import http.client
import re
import urllib.error
import urllib.parse
import urllib.request
from collections import defaultdict
from collections.abc import Iterable

import pyoxigraph as ox

from .errors import B12kgError, UsageError

#: Seconds to wait for a remote store to connect and for each read of its answer
#: (``--store-timeout``). A store that goes away or never answers is an error, never a hang.
DEFAULT_TIMEOUT = 120.0


def _check_url(url: str) -> None:
    """An http(s) URL with a host and, if given, a valid port; UsageError (one line) otherwise."""
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number in range
    except ValueError as exc:
        raise UsageError(f"--store {url}: invalid URL: {' '.join(str(exc).split())}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"--store {url}: invalid URL: give http://host[:port]/… or https://…")


class Backend:
    """The interface; see EmbeddedBackend and RemoteBackend."""

    def query(self, sparql: str, substitutions: dict | None = None):  # pragma: no cover - interface
        raise NotImplementedError

    def extend(self, quads: Iterable[ox.Quad]) -> None:  # pragma: no cover
        raise NotImplementedError

    def quads(self, subject=None, predicate=None, obj=None, graph=None) -> list[ox.Quad]:  # pragma: no cover
        raise NotImplementedError

    def remove_node(self, node: ox.NamedNode, graphs: list[ox.NamedNode]) -> None:  # pragma: no cover
        raise NotImplementedError


class EmbeddedBackend(Backend):
    def __init__(self, store: ox.Store | None = None):
        self.store = store if store is not None else ox.Store()

    def query(self, sparql: str, substitutions: dict | None = None):
        subs = {ox.Variable(k): v for k, v in (substitutions or {}).items()}
        return self.store.query(sparql, use_default_graph_as_union=True, substitutions=subs)

    def extend(self, quads: Iterable[ox.Quad]) -> None:
        self.store.extend(quads)

    def quads(self, subject=None, predicate=None, obj=None, graph=None) -> list[ox.Quad]:
        return list(self.store.quads_for_pattern(subject, predicate, obj, graph))

    def remove_node(self, node: ox.NamedNode, graphs: list[ox.NamedNode]) -> None:
        for g in graphs:
            for q in list(self.store.quads_for_pattern(node, None, None, g)) + list(self.store.quads_for_pattern(None, None, node, g)):
                self.store.remove(q)


_WHERE = re.compile(r"\bWHERE\b", re.IGNORECASE)


def substitute(sparql: str, substitutions: dict) -> str:
    """Pre-bind variables by replacing them with their values in the query body (SHACL's
    pre-binding), and drop them from a SELECT projection."""
    if not substitutions:
        return sparql
    m = _WHERE.search(sparql)
    head, body = (sparql[: m.start()], sparql[m.start():]) if m else ("", sparql)
    for name, value in substitutions.items():
        token = re.compile(r"[?$]" + re.escape(name) + r"\b")
        body = token.sub(str(value), body)
        head = token.sub("", head)
    if re.search(r"\bSELECT\s+(DISTINCT\s+|REDUCED\s+)?$", head.rstrip() + " ", re.IGNORECASE) or re.search(r"\bSELECT\s*(DISTINCT|REDUCED)?\s*$", head, re.IGNORECASE):
        head = head.rstrip() + " * "
    return head + body


class RemoteBackend(Backend):
    """A SPARQL 1.1 store over HTTP. ``url`` is the dataset base (Oxigraph layout: /query, /update,
    /store) or its query endpoint; update and Graph Store endpoints can be given explicitly."""

    def __init__(self, url: str, update: str | None = None, gsp: str | None = None, timeout: float = DEFAULT_TIMEOUT):
        for u in (url, update, gsp):
            if u is not None:
                _check_url(u)
        base = url.rstrip("/")
        if base.endswith(("/query", "/sparql")):
            root = base.rsplit("/", 1)[0]
            self.query_url = base
        else:
            root = base
            self.query_url = root + "/query"
        self.update_url = update or root + "/update"
        self.gsp_url = gsp or root + "/store"
        self.timeout = timeout

    # ---- HTTP ---------------------------------------------------------------------------------

    def _post(self, url: str, body: bytes, content_type: str, accept: str | None = None, params: dict | None = None) -> bytes:
        if params:
            url = url + ("&" if "?" in url else "?") + urllib.parse.urlencode(params)
        return self._request("POST", url, body, content_type, accept)

    def _request(self, method: str, url: str, body: bytes, content_type: str, accept: str | None = None) -> bytes:
        """One HTTP exchange; every way it can fail is a one-line B12kgError naming the URL."""
        try:
            req = urllib.request.Request(url, data=body, method=method, headers={"Content-Type": content_type})
            if accept:
                req.add_header("Accept", accept)
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                return resp.read()
        except urllib.error.HTTPError as exc:
            try:
                detail = " ".join(exc.read().decode("utf-8", "replace").split())[:300]
            except (OSError, http.client.HTTPException):
                detail = ""
            raise B12kgError(f"remote store {url}: HTTP {exc.code}: {detail}".rstrip(": ")) from None
        except ValueError as exc:  # a URL urllib cannot use (a bad port, an unclosed IPv6 bracket …)
            raise B12kgError(f"remote store {url}: invalid URL: {' '.join(str(exc).split())}") from None
        except (urllib.error.URLError, TimeoutError, ConnectionError, OSError, http.client.HTTPException) as exc:
            reason = getattr(exc, "reason", exc)
            if isinstance(reason, TimeoutError) or isinstance(exc, TimeoutError):
                raise B12kgError(f"remote store {url} did not answer within {self.timeout:g} s "
                                 "(the server is down or overloaded; --store-timeout sets the wait)") from None
            if isinstance(exc, (http.client.HTTPException, ConnectionResetError, ConnectionAbortedError, BrokenPipeError)):
                text = " ".join(str(exc).split()) or type(exc).__name__
                raise B12kgError(f"remote store {url}: the connection was lost ({text}); is the server still running?") from None
            text = " ".join(str(reason).split()) or type(exc).__name__
            raise B12kgError(f"remote store {url} is not reachable: {text}") from None

    # ---- Backend ------------------------------------------------------------------------------

    def query(self, sparql: str, substitutions: dict | None = None):
        text = substitute(sparql, substitutions or {})
        kind = _query_form(text)
        try:
            if kind in ("CONSTRUCT", "DESCRIBE"):
                data = self._post(self.query_url, text.encode("utf-8"), "application/sparql-query", "application/n-triples")
                return [q.triple if isinstance(q, ox.Quad) else q for q in ox.parse(data, format=ox.RdfFormat.N_TRIPLES)]
            data = self._post(self.query_url, text.encode("utf-8"), "application/sparql-query", "application/sparql-results+json")
            return ox.parse_query_results(data, format=ox.QueryResultsFormat.JSON)
        except (SyntaxError, ValueError) as exc:
            raise B12kgError(f"remote store {self.query_url}: unreadable answer: {' '.join(str(exc).split())[:300]}") from None

    def update(self, sparql: str) -> None:
        self._post(self.update_url, sparql.encode("utf-8"), "application/sparql-update")

    def extend(self, quads: Iterable[ox.Quad]) -> None:
        by_graph: dict = defaultdict(list)
        for q in quads:
            by_graph[q.graph_name].append(ox.Triple(q.subject, q.predicate, q.object))
        for g, triples in by_graph.items():
            body = ox.serialize(triples, format=ox.RdfFormat.N_TRIPLES) or b""
            params = {"default": ""} if isinstance(g, ox.DefaultGraph) else {"graph": g.value}
            self._post(self.gsp_url, body, "application/n-triples", params=params)

    def post_ntriples(self, graph: ox.NamedNode, body: bytes) -> None:
        """Add N-Triples text to a graph (Graph Store protocol POST)."""
        if body:
            self._post(self.gsp_url, body, "application/n-triples", params={"graph": graph.value})

    def put_graph(self, graph: ox.NamedNode, triples: Iterable[ox.Triple]) -> None:
        body = ox.serialize(list(triples), format=ox.RdfFormat.N_TRIPLES) or b""
        url = self.gsp_url + "?" + urllib.parse.urlencode({"graph": graph.value})
        self._request("PUT", url, body, "application/n-triples")

    def drop_graphs(self, graphs: list[ox.NamedNode]) -> None:
        if graphs:
            self.update(" ; ".join(f"DROP SILENT GRAPH {g}" for g in graphs))

    def quads(self, subject=None, predicate=None, obj=None, graph=None) -> list[ox.Quad]:
        s = str(subject) if subject is not None else "?s"
        p = str(predicate) if predicate is not None else "?p"
        o = str(obj) if obj is not None else "?o"
        g = str(graph) if graph is not None else "?g"
        rows = self.query(f"SELECT * WHERE {{ GRAPH {g} {{ {s} {p} {o} }} }}")
        out = []
        for r in rows:
            out.append(ox.Quad(subject if subject is not None else r["s"], predicate if predicate is not None else r["p"],
                               obj if obj is not None else r["o"], graph if graph is not None else r["g"]))
        return out

    def remove_node(self, node: ox.NamedNode, graphs: list[ox.NamedNode]) -> None:
        parts = []
        for g in graphs:
            parts.append(f"DELETE WHERE {{ GRAPH {g} {{ {node} ?p ?o }} }}")
            parts.append(f"DELETE WHERE {{ GRAPH {g} {{ ?s ?p {node} }} }}")
        self.update(" ;\n".join(parts))


def _query_form(sparql: str) -> str:
    body = re.sub(r"#[^\n]*", "", sparql)
    body = re.sub(r"(?is)\b(PREFIX\s+\S*\s*<[^>]*>|BASE\s*<[^>]*>)", "", body)
    m = re.search(r"\b(SELECT|CONSTRUCT|ASK|DESCRIBE)\b", body, re.IGNORECASE)
    return m.group(1).upper() if m else "SELECT"
