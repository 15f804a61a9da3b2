"""Patient sources: RDF files (Turtle, N-Triples, N-Quads, JSON-LD, RDF/XML) read without network access.

Every patient source yields pyoxigraph quads for the data graph. Blank nodes are replaced by
deterministic IRIs (``urn:b12kg:bnode:<content hash>:<n>``, in order of first appearance) so that
the same input always gives the same report bytes and every fact can be cited by IRI.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

import pyoxigraph as ox

from .errors import InputError
from .vocab import G_DATA

#: Refuse inputs larger than this (bytes); a bound on memory and time.
MAX_INPUT_BYTES = 512 * 1024 * 1024

_EXTENSIONS = {
    ".ttl": ox.RdfFormat.TURTLE,
    ".turtle": ox.RdfFormat.TURTLE,
    ".nt": ox.RdfFormat.N_TRIPLES,
    ".nq": ox.RdfFormat.N_QUADS,
    ".trig": ox.RdfFormat.TRIG,
    ".jsonld": ox.RdfFormat.JSON_LD,
    ".rdf": ox.RdfFormat.RDF_XML,
    ".owl": ox.RdfFormat.RDF_XML,
    ".xml": ox.RdfFormat.RDF_XML,
}
_FORMAT_NAMES = {
    "turtle": ox.RdfFormat.TURTLE,
    "ttl": ox.RdfFormat.TURTLE,
    "nt": ox.RdfFormat.N_TRIPLES,
    "ntriples": ox.RdfFormat.N_TRIPLES,
    "nquads": ox.RdfFormat.N_QUADS,
    "trig": ox.RdfFormat.TRIG,
    "json-ld": ox.RdfFormat.JSON_LD,
    "jsonld": ox.RdfFormat.JSON_LD,
    "xml": ox.RdfFormat.RDF_XML,
    "rdfxml": ox.RdfFormat.RDF_XML,
}
_DTD = re.compile(rb"<!DOCTYPE|<!ENTITY", re.IGNORECASE)
_REMOTE_CONTEXT = re.compile(rb'"@context"\s*:\s*(\[[^\]]*)?"(https?|file|ftp):', re.IGNORECASE)


@dataclass
class UnusedInput:
    """An input record that was read but not turned into facts, and why."""

    resource: str
    reason: str
    patient: str | None = None


@dataclass
class PatientData:
    """Quads read from one or more sources, ready for the data graph, and what was not used."""

    quads: list[ox.Quad] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    unused: list[UnusedInput] = field(default_factory=list)
    resources_read: int = 0


def sniff_format(path: str, content: bytes, fmt: str | None = None) -> ox.RdfFormat:
    if fmt:
        try:
            return _FORMAT_NAMES[fmt.lower()]
        except KeyError:
            raise InputError(path, f"unknown input format '{fmt}' (use one of {', '.join(sorted(_FORMAT_NAMES))})") from None
    by_ext = _EXTENSIONS.get(Path(path).suffix.lower())
    if by_ext is not None:
        return by_ext
    head = content.lstrip()[:200]
    if head.startswith((b"{", b"[")):
        return ox.RdfFormat.JSON_LD
    if head.startswith(b"<?xml") or head.startswith(b"<rdf:RDF"):
        return ox.RdfFormat.RDF_XML
    return ox.RdfFormat.TURTLE


def _check_safe(path: str, content: bytes, fmt: ox.RdfFormat) -> None:
    if b"\x00" in content[:4096]:
        raise InputError(path, "binary content: not an RDF document")
    if fmt == ox.RdfFormat.RDF_XML and _DTD.search(content):
        raise InputError(path, "RDF/XML with a DTD or entity declaration is refused (external entities and entity expansion are not allowed)")
    if fmt == ox.RdfFormat.JSON_LD and _REMOTE_CONTEXT.search(content):
        raise InputError(path, "JSON-LD with a remote @context is refused (input is never fetched from the network); inline the context")


def parse_rdf(path: str, content: bytes | None = None, fmt: str | None = None) -> PatientData:
    """Parse one RDF document into data-graph quads. Raises InputError with file:line:column."""
    if content is None:
        p = Path(path)
        try:
            if p.stat().st_size > MAX_INPUT_BYTES:
                raise InputError(path, f"input larger than {MAX_INPUT_BYTES // (1024 * 1024)} MiB is refused")
            content = p.read_bytes()
        except FileNotFoundError:
            raise InputError(path, "no such file") from None
        except IsADirectoryError:
            raise InputError(path, "is a directory; give the RDF files inside it") from None
        except PermissionError:
            raise InputError(path, "permission denied") from None
        except OSError as exc:
            raise InputError(path, exc.strerror or str(exc)) from None
    rdf_format = sniff_format(path, content, fmt)
    _check_safe(path, content, rdf_format)
    try:
        content.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(path, f"not UTF-8 text (byte {exc.start})") from None
    digest = hashlib.sha1(content).hexdigest()[:12]
    bnodes: dict[str, ox.NamedNode] = {}

    def skolem(term):
        if isinstance(term, ox.BlankNode):
            iri = bnodes.get(term.value)
            if iri is None:
                iri = ox.NamedNode(f"urn:b12kg:bnode:{digest}:{len(bnodes)}")
                bnodes[term.value] = iri
            return iri
        return term

    base = Path(path).resolve().as_uri() if Path(path).exists() else None
    quads: list[ox.Quad] = []
    try:
        for q in ox.parse(content, format=rdf_format, base_iri=base):
            quads.append(ox.Quad(skolem(q.subject), q.predicate, skolem(q.object), G_DATA))
    except SyntaxError as exc:
        line = col = None
        if exc.args and len(exc.args) > 1 and isinstance(exc.args[1], tuple):
            _, line, col = exc.args[1][:3]
        msg = str(exc.args[0]) if exc.args else str(exc)
        msg = re.sub(r"^Parser error (at|between) line \d+ column \d+( and line \d+ column \d+)?: ", "", msg)
        raise InputError(path, f"{rdf_format.name} syntax error: {msg}", line, col) from None
    except (ValueError, OSError) as exc:
        raise InputError(path, f"cannot parse as {rdf_format.name}: {exc}") from None
    return PatientData(quads=quads, sources=[path])


def load_sources(paths: list[str], fmt: str | None = None) -> PatientData:
    data = PatientData()
    for path in paths:
        one = parse_rdf(path, fmt=fmt)
        data.quads.extend(one.quads)
        data.sources.extend(one.sources)
        data.unused.extend(one.unused)
        data.resources_read += one.resources_read
    return data
