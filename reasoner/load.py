"""Patient sources read without network access: RDF files (Turtle, N-Triples, N-Quads, TriG, JSON-LD,
RDF/XML), FHIR R4 JSON (a Bundle or a single resource), FHIR Bulk Data NDJSON, and folders of them.

The kind of each file is detected by its content (the extension only breaks ties); FHIR input is
converted by :mod:`reasoner.fhir`. Every patient source yields pyoxigraph quads for the data graph.
Blank nodes are replaced by deterministic IRIs (``urn:b12kg:bnode:<content hash>:<n>``, in order of
first appearance) so that the same input always gives the same report bytes and every fact can be
cited by IRI.

Hostile input (docs/reliability.md, "Hostile input") is refused with a one-line error naming the
file and, where there is one, the line and column; nothing named inside an input is ever opened:

* only regular files are read (a FIFO or a device such as ``/dev/zero`` is refused before it is
  read), at most :data:`MAX_INPUT_BYTES` of them, and an empty file is refused;
* the text must be UTF-8 (a UTF-8 BOM is allowed): UTF-16/32, compressed files, images and other
  binary content are named as such; an invalid byte is reported with its line and column;
* JSON-LD with a remote, file or relative ``@context`` (or ``@import``) is refused, never fetched;
  RDF/XML with a DTD or an entity declaration is refused (no external entity, no entity expansion);
* JSON-LD and RDF/XML nested deeper than :data:`MAX_NESTING` levels are refused (the parser's time
  and memory grow with the square of the depth; at a few thousand levels it overflows its stack);
* a JSON string with a lone surrogate escape (``"\\ud800"``) is not Unicode text: refused;
* IRIs (``@base``, ``owl:imports``, FHIR ``fullUrl`` and references) are names only: they are never
  dereferenced, and FHIR references resolve only within the input;
* in a folder, a symbolic link is followed only when its target lies inside the folder; a link
  that points outside it, and an entry that is not a regular file, is listed as unused, not read.
"""
from __future__ import annotations

import hashlib
import os
import re
import stat
import xml.parsers.expat
from dataclasses import dataclass, field
from pathlib import Path

import pyoxigraph as ox

from .errors import InputError
from .vocab import G_DATA

#: Refuse inputs larger than this (bytes); a bound on memory and time.
MAX_INPUT_BYTES = 512 * 1024 * 1024
#: Refuse JSON-LD and RDF/XML nested deeper than this (objects/arrays, elements). pyoxigraph's
#: JSON-LD parser needs memory growing with the square of the depth (2,000 levels: 0.8 GB) and
#: overflows its stack at about 4,000; its RDF/XML parser takes time growing with the square
#: (20,000 levels: 5 s; 100,000: more than 2 minutes). Real documents nest a few dozen levels.
MAX_NESTING = 256

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
_REMOTE_CONTEXT_MESSAGE = ("JSON-LD with a remote @context (a URL, file, relative path or @import) is refused: input is "
                           "never fetched from the network or the file system; inline the context")
_UTF8_BOM = b"\xef\xbb\xbf"
#: Byte-order marks of encodings that are not UTF-8 (longest first: UTF-32LE starts like UTF-16LE).
_OTHER_BOMS = ((b"\x00\x00\xfe\xff", "UTF-32"), (b"\xff\xfe\x00\x00", "UTF-32"),
               (b"\xfe\xff", "UTF-16"), (b"\xff\xfe", "UTF-16"))
#: Signatures of common binary files, so the message can say what the file is.
_MAGIC = ((b"\x1f\x8b", "gzip-compressed data"), (b"PK\x03\x04", "a zip archive"), (b"PK\x05\x06", "a zip archive"),
          (b"\x89PNG\r\n\x1a\n", "a PNG image"), (b"%PDF-", "a PDF document"), (b"\xff\xd8\xff", "a JPEG image"),
          (b"GIF87a", "a GIF image"), (b"GIF89a", "a GIF image"), (b"\xfd7zXZ\x00", "xz-compressed data"),
          (b"\x28\xb5\x2f\xfd", "zstd-compressed data"), (b"7z\xbc\xaf\x27\x1c", "a 7-zip archive"),
          (b"\x7fELF", "an executable (ELF)"), (b"SQLite format 3\x00", "an SQLite database"))
