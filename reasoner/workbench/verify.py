"""``b12kg verify``: scenario tests for guideline authors.

A *case* is a patient plus the catalog identifiers that must and must not appear in its report,
evaluated at an as-of date. Two kinds of case file are read:

* JSON (``*.expected.json``, ``*.case.json``): keys ``as_of``, ``must``, ``must_not`` (optional
  ``case``, ``title``, ``note``), and either ``"patient": "<path relative to the case file>"``
  (or a list of paths) or a patient file with the same stem next to it (``.ttl``, ``.nt``,
  ``.jsonld``, ``.fhir.json``); a FHIR twin ``fhir/<stem>.fhir.json`` beside it is run as a
  second test case of the same expectations. One test case per patient file.
* TOML in the ``tests/cases/<ID>.toml`` format: each ``[[case]]`` (``name``, optional ``as_of``,
  a Turtle ``turtle`` snippet of records, ``fires``, ``silent``) is one test case; ``fires``
  means must, ``silent`` must not. The snippet is wrapped as the test harness does (prefixes,
  patient ``ex:p``, ``b12:subject`` links).

Directories are searched recursively for case files. Exit codes: 0 every case passed; 1 a case
failed or could not be evaluated (its patient could not be read, no patient in it ...); 2 a
case file is malformed (one line naming the file, no traceback).
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import time
import tomllib
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import B12kgError, InputError
from ..output import write_output as _write

#: Suffixes of JSON case files.
JSON_CASE_SUFFIXES = (".expected.json", ".case.json")
#: Patient files looked for next to a JSON case file, in this order.
PATIENT_SUFFIXES = (".ttl", ".nt", ".jsonld", ".fhir.json")
#: Default as-of date of a TOML case (as in tests/test_catalog_cases.py).
TOML_DEFAULT_AS_OF = "2026-06-01"
#: Directories never searched when a directory is expanded.
_SKIP_DIRS = {"__pycache__", "node_modules"}
_ID_SHAPE = re.compile(r"^(DX|TX|PAIN|MON|SAFETY|INFO|CONFLICT)-[A-Z0-9-]+$")

# ---- the TOML snippet wrapper (the same small logic as tests/patients.py) ----

SNIPPET_PREFIXES = """\
@prefix b12: <https://w3id.org/b12kg/> .
@prefix xsd: <http://www.w3.org/2001/XMLSchema#> .
@prefix ex: <https://example.org/test/> .
@prefix sct: <http://snomed.info/id/> .
@prefix loinc: <https://loinc.org/rdf/> .
@prefix rxnorm: <http://purl.bioontology.org/ontology/RXNORM/> .
@prefix local: <https://w3id.org/b12kg/CodeSystem/local/> .
"""
SNIPPET_PATIENT = "https://example.org/test/p"


def snippet_turtle(snippet: str, patient: str = SNIPPET_PATIENT) -> str:
    """Records-only Turtle -> a full patient: prefixes, ``ex:p a b12:Patient``, subject links."""
    import rdflib

    b12 = rdflib.Namespace("https://w3id.org/b12kg/")
    g = rdflib.Graph()
    g.parse(data=SNIPPET_PREFIXES + snippet, format="turtle")
    p = rdflib.URIRef(patient)
    if (p, rdflib.RDF.type, b12.Patient) not in g:
        g.add((p, rdflib.RDF.type, b12.Patient))
    for s in set(g.subjects(rdflib.RDF.type, None)):
        if s != p and (s, rdflib.RDF.type, b12.Patient) not in g and (s, b12.subject, None) not in g:
            g.add((s, b12.subject, p))
    return g.serialize(format="turtle")


# ---- the model ----


@dataclass
class Case:
    """One test case: a patient, an as-of date and the expected identifiers."""

    name: str
    as_of: str
    must: list[str]
    must_not: list[str]
    patient_files: list[Path] = field(default_factory=list)  # JSON cases
    snippet: str | None = None  # TOML cases
    patient_iri: str | None = None  # restrict to one patient of the file
    # results
    status: str = "not run"  # pass | fail | error
    fired: set[str] = field(default_factory=set)
    error: str | None = None
    seconds: float = 0.0

    @property
    def missing(self) -> list[str]:
        return sorted(set(self.must) - self.fired) if self.status != "error" else []

    @property
    def unexpected(self) -> list[str]:
        return sorted(set(self.must_not) & self.fired) if self.status != "error" else []

    @property
    def patient_label(self) -> str:
        if self.snippet is not None:
            return "(Turtle snippet)"
        return ", ".join(_display(p) for p in self.patient_files)


@dataclass
class CaseFile:
    path: Path
    kind: str  # json | toml
    cases: list[Case]

    @property
    def label(self) -> str:
        return _display(self.path)


def _display(path: Path) -> str:
    try:
        return path.resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return path.as_posix()


# ---- reading case files ----


def is_json_case(path: Path) -> bool:
    return path.name.endswith(JSON_CASE_SUFFIXES)


def json_case_stem(path: Path) -> str:
    for suffix in JSON_CASE_SUFFIXES:
        if path.name.endswith(suffix):
            return path.name[: -len(suffix)]
    return path.stem


def collect(paths: list[str]) -> list[Path]:
    """Case files named or found (recursively) in the named directories, in a stable order."""
    out: list[Path] = []
    seen: set[Path] = set()
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            found = []
            for f in sorted(p.rglob("*")):
                rel = f.relative_to(p).parts
                if any(part.startswith(".") or part in _SKIP_DIRS for part in rel[:-1]):
                    continue
                if not f.is_file():
                    continue
                if is_json_case(f) or (f.suffix == ".toml" and _looks_like_toml_cases(f)):
                    found.append(f)
            if not found:
                raise InputError(raw, "no case files (*.expected.json, *.case.json, *.toml with [[case]]) in this directory")
            files = found
        elif p.is_file():
            if not (is_json_case(p) or p.suffix == ".toml"):
                raise InputError(raw, "not a case file: use *.expected.json, *.case.json or a TOML file of [[case]] tables")
            files = [p]
        else:
            raise InputError(raw, "no such file or directory")
        for f in files:
            key = f.resolve()
            if key not in seen:
                seen.add(key)
                out.append(f)
    return out


def _looks_like_toml_cases(path: Path) -> bool:
    try:
        return re.search(r"^\s*\[\[case\]\]", path.read_text(encoding="utf-8"), re.M) is not None
    except (OSError, UnicodeDecodeError):
        return False


def _id_list(path: Path, where: str, value, known: set[str] | None) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InputError(str(path), f"{where} must be a list of identifier strings")
    for v in value:
        if not _ID_SHAPE.match(v) or (known is not None and v not in known):
            raise InputError(str(path), f"{where}: '{v}' is not a catalog identifier")
    return list(dict.fromkeys(value))


def _check_as_of(path: Path, where: str, value) -> str:
    if isinstance(value, dt.date):
        return value.isoformat()
    if not isinstance(value, str):
        raise InputError(str(path), f"{where}: as_of must be a date YYYY-MM-DD")
    try:
        dt.date.fromisoformat(value)
    except ValueError:
        raise InputError(str(path), f"{where}: as_of '{value}' is not a date (use YYYY-MM-DD)") from None
    return value


def _check_disjoint(path: Path, where: str, must: list[str], must_not: list[str]) -> None:
    both = sorted(set(must) & set(must_not))
    if both:
        raise InputError(str(path), f"{where}: {', '.join(both)} listed both as must and must not")


def read_json_case(path: Path, known: set[str] | None, as_of_override: str | None) -> CaseFile:
    try:
        spec = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InputError(str(path), f"invalid JSON: {exc.msg}", exc.lineno, exc.colno) from None
    except UnicodeDecodeError as exc:
        raise InputError(str(path), f"not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise InputError(str(path), exc.strerror or str(exc)) from None
    if not isinstance(spec, dict):
        raise InputError(str(path), "a case file must be a JSON object with as_of, must and must_not")
    if "must" not in spec and "must_not" not in spec:
        raise InputError(str(path), "no 'must' or 'must_not' list")
    must = _id_list(path, "must", spec.get("must"), known)
    must_not = _id_list(path, "must_not", spec.get("must_not"), known)
    _check_disjoint(path, "case", must, must_not)
    if as_of_override is not None:
        as_of = as_of_override
    elif "as_of" in spec:
        as_of = _check_as_of(path, "case", spec["as_of"])
    else:
        raise InputError(str(path), "no 'as_of' date (add one, or give --as-of)")
    stem = json_case_stem(path)
    name = str(spec.get("case") or stem)
    patient_iri = spec.get("patient_iri")
    if patient_iri is not None and not isinstance(patient_iri, str):
        raise InputError(str(path), "patient_iri must be a string (the patient's IRI)")

    def case(files: list[Path], label: str) -> Case:
        return Case(name=label, as_of=as_of, must=must, must_not=must_not, patient_files=files, patient_iri=patient_iri)

    if "patient" in spec:
        given = spec["patient"]
        if isinstance(given, str):
            given = [given]
        if not isinstance(given, list) or not given or not all(isinstance(g, str) and g for g in given):
            raise InputError(str(path), "'patient' must be a path (or a list of paths) relative to the case file")
        files = [path.parent / g for g in given]
        for f in files:
            if not f.is_file():
                raise InputError(str(path), f"patient file '{f.as_posix()}' not found")
        return CaseFile(path, "json", [case(files, name)])
    siblings = [path.parent / (stem + s) for s in PATIENT_SUFFIXES]
    siblings = [f for f in siblings if f.is_file()]
    twin = path.parent / "fhir" / f"{stem}.fhir.json"
    if twin.is_file():
        siblings.append(twin)
    if not siblings:
        raise InputError(str(path), f"no patient: add \"patient\": \"<file>\" or put {stem}.ttl (or .nt, .jsonld, .fhir.json) next to it")
    if len(siblings) == 1:
        return CaseFile(path, "json", [case(siblings, name)])
    return CaseFile(path, "json", [case([f], f"{name} [{_kind(f, stem)}]") for f in siblings])


def _kind(patient: Path, stem: str) -> str:
    """'ttl', 'fhir' ...: how a case's patient files differ when there are several."""
    suffix = patient.name[len(stem):].lstrip(".") if patient.name.startswith(stem) else patient.name
    return suffix.removesuffix(".json") if suffix.endswith("fhir.json") else (suffix or patient.name)


