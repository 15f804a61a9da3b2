"""Looking at a SPARQL text before running it: its form, whether it is an update or a
federated query (``SERVICE``), and how deeply it nests. Shared by ``b12kg serve`` and ``b12kg
query``, which both refuse SERVICE before any engine sees the text: pyoxigraph executes SERVICE
and would fetch from the network. Nesting deeper than :data:`MAX_DEPTH` is a syntax error here
(``QueryInfo.error``): the engine's recursive parser would overflow its stack and end the process.
The check is linear in time and takes constant memory, whatever the text (1 MiB in about a second).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

# ---------------------------------------------------------------------------------------------
# Looking at a query before running it: its form, and whether it is an update or federated.
# A tokenizer after the SPARQL 1.1 grammar's terminals, so that a keyword inside a string, IRI,
# comment or prefixed name is not mistaken for one, and one outside them is never missed.
# ---------------------------------------------------------------------------------------------

_BASE = ("A-Za-z\u00C0-\u00D6\u00D8-\u00F6\u00F8-\u02FF\u0370-\u037D\u037F-\u1FFF\u200C-\u200D"
         "\u2070-\u218F\u2C00-\u2FEF\u3001-\uD7FF\uF900-\uFDCF\uFDF0-\uFFFD\U00010000-\U000EFFFF")
_U = _BASE + "_"
_CH = _U + r"\-0-9\u00B7\u0300-\u036F\u203F-\u2040"
_PLX = r"%[0-9A-Fa-f]{2}|\\[_~.\-!$&'()*+,;=/?#@%]"
_ECHAR = r"\\[tbnrf\\\"']|\\u[0-9A-Fa-f]{4}|\\U[0-9A-Fa-f]{8}"
_TOKEN = re.compile("|".join([
    r"(?P<ws>\s+)",
    r"(?P<comment>#[^\n\r]*)",
    # IRIREF; the engine also accepts \u and \U escapes inside one (<http://x/\u0041#>)
    r"(?P<iri><(?:[^<>\"{}|^`\\\x00-\x20]|\\u[0-9A-Fa-f]{4}|\\U[0-9A-Fa-f]{8})*+>)",
    f"(?P<string>'''(?:(?:'|'')?(?:[^'\\\\]|{_ECHAR}))*+'''"
    f"|\"\"\"(?:(?:\"|\"\")?(?:[^\"\\\\]|{_ECHAR}))*+\"\"\""
    f"|'(?:[^'\\\\\\n\\r]|{_ECHAR})*+'"
    f"|\"(?:[^\"\\\\\\n\\r]|{_ECHAR})*+\")",
    f"(?P<var>[?$][{_U}0-9][{_U}0-9\u00B7\u0300-\u036F\u203F-\u2040]*)",
    r"(?P<langtag>@[a-zA-Z]+(?:-[a-zA-Z0-9]+)*+)",
    f"(?P<bnode>_:[{_U}0-9](?:[{_CH}.]*[{_CH}])?)",
    r"(?P<number>[0-9]+(?:\.[0-9]*)?(?:[eE][+-]?[0-9]+)?|\.[0-9]+(?:[eE][+-]?[0-9]+)?)",
    # The repeated groups are possessive (*+, ++): a plain (?:A|B)* keeps one backtracking entry per
    # character it matches (checking a 1 MiB query took ~390 MB), and nothing after them could
    # match a shorter run anyway (the character that ends a run never starts the text that follows).
    # keywords, function names and prefixed names: the whole run of name characters at once, then
    # split in Python. (A PN_PREFIX pattern tried at every position of a long run without a colon,
    # such as a.a.a.…, is quadratic: 40,000 characters took 12 s.)
    f"(?P<name>(?:[{_CH}.:]|{_PLX})++)",
    r"(?P<quote>['\"])",
    r"(?P<open>[(\[{])|(?P<close>[)\]}])|(?P<bang>!)",  # nesting, counted
    r"(?P<other>.)",
]), re.DOTALL)

_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

# The engine's parser recurses once per level of nesting: ((((…1…)))) or STR(STR(…)) some ten
# thousand levels deep overflows its stack and ends the process (a worker of b12kg serve, or b12kg
# query itself). Far deeper than any real query, and refused before the engine sees it.
MAX_DEPTH = 256

# A long chain of binary operators (1+1+…, true && true && …) is not nested, but the engine builds
# and evaluates it recursively: 10,000 of them crash the process (measured: 5,000 run, 10,000
# segfault). Real queries have a few dozen.
MAX_OPERATORS = 2000
_OPERATOR_CHARS = frozenset("+-*/&|=<>^")
_TOO_MANY_OPERATORS = f"SPARQL syntax error: more than {MAX_OPERATORS} operators in one query"

QUERY_FORMS = ("SELECT", "CONSTRUCT", "DESCRIBE", "ASK")
UPDATE_KEYWORDS = ("INSERT", "DELETE", "LOAD", "CLEAR", "CREATE", "DROP", "COPY", "MOVE", "ADD", "WITH")


@dataclass
class QueryInfo:
    form: str | None = None  # SELECT, CONSTRUCT, DESCRIBE, ASK, or None when not recognised
    update: str | None = None  # the first update keyword, when the text is (or contains) an update
    service: bool = False  # SERVICE, i.e. a federated query
    has_dataset: bool = False  # FROM / FROM NAMED
    error: str | None = None  # a lexical error (an unterminated string), or nesting deeper than MAX_DEPTH
    depth: int = 0  # the deepest nesting of brackets, parentheses and braces (with runs of unary "!")


def inspect_query(text: str) -> QueryInfo:
    """Classify a query without running it (and without trusting any engine to refuse things).

    Conservative about SERVICE: the engine's parser does not require a word boundary after a
    keyword (``trueSERVICE<…>`` and ``SERVICE:x`` run a SERVICE), so any bare word, prefix name
    or language tag that contains "service" counts. Strings, IRIs, variables and comments do not.
    """
    info = QueryInfo()
    depth = bang = 0  # open brackets; the "!" just before (each one a level of the parser too)
    operators = 0  # operator characters outside strings, IRIs and comments
    for m in _TOKEN.finditer(text):
        kind = m.lastgroup
        if kind == "open" or kind == "bang":
            if kind == "open":
                depth, bang = depth + 1, 0
            else:
                bang += 1
            if depth + bang > info.depth:
                info.depth = depth + bang
                if info.depth > MAX_DEPTH and info.error is None:
                    info.error = f"SPARQL syntax error: nested more than {MAX_DEPTH} levels deep"
            continue
        if kind == "ws" or kind == "comment":
            continue
        bang = 0
        if kind == "close":
            depth = depth - 1 if depth else 0
            continue
        if kind == "other":
            if m.group(0) in _OPERATOR_CHARS:
                operators += 1
                if operators > MAX_OPERATORS and info.error is None:
                    info.error = _TOO_MANY_OPERATORS
            continue
        if kind in ("iri", "string", "var", "bnode", "number"):
            continue
        if kind == "quote":
            if info.error is None:  # the first one only: counting lines for every quote is quadratic
                line = text.count("\n", 0, m.start()) + 1
                info.error = f"SPARQL syntax error: unterminated string at line {line}"
            continue
        run = m.group(0)
        if run[0] == "-":  # 1-1-1…: after a number, a subtraction chain reads as one name run
            operators += run.count("-")
            if operators > MAX_OPERATORS and info.error is None:
                info.error = _TOO_MANY_OPERATORS
        if kind == "langtag":
            info.service = info.service or "SERVICE" in run.upper()
            continue
        prefix, colon, _ = run.partition(":")
        if colon:  # a prefixed name: only its prefix can hide a keyword (ex:service is a name)
            info.service = info.service or "SERVICE" in prefix.upper()
            continue
        if "SERVICE" in run.upper():
            info.service = True
        for word in _WORD.findall(run):
            upper = word.upper()
            if upper in UPDATE_KEYWORDS and info.update is None:
                info.update = upper
            elif upper in QUERY_FORMS and info.form is None:
                info.form = upper
            elif upper == "FROM":
                info.has_dataset = True
    return info
