"""Run an informatician's SPARQL file over one evaluation (facts, ontology, inferences, report)."""
from __future__ import annotations

import io
import json

import pyoxigraph as ox

from .errors import InputError
from .sparqltext import inspect_query
from .store import nt_term  # str() of an RDF 1.2 triple term lacks its <<( … )>>
from .vocab import sparql_prefixes


def run_query_file(report, path: str, fmt: str = "table") -> str:
    from .load import read_input

    content = read_input(path)  # a regular file of bounded size: never a FIFO or a device
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(path, f"not UTF-8 text (byte {exc.start})") from None
    info = inspect_query(text)
    if info.error:
        raise InputError(path, info.error)
    if info.service:
        # pyoxigraph executes SERVICE: b12kg query never fetches anything from the network.
        raise InputError(path, "SERVICE (federated query) is refused: b12kg query reads only the local data")
    if info.update:
        raise InputError(path, f"{info.update} is an update; b12kg query runs read-only queries (SELECT, CONSTRUCT, DESCRIBE, ASK)")
    if "PREFIX b12:" not in text and "prefix b12:" not in text:
        text = sparql_prefixes() + text
    try:
        return _render(report.query(text), fmt)
    except SyntaxError as exc:
        raise InputError(path, f"SPARQL syntax error: {' '.join(str(exc).split())}") from None
    except (RuntimeError, OSError, ValueError) as exc:  # raised by the engine, also while iterating
        raise InputError(path, f"the query failed: {' '.join(str(exc).split())}") from None


def _render(result, fmt: str) -> str:
    if isinstance(result, ox.QuerySolutions):
        variables = [v.value for v in result.variables]
        rows = [[_fmt(sol[v]) for v in variables] for sol in result]
        if fmt == "json":
            return json.dumps({"head": {"vars": variables}, "results": [dict(zip(variables, r)) for r in rows]}, indent=2) + "\n"
        if fmt in ("csv", "tsv"):
            sep = "," if fmt == "csv" else "\t"
            import csv

            buf = io.StringIO()
            w = csv.writer(buf, delimiter=sep, lineterminator="\n")
            w.writerow(variables)
            w.writerows(rows)
            return buf.getvalue()
        widths = [max([len(v)] + [len(r[i]) for r in rows]) for i, v in enumerate(variables)]
        line = "  ".join(v.ljust(widths[i]) for i, v in enumerate(variables))
        out = [line, "  ".join("-" * w for w in widths)]
        out += ["  ".join(c.ljust(widths[i]) for i, c in enumerate(r)) for r in rows]
        return "\n".join(out) + "\n"
    if isinstance(result, (bool, ox.QueryBoolean)):  # pyoxigraph answers ASK with a QueryBoolean
        return ("true" if bool(result) else "false") + "\n"
    return "".join(sorted(f"{t.subject} {t.predicate} {nt_term(t.object)} .\n" for t in result))

def _fmt(term) -> str:
    if term is None:
        return ""
    if isinstance(term, ox.Triple):  # an RDF 1.2 triple term has no .value: written as <<( … )>>
        return nt_term(term)
    return term.value
