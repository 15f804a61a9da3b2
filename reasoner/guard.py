"""Guards: triples a query cannot match without, read from its text once.

A rule or shape query whose top-level group (the WHERE clause's own braces, outside any nested
OPTIONAL, UNION, MINUS, FILTER, GRAPH or subquery) contains ``?x a <Class>`` (or any constant
predicate with a constant object, e.g. ``?item b12:statement stmt:TX-ORAL-MILD``) cannot return a
row when the store holds no triple with that predicate and object. Most rules describe one clinical situation, so for
one patient most of them are in that case; checking an index entry (about 1 µs) instead of
running the query (about 0.1 ms) saves several milliseconds per evaluation. The guard is only an
optimisation: tests/test_parity.py checks reports are identical with and without it.
"""
from __future__ import annotations

import re

_PREFIX = re.compile(r"PREFIX\s+([A-Za-z][\w-]*)?:\s*<([^>]*)>", re.IGNORECASE)
_IRI = re.compile(r"<[^<>\"{}|^`\\\s]*>")
_WHERE = re.compile(r"\bWHERE\s*\{", re.IGNORECASE)
_TERM = r"(?:<[^>\s]*>|[A-Za-z][\w-]*:[\w-]+)"
#: a constant predicate and a constant object right after a subject variable or a ';' (so neither
#: can be a constant subject), the object ending its pair (not part of a property path)
_PAIR = re.compile(r"(?:[?$][A-Za-z_]\w*|;)\s*(a|" + _TERM + r")\s+(" + _TERM + r")(?=\s*(?:[;.,}]|$)|\s+[A-Za-z?$])")
RDF_TYPE = "http://www.w3.org/1999/02/22-rdf-syntax-ns#type"


def _strip(text: str) -> str:
    """The query with comments removed and string literals blanked (IRIs kept)."""
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == "#":
            j = text.find("\n", i)
            i = n if j < 0 else j
            continue
        if c == "<":
            m = _IRI.match(text, i)
            if m:
                out.append(m.group(0))
                i = m.end()
                continue
        if c in "\"'":
            quote = c * 3 if text.startswith(c * 3, i) else c
            j = i + len(quote)
            while j < n and not text.startswith(quote, j):
                j += 2 if text[j] == "\\" else 1
            out.append(' "" ')
            i = j + len(quote)
            continue
        out.append(c)
        i += 1
    return "".join(out)


def required_triples(query: str) -> tuple[tuple[str, str], ...]:
    """(predicate, object) IRIs the query's top-level group requires a triple with (may be empty)."""
    prefixes = {p or "": ns for p, ns in _PREFIX.findall(query)}
    text = _strip(query)
    m = _WHERE.search(text)
    if not m:
        return ()
    depth, parens, top = 1, 0, []
    for c in text[m.end():]:
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                break
        elif depth == 1:
            if c == "(":
                parens += 1
            elif c == ")":
                parens -= 1
            elif parens == 0:
                top.append(c)
                continue
        top.append(" " if depth > 1 or parens > 0 else "")
    def iri(term: str) -> str | None:
        if term == "a":
            return RDF_TYPE
        if term.startswith("<"):
            return term[1:-1]
        prefix, local = term.split(":", 1)
        return prefixes[prefix] + local if prefix in prefixes else None

    out = []
    for p, o in _PAIR.findall("".join(top)):
        pi, oi = iri(p), iri(o)
        if pi is None or oi is None:
            return ()  # a name this query does not declare: no guard rather than a wrong one
        out.append((pi, oi))
    return tuple(dict.fromkeys(out))
