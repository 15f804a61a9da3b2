"""Command line: ``b12kg recommend|validate|query|convert`` (also ``python -m reasoner``).

Patient input is RDF, FHIR R4 JSON (a Bundle or one resource), FHIR Bulk Data NDJSON, or a
folder of them; ``convert`` prints the patient RDF a FHIR input becomes.

Exit codes: 0 ok; 1 violations found (validate); 2 bad input or usage. Errors are one line.
"""
from __future__ import annotations

import argparse
import os
import sys

from .errors import B12kgError, UsageError
from .output import OutputFile
from .output import write_output as _write

FORMATS = ("text", "json", "turtle", "jsonld", "html")
COHORT_FORMATS = ("ndjson", "csv")

#: Commands that live in their own module: each module defines ``add_parser(subparsers)``, which
#: registers its subparser with ``set_defaults(handler=run)``, and ``run(args) -> int``.
COMMAND_MODULES = (
    "reasoner.workbench.check",
    "reasoner.workbench.verify",
    "reasoner.workbench.explain",
    "reasoner.workbench.trace",
    "reasoner.serve",
    "reasoner.synth_cli",
)


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2, like the rest
        raise UsageError(f"{self.prog}: {message}")


def _common(p: argparse.ArgumentParser, store: bool = True) -> None:
    _inputs(p, required=not store)
    p.add_argument("--as-of", dest="as_of", default=None, help="evaluation date YYYY-MM-DD (default: today)")
    p.add_argument("-o", "--output", default="-", help="output file (default: stdout)")
    if store:
        p.add_argument("--store", default=None, metavar="DIR",
                       help="embedded on-disk store: inputs are loaded into it first; without inputs, every patient in it is used")
        _store_timeout(p)


def _timeout(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not seconds > 0:
        raise argparse.ArgumentTypeError(f"'{value}' is not a positive number of seconds")
    return seconds


def _store_timeout(p: argparse.ArgumentParser) -> None:
    from .backend import DEFAULT_TIMEOUT

    p.add_argument("--store-timeout", dest="store_timeout", type=_timeout, default=DEFAULT_TIMEOUT, metavar="SECONDS",
                   help=f"with --store URL: seconds to wait for the remote store to connect or answer (default {DEFAULT_TIMEOUT:g})")


def _cohort_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--jobs", type=int, default=None, help="worker processes for cohort evaluation (default: 2 with --store or ndjson/csv output)")
    p.add_argument("--batch-size", type=int, default=200, help="patients evaluated together in one batch (default 200)")
    p.add_argument("--progress", action="store_true", help="show progress on stderr")
    p.add_argument("--shacl", default="fast", choices=("fast", "pyshacl", "pyshacl-rdflib"),
                   help="SHACL engine: the fast Oxigraph validator (default) or pySHACL (reference)")


def _inputs(p: argparse.ArgumentParser, required: bool = True) -> None:
    p.add_argument("inputs", nargs="+" if required else "*", metavar="PATIENT",
                   help="patient data: RDF files (Turtle, N-Triples, JSON-LD, RDF/XML), FHIR R4 JSON (Bundle or resource), "
                        "FHIR Bulk Data NDJSON, or a folder of them")
    p.add_argument("--input-format", default=None,
                   help="force the input format (turtle, nt, jsonld, xml, fhir, ndjson); by default it is detected from the content")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="b12kg", description="Vitamin B12 deficiency neuropathy guideline reasoner.")
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser)
    rec = sub.add_parser("recommend", help="findings, recommendations, violations and conflicts per patient")
    _common(rec)
    rec.add_argument("-f", "--format", default="text", choices=FORMATS + COHORT_FORMATS)
    _cohort_options(rec)
    val = sub.add_parser("validate", help="safety and input validation only; exit 1 when a Violation is found")
    _common(val)
    val.add_argument("-f", "--format", default="text", choices=FORMATS + COHORT_FORMATS)
    _cohort_options(val)
    lod = sub.add_parser("load", help="load patient data into an embedded store (one named graph per patient)")
    _inputs(lod)
    lod.add_argument("--store", required=True, metavar="DIR", help="store directory (created if missing), or a SPARQL 1.1 store URL")
    _store_timeout(lod)
    qry = sub.add_parser("query", help="run a SPARQL query over patient + ontology + inferences + report")
    qry.add_argument("query", metavar="FILE.rq")
    _common(qry)
    qry.add_argument("-f", "--format", default="table", choices=("table", "json", "csv", "tsv", "turtle"))
    cnv = sub.add_parser("convert", help="print the patient RDF that FHIR (or RDF) input becomes, with what was not used")
    _inputs(cnv)
    cnv.add_argument("-f", "--format", default="turtle", choices=("turtle", "nt", "jsonld"))
    cnv.add_argument("-o", "--output", default="-", help="output file (default: stdout)")
    import importlib

    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name and name.startswith(exc.name):
                continue  # that command is not installed
            raise
        module.add_parser(sub)
    return parser