def read_toml_case(path: Path, known: set[str] | None, as_of_override: str | None) -> CaseFile:
    try:
        spec = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise InputError(str(path), f"invalid TOML: {' '.join(str(exc).split())}") from None
    except UnicodeDecodeError as exc:
        raise InputError(str(path), f"not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise InputError(str(path), exc.strerror or str(exc)) from None
    raw_cases = spec.get("case")
    if not isinstance(raw_cases, list) or not raw_cases or not all(isinstance(c, dict) for c in raw_cases):
        raise InputError(str(path), "no [[case]] tables")
    file_as_of = spec.get("as_of", TOML_DEFAULT_AS_OF)
    cases = []
    names: dict[str, int] = {}
    for i, c in enumerate(raw_cases, 1):
        label = str(c.get("name") or f"case {i}")
        where = f"case {i} ('{label}')"
        if not isinstance(c.get("turtle"), str):
            raise InputError(str(path), f"{where}: no 'turtle' snippet")
        if "fires" not in c and "silent" not in c:
            raise InputError(str(path), f"{where}: no 'fires' or 'silent' list")
        must = _id_list(path, f"{where}: fires", c.get("fires"), known)
        must_not = _id_list(path, f"{where}: silent", c.get("silent"), known)
        _check_disjoint(path, where, must, must_not)
        as_of = as_of_override or _check_as_of(path, where, c.get("as_of", file_as_of))
        names[label] = names.get(label, 0) + 1
        if names[label] > 1:
            label = f"{label} ({names[label]})"
        cases.append(Case(name=label, as_of=as_of, must=must, must_not=must_not, snippet=c["turtle"]))
    return CaseFile(path, "toml", cases)


def read_case_file(path: Path, known: set[str] | None = None, as_of_override: str | None = None) -> CaseFile:
    if is_json_case(path):
        return read_json_case(path, known, as_of_override)
    return read_toml_case(path, known, as_of_override)


# ---- running ----


def known_identifiers(kb) -> set[str]:
    """Catalog identifiers of the encoding (statements in the ontology)."""
    q = """PREFIX b12: <https://w3id.org/b12kg/> PREFIX dcterms: <http://purl.org/dc/terms/>
           SELECT ?id WHERE { GRAPH ?g { ?s a b12:GuidelineStatement ; dcterms:identifier ?id } }"""
    return {row["id"].value for row in kb.ontology_store.query(q)}


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    if isinstance(exc, B12kgError):
        return text
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def run_case(case: Case, kb, label: str) -> Case:
    from ..api import recommend, recommend_text

    start = time.perf_counter()
    try:
        if case.snippet is not None:
            try:
                turtle = snippet_turtle(case.snippet)
            except Exception as exc:  # rdflib raises several kinds of syntax error
                raise InputError("turtle snippet", _one_line(exc)) from None
            report = recommend_text(turtle, case.as_of, name=label, kb=kb)
            patient = SNIPPET_PATIENT
        else:
            report = recommend([str(p) for p in case.patient_files], case.as_of, kb=kb)
            patient = case.patient_iri
        patients = [p["patient"] for p in report.patients]
        if not patients:
            raise InputError(case.patient_label, "no patient found in the patient data (is this input format supported?)")
        if patient is not None and patient not in patients:
            raise InputError(case.patient_label, f"patient <{patient}> not found (patients: {', '.join(patients)})")
        case.fired = report.ids(patient)
        case.status = "pass" if not (set(case.must) - case.fired) and not (set(case.must_not) & case.fired) else "fail"
    except Exception as exc:  # a case that cannot be evaluated is an error, never a crash
        case.status = "error"
        case.error = _one_line(exc)
    case.seconds = time.perf_counter() - start
    return case


def run_all(files: list[CaseFile], kb) -> None:
    for cf in files:
        for case in cf.cases:
            run_case(case, kb, f"{cf.label}::{case.name}")


# ---- views ----


def summary(files: list[CaseFile]) -> dict:
    cases = [c for cf in files for c in cf.cases]
    return {
        "files": len(files),
        "cases": len(cases),
        "passed": sum(c.status == "pass" for c in cases),
        "failed": sum(c.status == "fail" for c in cases),
        "errors": sum(c.status == "error" for c in cases),
    }


def rows(files: list[CaseFile], failures_only: bool = False) -> list[tuple[str, str, str, str, str]]:
    """(case, identifier, expected, got, result) per expected identifier."""
    out = []
    for cf in files:
        for c in cf.cases:
            label = f"{cf.label}::{c.name}"
            if c.status == "error":
                out.append((label, "-", "-", f"error: {c.error}", "ERROR"))
                continue
            for ident, want in [(i, True) for i in c.must] + [(i, False) for i in c.must_not]:
                got = ident in c.fired
                ok = got == want
                if failures_only and ok:
                    continue
                out.append((label, ident, "fires" if want else "silent", "fired" if got else "silent", "ok" if ok else "FAIL"))
    return out


def to_text(files: list[CaseFile], failures_only: bool = False) -> str:
    header = ("case", "identifier", "expected", "got", "result")
    body = rows(files, failures_only)
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(4)]
    lines = []
    for r in ([header, *body] if body or not failures_only else []):
        lines.append("  ".join(r[i].ljust(widths[i]) for i in range(4)) + "  " + r[4])
        if r is header:
            lines.append("  ".join("-" * w for w in widths) + "  " + "-" * 6)
    s = summary(files)
    lines.append("")
    lines.append(f"{s['cases']} cases in {s['files']} files: {s['passed']} passed, {s['failed']} failed, {s['errors']} errors")
    for cf in files:
        for c in cf.cases:
            if c.status == "fail":
                parts = []
                if c.missing:
                    parts.append(f"missing {', '.join(c.missing)}")
                if c.unexpected:
                    parts.append(f"unexpected {', '.join(c.unexpected)}")
                lines.append(f"FAIL {cf.label}::{c.name}: {'; '.join(parts)}")
            elif c.status == "error":
                lines.append(f"ERROR {cf.label}::{c.name}: {c.error}")
    return "\n".join(lines) + "\n"


