"""``b12kg synth``: write a synthetic cohort (see :mod:`reasoner.synth` for the distributions).

    b12kg synth --n 10000 --seed 1 -o cohort.ttl
    b12kg synth --n 500 --format ntriples -o cohort.nt
    b12kg synth --n 2000 --format fhir-ndjson -o export/     # Patient.ndjson, Observation.ndjson ...

The same seed gives the same bytes. Patients are written one by one, so any size fits in memory.
"""
from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path

from .errors import UsageError

_EXTENSIONS = {".ttl": "turtle", ".nt": "ntriples"}


def add_parser(subparsers) -> argparse.ArgumentParser:
    from .synth import DEFAULT_AS_OF, FORMATS

    p = subparsers.add_parser(
        "synth", help="write a synthetic cohort (Turtle, N-Triples or FHIR Bulk Data NDJSON)",
        description="Write a deterministic synthetic cohort of plausible patients for the guideline "
                    "(distributions documented in reasoner/synth.py). The same seed gives the same bytes.")
    p.add_argument("--n", type=int, default=1000, metavar="N", help="number of patients (default 1000)")
    p.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    p.add_argument("-o", "--output", default="-",
                   help="output file (default: stdout); with --format fhir-ndjson a directory that receives "
                        "Patient.ndjson, Observation.ndjson, Condition.ndjson, MedicationStatement.ndjson, Procedure.ndjson")
    p.add_argument("-f", "--format", default=None, choices=FORMATS,
                   help="output format (default: fhir-ndjson when -o is a directory or ends with '/', ntriples for .nt, "
                        "otherwise turtle)")
    p.add_argument("--as-of", dest="as_of", default=DEFAULT_AS_OF.isoformat(),
                   help=f"date the cohort is dated back from; no record lies after it (default {DEFAULT_AS_OF.isoformat()})")
    p.add_argument("--coverage-every", type=int, default=25, metavar="K",
                   help="every K-th patient is a constructed coverage profile (default 25; 0 = natural stratum only)")
    p.set_defaults(handler=run)
    return p


def run(args) -> int:
    from . import synth

    if args.n < 0:
        raise UsageError("b12kg synth: --n must be 0 or more")
    if args.coverage_every < 0:
        raise UsageError("b12kg synth: --coverage-every must be 0 or more")
    try:
        as_of = dt.date.fromisoformat(str(args.as_of))
    except ValueError:
        raise UsageError(f"--as-of: '{args.as_of}' is not a date (use YYYY-MM-DD)") from None
    fmt = args.format
    if fmt is None:
        is_dir = args.output != "-" and (args.output.endswith(("/", "\\")) or Path(args.output).is_dir())
        fmt = "fhir-ndjson" if is_dir else _EXTENSIONS.get(Path(args.output).suffix.lower(), "turtle")
    if fmt == "fhir-ndjson":
        if args.output == "-":
            raise UsageError("b12kg synth: --format fhir-ndjson writes a directory: give it with -o DIR")
        out = Path(args.output)
        if out.exists() and not out.is_dir():
            raise UsageError(f"{args.output}: not a directory (fhir-ndjson writes one NDJSON file per resource type)")
        try:
            synth.write(fmt, args.n, args.seed, as_of, out, coverage_every=args.coverage_every)
        except OSError as exc:
            raise UsageError(f"{args.output}: cannot write: {exc.strerror or exc}") from None
        return 0
    if args.output == "-":
        synth.write(fmt, args.n, args.seed, as_of, sys.stdout, coverage_every=args.coverage_every)
        sys.stdout.flush()
        return 0
    try:
        with open(args.output, "w", encoding="utf-8", newline="\n", buffering=1 << 20) as f:
            synth.write(fmt, args.n, args.seed, as_of, f, coverage_every=args.coverage_every)
    except OSError as exc:
        raise UsageError(f"{args.output}: cannot write: {exc.strerror or exc}") from None
    return 0