def _validate_view(report, fmt: str) -> str:
    import json

    if fmt == "json":
        d = report.data
        slim = {"as_of": d["as_of"], "conforms": report.conforms, "patients": [
            {"patient": p["patient"], "violations": p["violations"], "input_problems": p["input_problems"], "unused": p["unused"]}
            for p in d["patients"]]}
        return json.dumps(slim, indent=2, ensure_ascii=False) + "\n"
    if fmt == "text":
        lines = [f"Conforms: {report.conforms}"]
        for p in report.patients:
            for v in p["violations"]:
                lines.append(f"{v['severity']}: {p['patient']}: {v['id']}: {v['message']}")
            for ip in p["input_problems"]:
                lines.append(f"{ip['severity']}: {ip['resource']}: {ip['id']}: {ip['message']}")
        return "\n".join(lines) + "\n"
    return report.serialize(fmt)


def _query(args) -> str:
    from . import recommend
    from .query import run_query_file

    if args.store:
        from .store import PatientStore, RemotePatientStore

        if args.inputs:
            raise UsageError("b12kg query: give either patient files or --store DIR|URL, not both")
        target = RemotePatientStore(args.store, args.store_timeout) if _is_url(args.store) else PatientStore(args.store, read_only=True)
        return run_query_file(target, args.query, args.format)
    if not args.inputs:
        raise UsageError("b12kg query: give patient files, or --store DIR")
    report = recommend(args.inputs, args.as_of, input_format=args.input_format)
    return run_query_file(report, args.query, args.format)


def _is_url(store: str | None) -> bool:
    return bool(store) and store.startswith(("http://", "https://"))


def _load(args) -> int:
    """Stage the inputs on disk, then write them into the store a chunk of patients at a time."""
    from .api import default_kb
    from .store import PatientStore, RemotePatientStore, Staging

    with Staging.from_sources(args.inputs, fmt=args.input_format) as staged:
        target = RemotePatientStore(args.store, args.store_timeout) if _is_url(args.store) else PatientStore(args.store)
        summary = target.load(staged, default_kb())
        not_used = len(staged.unused)
    print(f"b12kg: loaded {summary['patients']} patients ({summary['triples']} triples) into {args.store}; "
          f"{not_used} input records not used; {summary['unassigned']} triples belong to no patient", file=sys.stderr)
    return 0


def _cohort(args) -> int:
    """Many patients: batches on worker processes, streamed out; results kept in the store.
    Input files are staged on disk and cut into batches from there, so memory stays flat."""
    import json

    from . import cohort
    from .api import default_kb, parse_as_of
    from .store import PatientStore, Staging

    as_of = parse_as_of(args.as_of)
    if args.format not in ("json", "text") + COHORT_FORMATS:
        raise UsageError(f"b12kg {args.command}: -f {args.format} is not available for cohorts (use json, ndjson, csv or text)")
    if _is_url(args.store):
        return _remote(args, as_of)
    if not args.store and not args.inputs:
        raise UsageError(f"b12kg {args.command}: give patient files, or --store DIR")
    pstore = PatientStore(args.store) if args.store else None
    staged = None
    try:
        if args.inputs:
            staged = Staging.from_sources(args.inputs, fmt=args.input_format)
        if pstore is not None:
            if staged is not None:
                pstore.load(staged, default_kb())
                staged.close()
                staged = None
            pstore.clear_results()
            batches, total = cohort.batches_from_store(pstore, args.batch_size), len(pstore.patients())
        else:
            batches, total = cohort.batches_from_staging(staged, args.batch_size), staged.patient_count()
        jobs = args.jobs or cohort.default_jobs()
        out = OutputFile(args.output)
        failed = violations = 0
        collected: list[dict] = []
        try:
            if args.format == "csv":
                out.write(cohort.csv_header())
            for patients, results in cohort.run_cohort(batches, as_of, jobs=jobs, keep_results=pstore is not None,
                                                       shacl=args.shacl, progress=args.progress, total=total):
                if pstore is not None and results:
                    pstore.add_results(results)
                for p in patients:
                    failed += "error" in p
                    violations += any(v["severity"] == "Violation" for v in p.get("violations", []))
                    violations += any(i["severity"] == "Violation" for i in p.get("input_problems", []))
                    if args.format == "ndjson":
                        out.write(cohort.ndjson_line(p, as_of))
                    elif args.format == "csv":
                        out.write(cohort.csv_line(p))
                    else:
                        collected.append(p)
            if args.format == "json":
                out.write(json.dumps({"as_of": as_of.isoformat(), "patients": collected}, indent=2, ensure_ascii=False) + "\n")
            elif args.format == "text":
                for p in collected:
                    out.write(cohort.csv_line(p))
        except BaseException:
            out.abandon()
            raise
        out.close()
        if pstore is not None:
            pstore.flush()
    finally:
        if staged is not None:
            staged.close()
    if failed:
        print(f"b12kg: {failed} patient(s) could not be evaluated; see their 'error' entries", file=sys.stderr)
    if args.command == "validate":
        return 1 if violations or failed else 0
    return 0