def to_json(files: list[CaseFile]) -> str:
    data = {
        "summary": summary(files),
        "files": [
            {
                "file": cf.label,
                "kind": cf.kind,
                "cases": [
                    {
                        "name": c.name,
                        "as_of": c.as_of,
                        "patient": c.patient_label,
                        "status": c.status,
                        "missing": c.missing,
                        "unexpected": c.unexpected,
                        "error": c.error,
                        "fired": sorted(c.fired),
                        "checks": [
                            {"id": i, "expected": "fires" if i in c.must else "silent", "got": "fired" if i in c.fired else "silent",
                             "ok": (i in c.fired) == (i in c.must)}
                            for i in [*c.must, *c.must_not]
                        ] if c.status != "error" else [],
                        "seconds": round(c.seconds, 3),
                    }
                    for c in cf.cases
                ],
            }
            for cf in files
        ],
    }
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def to_junit(files: list[CaseFile]) -> str:
    s = summary(files)
    total_time = sum(c.seconds for cf in files for c in cf.cases)
    root = ET.Element("testsuites", name="b12kg verify", tests=str(s["cases"]), failures=str(s["failed"]),
                      errors=str(s["errors"]), time=f"{total_time:.3f}")
    for cf in files:
        suite = ET.SubElement(
            root, "testsuite", name=cf.label, tests=str(len(cf.cases)),
            failures=str(sum(c.status == "fail" for c in cf.cases)),
            errors=str(sum(c.status == "error" for c in cf.cases)), skipped="0",
            time=f"{sum(c.seconds for c in cf.cases):.3f}", file=cf.label)
        classname = json_case_stem(cf.path) if cf.kind == "json" else cf.path.stem
        for c in cf.cases:
            tc = ET.SubElement(suite, "testcase", classname=classname, name=c.name, file=cf.label, time=f"{c.seconds:.3f}")
            props = ET.SubElement(tc, "properties")
            ET.SubElement(props, "property", name="as_of", value=c.as_of)
            ET.SubElement(props, "property", name="patient", value=c.patient_label)
            if c.status == "fail":
                parts = []
                if c.missing:
                    parts.append(f"missing: {', '.join(c.missing)}")
                if c.unexpected:
                    parts.append(f"unexpected: {', '.join(c.unexpected)}")
                failure = ET.SubElement(tc, "failure", message="; ".join(parts), type="ExpectationFailed")
                detail = []
                if c.missing:
                    detail.append(f"expected to fire but did not: {', '.join(c.missing)}")
                if c.unexpected:
                    detail.append(f"expected silent but fired: {', '.join(c.unexpected)}")
                detail.append(f"fired: {', '.join(sorted(c.fired)) or '(nothing)'}")
                failure.text = "\n".join(detail)
            elif c.status == "error":
                err = ET.SubElement(tc, "error", message=c.error or "", type="CaseError")
                err.text = c.error
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