_BZIP2 = re.compile(rb"BZh[1-9]1AY&SY")
_NOT_REGULAR = ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
                (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


@dataclass
class UnusedInput:
    """An input record that was read but not turned into facts, and why."""

    resource: str
    reason: str
    patient: str | None = None
    #: True when the resource itself was used and only a part of it was not (a note).
    note: bool = False

    def __post_init__(self) -> None:
        # A file name that is not UTF-8 reaches Python with lone surrogates (surrogateescape); no
        # RDF literal or UTF-8 output can hold them, so they are shown as \udcff escapes.
        self.reason = printable(self.reason)


def triple_terms_too_deep(path: str) -> InputError:
    """RDF 1.2 triple terms nested inside each other beyond MAX_NESTING: refused, like JSON-LD and
    RDF/XML that deep (a few hundred levels are harmless, a few thousand overflow the stack)."""
    return InputError(path, f"RDF 1.2 triple terms nested more than {MAX_NESTING} levels deep are refused")


def printable(text: str) -> str:
    """``text`` with any lone surrogate written as a backslash escape (always valid UTF-8)."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


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
    head = content[:4096].removeprefix(_UTF8_BOM).lstrip()[:200]
    if head.startswith((b"{", b"[")):
        return ox.RdfFormat.JSON_LD
    if head.startswith(b"<?xml") or head.startswith(b"<rdf:RDF"):
        return ox.RdfFormat.RDF_XML
    return ox.RdfFormat.TURTLE


def _place(content: bytes, offset: int) -> tuple[int, int]:
    """(line, column) of a byte offset, both counted from 1; the column in characters."""
    start = content.rfind(b"\n", 0, offset) + 1
    return content.count(b"\n", 0, offset) + 1, len(content[start:offset].decode("utf-8", "replace")) + 1


def _utf16_without_bom(head: bytes) -> str | None:
    """'UTF-16LE'/'UTF-16BE' when the first bytes look like ASCII text in UTF-16 without a BOM."""
    sample = head[:512]
    if len(sample) < 4 or sample.count(0) < len(sample) // 4:
        return None
    even, odd = sample[0::2], sample[1::2]
    if odd.count(0) >= len(odd) * 3 // 4 and even.count(0) <= len(even) // 8:
        return "UTF-16LE"
    if even.count(0) >= len(even) * 3 // 4 and odd.count(0) <= len(odd) // 8:
        return "UTF-16BE"
    return None


def check_text(path: str, content: bytes) -> None:
    """Refuse, with a one-line error saying what the file is, content that is not UTF-8 text:
    UTF-16/32 (with or without a byte-order mark), compressed files, images and other binary
    content, and invalid UTF-8 (with the line and column of the first bad byte)."""
    head = content[:4096]
    for bom, name in _OTHER_BOMS:
        if head.startswith(bom):
            raise InputError(path, f"{name} text (byte-order mark {bom.hex(' ').upper()}) is not read: convert the file to UTF-8")
    utf16 = _utf16_without_bom(head)
    if utf16:
        raise InputError(path, f"looks like {utf16} text without a byte-order mark: not read; convert the file to UTF-8")
    for magic, name in _MAGIC:
        if head.startswith(magic):
            raise InputError(path, f"binary content ({name}): not an RDF or FHIR document"
                             + ("; decompress it first" if "compressed" in name or "archive" in name else ""))
    if _BZIP2.match(head):
        raise InputError(path, "binary content (bzip2-compressed data): not an RDF or FHIR document; decompress it first")
    if b"\x00" in head:
        raise InputError(path, "binary content: not an RDF or FHIR document")
    if content.isascii():
        return
    try:
        content.decode("utf-8")
    except UnicodeDecodeError as exc:
        line, col = _place(content, exc.start)
        raise InputError(path, f"not UTF-8 text: invalid byte 0x{content[exc.start]:02X} (convert the file to UTF-8)", line, col) from None


def _check_safe(path: str, content: bytes, fmt: ox.RdfFormat) -> None:
    if b"\x00" in content[:4096]:
        raise InputError(path, "binary content: not an RDF document")
    if fmt == ox.RdfFormat.RDF_XML:
        if _DTD.search(content):
            raise InputError(path, "RDF/XML with a DTD or entity declaration is refused (external entities and entity expansion are not allowed)")
        _check_xml_depth(path, content)
    if fmt == ox.RdfFormat.JSON_LD:
        if _REMOTE_CONTEXT.search(content):
            raise InputError(path, _REMOTE_CONTEXT_MESSAGE)
        text = content.decode("utf-8", "replace") if b"\\u" in content else ""
        bad = lone_surrogate(text)
        if bad is not None:
            message, pos = bad
            line = text.count("\n", 0, pos) + 1
            raise InputError(path, f"invalid JSON: {message}", line, pos - text.rfind("\n", 0, pos))
        _check_json_depth(path, content)


# A JSON string literal (possessive: linear time, also on an unterminated string).
_JSON_STRING = re.compile(rb'"[^"\\]*+(?:\\.[^"\\]*+)*+"', re.DOTALL)
_BRACKETS = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")
_NOT_BRACKETS = bytes(set(range(256)) - set(b"[]{}"))


def json_depth(content: bytes) -> int:
    """The deepest nesting of arrays and objects in a JSON text (strings skipped), without parsing it."""
    import itertools

    brackets = _JSON_STRING.sub(b"", content).translate(None, _NOT_BRACKETS).translate(_BRACKETS)
    if not brackets:
        return 0
    return max(itertools.accumulate(memoryview(brackets).cast("b")))


def _check_json_depth(path: str, content: bytes) -> None:
    if content.count(b"[") + content.count(b"{") <= MAX_NESTING:
        return
    depth = json_depth(content)
    if depth > MAX_NESTING:
        raise InputError(path, f"JSON nested {depth} levels deep is refused (at most {MAX_NESTING})")


def _check_xml_depth(path: str, content: bytes) -> None:
    """Refuse XML nested deeper than MAX_NESTING elements; not well-formed XML is refused with the
    place of the error (expat, which never loads anything: the DTD was refused before)."""
    if content.count(b"<") <= MAX_NESTING:
        return
    parser = xml.parsers.expat.ParserCreate()
    depth = 0

    class _TooDeep(Exception):
        pass

    def start(name, attrs):
        nonlocal depth
        depth += 1
        if depth > MAX_NESTING:
            raise _TooDeep

    def end(name):
        nonlocal depth
        depth -= 1

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    try:
        parser.Parse(content, True)
    except _TooDeep:
        raise InputError(path, f"XML nested more than {MAX_NESTING} elements deep is refused",
                         parser.CurrentLineNumber, parser.CurrentColumnNumber + 1) from None
    except xml.parsers.expat.ExpatError as exc:
        raise InputError(path, f"{ox.RdfFormat.RDF_XML.name} syntax error: {xml.parsers.expat.ErrorString(exc.code)}",
                         exc.lineno, exc.offset + 1) from None


_SURROGATE_ESCAPE = re.compile(r"(\\+)u([dD][89a-fA-F][0-9a-fA-F]{2})(?:\\u([dD][c-fC-F][0-9a-fA-F]{2}))?")


def lone_surrogate(text: str) -> tuple[str, int] | None:
    """(message, character offset) of the first ``\\uD800``-``\\uDFFF`` escape in a JSON text that is
    not half of a surrogate pair: JSON accepts it, but it is not Unicode text and cannot be written out."""
    if "\\u" not in text:
        return None
    for m in _SURROGATE_ESCAPE.finditer(text):
        if len(m.group(1)) % 2 == 0:
            continue  # an escaped backslash followed by the letter u
        if m.group(3) is not None and m.group(2)[1].lower() in "89ab":
            continue  # a high surrogate followed by a low one: a valid pair
        return f"lone surrogate '\\u{m.group(2)}' is not Unicode text", m.start() + len(m.group(1)) - 1
    return None


def read_input(path: str, identity: tuple[int, int] | None = None) -> bytes:
    """The bytes of one input file; InputError (one line) when it cannot or must not be read.

    Only a regular file is read: a FIFO, a device (``/dev/zero``, ``/dev/stdin``) or a socket is
    refused before anything is read from it (opened non-blocking, so a FIFO without a writer does
    not block). At most MAX_INPUT_BYTES are read, whatever the size the file system reports.
    With ``identity`` (device, inode), the file opened must be that one (see _folder_files)."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise InputError(path, "no such file") from None
    except IsADirectoryError:
        raise InputError(path, "is a directory") from None
    except PermissionError:
        raise InputError(path, "permission denied") from None
    except OSError as exc:
        raise InputError(path, exc.strerror or str(exc)) from None
    try:
        st = os.fstat(fd)
        if identity is not None and (st.st_dev, st.st_ino) != identity:
            raise InputError(path, "changed between the folder listing and the read (replaced, or swapped for a link): not read")
        if stat.S_ISDIR(st.st_mode):
            raise InputError(path, "is a directory")
        if not stat.S_ISREG(st.st_mode):
            kind = next((name for test, name in _NOT_REGULAR if test(st.st_mode)), "special file")
            raise InputError(path, f"{kind}, not a regular file: not read (give a regular file)")
        limit = MAX_INPUT_BYTES // (1024 * 1024)
        if st.st_size > MAX_INPUT_BYTES:
            raise InputError(path, f"input of {st.st_size:,} bytes is refused: larger than {limit} MiB ({MAX_INPUT_BYTES:,} bytes)")
        os.set_blocking(fd, True)
        with open(fd, "rb", closefd=False) as f:
            content = f.read(st.st_size + 1)
            if len(content) > st.st_size:  # grew while reading, or a size the file system does not tell
                chunks = [content]
                size = len(content)
                while size <= MAX_INPUT_BYTES:
                    chunk = f.read(1024 * 1024)
                    if not chunk:
                        break
                    chunks.append(chunk)
                    size += len(chunk)
                if size > MAX_INPUT_BYTES:
                    raise InputError(path, f"input is refused: larger than {limit} MiB ({MAX_INPUT_BYTES:,} bytes)")
                content = b"".join(chunks)
    except InputError:
        raise
    except OSError as exc:
        raise InputError(path, exc.strerror or str(exc)) from None
    finally:
        os.close(fd)
    if not content[:4096].removeprefix(_UTF8_BOM).strip() and not content.removeprefix(_UTF8_BOM).strip():
        raise InputError(path, "empty file: no patient data in it")
    return content


def parse_rdf(path: str, content: bytes | None = None, fmt: str | None = None, *, checked: bool = False) -> PatientData:
    """Parse one RDF document into data-graph quads. Raises InputError with file:line:column.
    ``checked``: check_text was already applied to ``content``."""
    if content is None:
        content = read_input(path)
        checked = False
    if not checked:
        check_text(path, content)
    content = content.removeprefix(_UTF8_BOM)
    rdf_format = sniff_format(path, content, fmt)
    _check_safe(path, content, rdf_format)
    digest = hashlib.sha1(content).hexdigest()[:12]
    bnodes: dict[str, ox.NamedNode] = {}

    def skolem(term, depth: int = 0):
        if isinstance(term, ox.BlankNode):
            iri = bnodes.get(term.value)
            if iri is None:
                iri = ox.NamedNode(f"urn:b12kg:bnode:{digest}:{len(bnodes)}")
                bnodes[term.value] = iri
            return iri
        if isinstance(term, ox.Triple):  # an RDF 1.2 triple term: its blank nodes too
            if depth >= MAX_NESTING:
                raise triple_terms_too_deep(path)
            return ox.Triple(skolem(term.subject, depth + 1), term.predicate, skolem(term.object, depth + 1))
        return term

    base = Path(path).resolve().as_uri() if Path(path).exists() else None
    quads: list[ox.Quad] = []
    try:
        for q in ox.parse(content, format=rdf_format, base_iri=base):
            quads.append(ox.Quad(skolem(q.subject), q.predicate, skolem(q.object), G_DATA))
    except SyntaxError as exc:
        raise rdf_syntax_error(path, rdf_format, exc) from None
    except (ValueError, OSError) as exc:
        raise InputError(path, f"cannot parse as {rdf_format.name}: {exc}") from None
    return PatientData(quads=quads, sources=[path])


def rdf_syntax_error(path: str, rdf_format: ox.RdfFormat, exc: SyntaxError) -> InputError:
    """pyoxigraph's SyntaxError as a one-line InputError with the line and column (parse_rdf and
    the streaming reader of reasoner.store give the same message)."""
    line = col = None
    if exc.args and len(exc.args) > 1 and isinstance(exc.args[1], tuple):
        _, line, col = exc.args[1][:3]
    msg = str(exc.args[0]) if exc.args else str(exc)
    if "LoadDocumentCallback" in msg:  # pyoxigraph has no document loader: nothing was fetched
        return InputError(path, _REMOTE_CONTEXT_MESSAGE)
    msg = re.sub(r"^Parser error (at|between) line \d+ column \d+( and line \d+ column \d+)?: ", "", msg)
    return InputError(path, f"{rdf_format.name} syntax error: {msg}", line, col)


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


def _folder_files(folder: Path) -> tuple[list[tuple[Path, tuple[int, int]]], list[Path], list[UnusedInput]]:
    """Files directly in a folder (hidden ones skipped) with the identity (device, inode) of what
    was checked, its subfolders (not read), and the entries that are not read at all: a symbolic
    link whose target is outside the folder (never opened: a folder must not become a way to read
    /etc/passwd), and anything that is not a regular file or a folder (a FIFO, a device, a socket,
    a dangling link). read_input compares the identity with what it opens, so an entry swapped for
    a link to somewhere else between the listing and the read is refused, not read."""
    try:
        entries = sorted(p for p in folder.iterdir() if not p.name.startswith("."))
        inside = folder.resolve()
    except OSError as exc:
        raise InputError(str(folder), exc.strerror or str(exc)) from None
    files: list[tuple[Path, tuple[int, int]]] = []
    subfolders: list[Path] = []
    skipped: list[UnusedInput] = []
    for p in entries:
        iri = (inside / p.name).as_uri()
        try:
            st = p.lstat()  # the entry itself: a later swap for a link changes its identity
            if stat.S_ISLNK(st.st_mode):
                target = p.resolve()
                if target != inside and inside not in target.parents:
                    skipped.append(UnusedInput(iri, f"{p.name}: symbolic link pointing outside the folder: not followed "
                                                    "(give its target as an input of its own)"))
                    continue
                st = target.lstat()
            mode = st.st_mode
        except (OSError, RuntimeError) as exc:  # a dangling link or a loop of links
            skipped.append(UnusedInput(iri, f"{p.name}: cannot be read: {getattr(exc, 'strerror', None) or exc}"))
            continue
        if stat.S_ISDIR(mode):
            subfolders.append(p)
        elif stat.S_ISREG(mode):
            files.append((p, (st.st_dev, st.st_ino)))
        else:
            kind = next((name for test, name in _NOT_REGULAR if test(mode)), "special file")
            skipped.append(UnusedInput(iri, f"{p.name}: {kind}, not a regular file: not read"))
    return files, subfolders, skipped


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
            files, subfolders, skipped = _folder_files(p)
            folder_read[path] = [0, 0]
            if not files:
                raise InputError(path, "empty folder: no FHIR or RDF file in it"
                                 + (f" ({skipped[0].reason})" if skipped else ""))
            folder_unused.extend(skipped)
            for sub in subfolders:
                folder_unused.append(UnusedInput((p.resolve() / sub.name).as_uri(), f"{sub.name}/: subfolder not read (give it as an input of its own)"))
            for f, identity in files:
                fp = str(f)
                try:
                    content = read_input(fp, identity)
                    check_text(fp, content)
                    kind, parsed = input_kind(fp, content, fmt)
                    if kind == "rdf" and f.suffix.lower() not in _EXTENSIONS:
                        raise InputError(fp, "not read: neither FHIR JSON/NDJSON nor an RDF file")
                    if kind == "rdf":
                        add_rdf(parse_rdf(fp, content, fmt if fmt not in FHIR_FORMATS else None, checked=True))
                        folder_read[path][1] += 1
                    else:
                        fhir_sources.append(Source(fp, content, ndjson=kind == "ndjson", lenient=True, group=path, parsed=parsed))
                    parsed = None  # held by the Source only, so the importer can free it
                except InputError as exc:
                    folder_read[path][0] += 1
                    folder_unused.append(UnusedInput(f.resolve().as_uri(), f"{f.name}: {exc.message}" + (f" (line {exc.line})" if exc.line else "")))
            continue
        content = read_input(path)
        check_text(path, content)
        kind, parsed = input_kind(path, content, fmt)
        if kind == "rdf":
            add_rdf(parse_rdf(path, content, fmt, checked=True))
        else:
            fhir_sources.append(Source(path, content, ndjson=kind == "ndjson", lenient=kind == "ndjson", parsed=parsed))
        parsed = None
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