def _remote(args, as_of) -> int:
    """Evaluate every patient of a remote SPARQL 1.1 store there: the rule and shape queries run
    on the remote engine; only classification and unit conversion run here."""
    from . import cohort
    from .api import default_kb
    from .report import to_dict
    from .store import RemotePatientStore, Staging

    remote = RemotePatientStore(args.store, args.store_timeout)
    kb = default_kb()
    if args.inputs:
        with Staging.from_sources(args.inputs, fmt=args.input_format) as staged:
            remote.load(staged, kb)
    ev = remote.evaluate(kb, as_of, shacl=args.shacl)
    patients = to_dict(ev)["patients"]
    out = OutputFile(args.output)
    try:
        if args.format == "json":
            import json

            out.write(json.dumps({"as_of": as_of.isoformat(), "patients": patients}, indent=2, ensure_ascii=False) + "\n")
        elif args.format == "ndjson":
            out.writelines(cohort.ndjson_line(p, as_of) for p in patients)
        else:
            out.write(cohort.csv_header() if args.format == "csv" else "")
            out.writelines(cohort.csv_line(p) for p in patients)
    except BaseException:
        out.abandon()
        raise
    out.close()
    if args.command == "validate":
        bad = any(v["severity"] == "Violation" for p in patients for v in p["violations"] + p["input_problems"])
        return 1 if bad else 0
    return 0


def _convert(args) -> int:
    from .load import load_sources, serialize_patient_data

    data = load_sources(args.inputs, fmt=args.input_format)
    _write(serialize_patient_data(data, args.format), args.output)
    if args.format == "jsonld":  # JSON has no comments: what was not used goes to stderr
        for u in data.unused:
            print(f"b12kg: {'note' if u.note else 'unused'}: {u.resource}: {' '.join(u.reason.split())}", file=sys.stderr)
    return 0


def run(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.version:
        from . import __version__

        print(f"b12kg {__version__}")
        return 0
    if args.command is None:
        raise UsageError("b12kg: a command is required (recommend, validate, query, ...); see b12kg --help")
    if getattr(args, "handler", None) is not None:
        return args.handler(args)
    if args.command == "convert":
        return _convert(args)
    if args.command == "load":
        return _load(args)
    from . import recommend

    if args.command == "query":
        _write(_query(args), args.output)
        return 0
    if args.store or args.format in COHORT_FORMATS or args.jobs:
        return _cohort(args)
    if not args.inputs:
        raise UsageError(f"b12kg {args.command}: give patient files, or --store DIR")
    report = recommend(args.inputs, args.as_of, input_format=args.input_format)
    if args.command == "recommend":
        _write(report.serialize(args.format), args.output)
        return 0
    _write(_validate_view(report, args.format), args.output)
    has_input_violation = any(ip["severity"] == "Violation" for p in report.patients for ip in p["input_problems"])
    return 0 if report.conforms and not has_input_violation else 1


def _silence_stdout() -> None:
    """After stdout failed (full disk, closed pipe), point it at /dev/null so that the interpreter's
    own flush at exit does not print a second error."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass


def main(argv: list[str] | None = None) -> int:
    # Only a real command line (argv None) may repoint a failed stdout: a caller running main()
    # in process keeps its own stdout.
    silence = _silence_stdout if argv is None else (lambda: None)
    try:
        code = run(argv)
        sys.stdout.flush()
        return code
    except B12kgError as exc:
        print(f"b12kg: error: {exc}", file=sys.stderr)
        if isinstance(exc, UsageError) and str(exc).startswith("standard output:"):
            silence()
        return exc.exit_code
    except KeyboardInterrupt:
        print("b12kg: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        silence()
        return 0
    except OSError as exc:
        # An I/O error no command turned into a message of its own, typically writing to a full
        # disk through stdout: one line, never a traceback.
        import errno

        msg = " ".join(str(exc.strerror or exc).split())
        if exc.filename:
            where = f"{exc.filename}: "
        elif exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO):
            where = "standard output: cannot write: "
            silence()
        else:
            where = ""
        print(f"b12kg: error: {where}{msg}", file=sys.stderr)
        return 2