# ---- command line ----




def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "verify",
        help="run scenario cases (patient + identifiers that must / must not fire); exit 1 on any failure",
        description="Run author scenario cases: JSON (*.expected.json, *.case.json: as_of, must, must_not, patient) "
                    "and TOML (tests/cases format: [[case]] name, as_of, turtle, fires, silent). Directories are "
                    "searched recursively. Exit 0 all pass, 1 a failure or error, 2 a malformed case file.")
    p.add_argument("cases", nargs="+", metavar="CASES", help="case files or directories of case files")
    p.add_argument("--as-of", dest="as_of", default=None, metavar="DATE", help="evaluate every case at this date (overrides the cases' as_of)")
    p.add_argument("-f", "--format", default="text", choices=("text", "json"))
    p.add_argument("--junit", metavar="FILE", default=None, help="also write JUnit XML (a testsuite per case file)")
    p.add_argument("--failures-only", action="store_true", help="text table: only the rows that failed")
    p.add_argument("-o", "--output", default="-", help="output file (default: stdout)")
    p.set_defaults(handler=run)
    return p


def load(paths: list[str], as_of: str | None = None, kb=None) -> list[CaseFile]:
    """Read and check every case file (InputError on the first malformed one)."""
    from ..api import default_kb, parse_as_of

    override = parse_as_of(as_of).isoformat() if as_of is not None else None
    kb = kb or default_kb()
    known = known_identifiers(kb)
    return [read_case_file(f, known, override) for f in collect(paths)]


def verify(paths: list[str], as_of: str | None = None, kb=None) -> list[CaseFile]:
    """Read and run the cases (Python API)."""
    from ..api import default_kb

    kb = kb or default_kb()
    files = load(paths, as_of, kb)
    run_all(files, kb)
    return files


def run(args) -> int:
    files = verify(args.cases, args.as_of)
    if args.junit:
        _write(to_junit(files), args.junit)
    _write(to_json(files) if args.format == "json" else to_text(files, args.failures_only), args.output)
    s = summary(files)
    return 0 if s["failed"] == 0 and s["errors"] == 0 else 1
