"""Patient sources read without network access: RDF files (Turtle, N-Triples, N-Quads, TriG, JSON-LD,
RDF/XML), FHIR R4 JSON (a Bundle or a single resource), FHIR Bulk Data NDJSON, and folders of them.

The kind of each file is detected by its content (the extension only breaks ties); FHIR input is
converted by :mod:`reasoner.fhir`. Every patient source yields pyoxigraph quads for the data graph.
Blank nodes are replaced by deterministic IRIs (``urn:b12kg:bnode:<content hash>:<n>``, in order of
first appearance) so that the same input always gives the same report bytes and every fact can be
cited by IRI.
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
    #: True when the resource itself was used and only a part of it was not (a note).
    note: bool = False


@dataclass
class PatientData:
    """Quads read from one or more sources, ready for the data graph, and what was not used."""

    quads: list[ox.Quad] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    unused: list[UnusedInput] = field(default_factory=list)
    #: FHIR resources (or records) read, and the IRIs of those that became facts. Every record
    #: read is either in ``used`` or listed in ``unused`` (entries with ``note=False``).
    resources_read: int = 0
    used: list[str] = field(default_factory=list)


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


def read_input(path: str) -> bytes:
    """The bytes of one input file; InputError (one line) when it cannot be read."""
    p = Path(path)
    try:
        if p.stat().st_size > MAX_INPUT_BYTES:
            raise InputError(path, f"input larger than {MAX_INPUT_BYTES // (1024 * 1024)} MiB is refused")
        return p.read_bytes()
    except FileNotFoundError:
        raise InputError(path, "no such file") from None
    except IsADirectoryError:
        raise InputError(path, "is a directory") from None
    except PermissionError:
        raise InputError(path, "permission denied") from None
    except OSError as exc:
        raise InputError(path, exc.strerror or str(exc)) from None


def parse_rdf(path: str, content: bytes | None = None, fmt: str | None = None) -> PatientData:
    """Parse one RDF document into data-graph quads. Raises InputError with file:line:column."""
    if content is None:
        content = read_input(path)
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


FHIR_FORMATS = ("fhir", "ndjson")
_FHIR_JSON_EXT = {".json", ".fhir"}
_NDJSON_EXT = {".ndjson", ".jsonl"}


def input_kind(path: str, content: bytes, fmt: str | None = None):
    """What a file holds, by content first: ("fhir", parsed JSON or None), ("ndjson", None) or ("rdf", None)."""
    if fmt:
        f = fmt.lower()
        if f == "fhir":
            return "fhir", None
        if f == "ndjson":
            return "ndjson", None
        sniff_format(path, content, fmt)  # unknown names fail here with the list of formats
        return "rdf", None
    ext = Path(path).suffix.lower()
    if ext in _NDJSON_EXT:
        return "ndjson", None
    if b"\x00" in content[:4096]:
        return "rdf", None  # parse_rdf refuses binary content with its own message
    head = content.lstrip(b"\xef\xbb\xbf \t\r\n")[:1]
    if ext in _EXTENSIONS and b'"resourceType"' not in content:
        return "rdf", None  # an RDF file by name, and nothing FHIR in it
    if head in (b"{", b"["):
        from .fhir import looks_like_fhir_json, parse_json

        try:
            value = parse_json(content.decode("utf-8-sig"))
        except (ValueError, RecursionError, UnicodeDecodeError):
            value = None
            first, _, rest = content.decode("utf-8", "replace").lstrip("\ufeff \t\r\n").partition("\n")
            if head == b"{" and rest.strip():
                try:
                    one = parse_json(first)
                    if isinstance(one, dict) and "resourceType" in one:
                        return "ndjson", None
                except (ValueError, RecursionError):
                    pass
            if ext in _EXTENSIONS:
                return "rdf", None
            return "fhir", None  # reported as invalid JSON with its line and column
        if ext in _EXTENSIONS and not (isinstance(value, dict) and "resourceType" in value):
            return "rdf", None
        if looks_like_fhir_json(value):
            return "fhir", value
        return "rdf", None
    if head == b"<" and re.search(rb'xmlns\s*=\s*"http://hl7\.org/fhir"', content[:4096]):
        raise InputError(path, "FHIR XML is not read: give FHIR JSON (a Bundle or a resource) or NDJSON")
    if ext in _FHIR_JSON_EXT:
        return "fhir", None  # not JSON at all: reported as invalid JSON
    return "rdf", None


def _folder_files(folder: Path) -> tuple[list[Path], list[Path]]:
    """Files directly in a folder (hidden ones skipped), and its subfolders (not read)."""
    try:
        entries = sorted(p for p in folder.iterdir() if not p.name.startswith("."))
    except OSError as exc:
        raise InputError(str(folder), exc.strerror or str(exc)) from None
    return [p for p in entries if p.is_file()], [p for p in entries if p.is_dir()]


def load_sources(paths: list[str], fmt: str | None = None) -> PatientData:
    """Read every source. FHIR inputs are converted together, so references resolve across files
    (a bulk export's Observation.ndjson points into its Patient.ndjson). A folder is read file by
    file; there one bad file or record is listed as unused and the others are still read."""
    from .fhir import Source, read_fhir

    data = PatientData()
    fhir_sources: list[Source] = []
    folder_unused: list[UnusedInput] = []
    folder_read: dict[str, list[int]] = {}

    def add_rdf(one: PatientData) -> None:
        data.quads.extend(one.quads)
        data.sources.extend(one.sources)
        data.unused.extend(one.unused)
        data.resources_read += one.resources_read
        data.used.extend(one.used)

    for path in paths:
        p = Path(path)
        if p.is_dir():
            files, subfolders = _folder_files(p)
            folder_read[path] = [0, 0]
            if not files:
                raise InputError(path, "empty folder: no FHIR or RDF file in it")
            for sub in subfolders:
                folder_unused.append(UnusedInput(sub.resolve().as_uri(), f"{sub.name}/: subfolder not read (give it as an input of its own)"))
            for f in files:
                fp = str(f)
                try:
                    content = read_input(fp)
                    kind, parsed = input_kind(fp, content, fmt)
                    if kind == "rdf" and f.suffix.lower() not in _EXTENSIONS:
                        raise InputError(fp, "not read: neither FHIR JSON/NDJSON nor an RDF file")
                    if kind == "rdf":
                        add_rdf(parse_rdf(fp, content, fmt if fmt not in FHIR_FORMATS else None))
                        folder_read[path][1] += 1
                    else:
                        fhir_sources.append(Source(fp, content, ndjson=kind == "ndjson", lenient=True, group=path, parsed=parsed))
                except InputError as exc:
                    folder_read[path][0] += 1
                    folder_unused.append(UnusedInput(f.resolve().as_uri(), f"{f.name}: {exc.message}" + (f" (line {exc.line})" if exc.line else "")))
            continue
        content = read_input(path)
        kind, parsed = input_kind(path, content, fmt)
        if kind == "rdf":
            add_rdf(parse_rdf(path, content, fmt))
        else:
            fhir_sources.append(Source(path, content, ndjson=kind == "ndjson", lenient=kind == "ndjson", parsed=parsed))
    if fhir_sources:
        add_rdf(read_fhir(fhir_sources, readable_groups={f for f, (_, ok) in folder_read.items() if ok}))
    for folder, (bad, ok) in folder_read.items():
        if not ok and not any(s.group == folder for s in fhir_sources):
            raise InputError(folder, f"nothing could be read: {folder_unused[0].reason if folder_unused else 'no file'}")
    data.resources_read += len(folder_unused)
    data.unused.extend(folder_unused)
    data.sources = list(dict.fromkeys(data.sources))
    return data


_CONVERT_PREFIXES = {
    "b12": "https://w3id.org/b12kg/",
    "local": "https://w3id.org/b12kg/CodeSystem/local/",
    "loinc": "https://loinc.org/rdf/",
    "prov": "http://www.w3.org/ns/prov#",
    "rxnorm": "http://purl.bioontology.org/ontology/RXNORM/",
    "sct": "http://snomed.info/id/",
    "xsd": "http://www.w3.org/2001/XMLSchema#",
}


def serialize_patient_data(data: PatientData, fmt: str = "turtle") -> str:
    """The patient facts as RDF text (``b12kg convert``). Turtle and N-Triples start with comment
    lines that account for every record read: how many were used, and each unused one with why."""
    triples = [q.triple for q in data.quads]
    header = []
    if data.resources_read or data.unused:
        n_unused = len({u.resource for u in data.unused if not u.note})
        header.append(f"# b12kg convert: {data.resources_read} records read, {len(data.used)} used, {n_unused} not used")
        for u in sorted(data.unused, key=lambda u: (u.note, u.resource, u.reason)):
            reason = " ".join(u.reason.split())
            header.append(f"# {'note' if u.note else 'unused'}: <{u.resource}>: {reason}")
    if fmt == "turtle":
        chunks: dict[str, list] = {}
        for t in triples:
            chunks.setdefault(str(t.subject), []).append(t)
        body = []
        for group in chunks.values():
            text = ox.serialize(group, format=ox.RdfFormat.TURTLE, prefixes=_CONVERT_PREFIXES).decode("utf-8")
            body.append("".join(ln for ln in text.splitlines(keepends=True) if not ln.startswith("@prefix")))
        prefixes = [f"@prefix {k}: <{v}> ." for k, v in sorted(_CONVERT_PREFIXES.items())]
        return "\n".join(header + prefixes) + "\n\n" + "\n".join(body)
    if fmt == "nt":
        text = ox.serialize(triples, format=ox.RdfFormat.N_TRIPLES).decode("utf-8")
        return "".join(f"{h}\n" for h in header) + text
    if fmt == "jsonld":
        return ox.serialize(triples, format=ox.RdfFormat.JSON_LD).decode("utf-8") + "\n"
    raise InputError("-f", f"unknown output format '{fmt}'")
