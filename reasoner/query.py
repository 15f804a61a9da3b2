"""Run an informatician's SPARQL file over one evaluation (facts, ontology, inferences, report)."""
from __future__ import annotations

import io
import json
from pathlib import Path

import pyoxigraph as ox

from .errors import InputError
from .vocab import sparql_prefixes


def run_query_file(report, path: str, fmt: str = "table") -> str:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(path, exc.strerror or str(exc)) from None
    if "PREFIX b12:" not in text and "prefix b12:" not in text:
        text = sparql_prefixes() + text
    try:
        result = report.query(text)
    except SyntaxError as exc:
        raise InputError(path, f"SPARQL syntax error: {exc}") from None
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
    if isinstance(result, bool):
        return ("true" if result else "false") + "\n"
    triples = sorted(f"{t.subject} {t.predicate} {t.object} .\n" for t in result)
    return "".join(triples)


def _fmt(term) -> str:
    if term is None:
        return ""
    return term.value
