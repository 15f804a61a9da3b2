"""Property-based fuzzing of ``b12kg recommend|validate|convert``.

    python fuzz/run.py --n 10000 [--seed S] [--jobs 2] [--save DIR]
    python fuzz/run.py --hostile [--large] [--only REGEX] [--no-strace] [--keep]

``--hostile`` runs the hostile inputs of fuzz/hostile.py instead (remote JSON-LD contexts, XXE,
billion laughs, @base/IRIs naming local files, owl:imports, FHIR URLs, deep nesting, a 100,000-entry
bundle, binary garbage, wrong encodings, over-size, empty, FIFO and device paths, symlinks leaving
a folder), each generated on the fly and run through the CLI in its own child process under an
audit hook (and strace when installed), next to a local HTTP server that counts connections. It
prints, per run: status, case, command, outcome, exit code, wall time, peak RSS and the first stderr
line; exit 1 on a traceback, an unexpected outcome, a timeout, memory over the case's bound, any
file or network access outside the inputs, or any connection to the server. ``--large`` adds the
very large inputs (~210 MB NDJSON and ~105 MB Turtle streamed to a temp file, 512 MiB + 1 line of real
Turtle, 100,000-level Turtle nesting, and recommend on the 100,000-entry bundle): several minutes.

Inputs are generated with hypothesis (``@given`` run programmatically, no example database, no
shrinking): valid, mutated and truncated FHIR bundles, NDJSON exports and Turtle patients. Each one
goes through reasoner.cli.main in process; the properties are listed in fuzz/harness.py and
docs/reliability.md. Prints the inputs tried per kind, the property failures and the distinct ones;
exit 1 if any property failed.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `fuzz` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

if "--hostile" not in sys.argv[1:]:  # the hostile inputs need no hypothesis
    from hypothesis import HealthCheck, Phase, given, seed as hseed, settings, strategies as st  # noqa: E402

    from fuzz.harness import Stats, check_case, draw_case  # noqa: E402


def run_fuzz(n: int, seed: int = 0, order_checks: bool = True, progress: bool = False) -> Stats:
    """Generate and check ``n`` inputs in this process."""
    stats = Stats()
    workdir = tempfile.mkdtemp(prefix="b12kg-fuzz-")
    t0 = time.monotonic()

    @hseed(seed)
    @settings(max_examples=n, deadline=None, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck), derandomize=False)
    @given(st.data())
    def one(data):
        check_case(draw_case(data), workdir, stats, order_checks=order_checks)
        done = sum(stats.tried.values())
        if progress and done % 100 == 0:
            print(f"[seed {seed}] {done}/{n} inputs, {len(stats.failures)} failures, {time.monotonic() - t0:.0f}s",
                  file=sys.stderr, flush=True)

    one()
    return stats


def _worker(args):
    n, seed, order_checks, progress = args
    return run_fuzz(n, seed, order_checks, progress)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1000, help="inputs to generate (default 1000)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1), help="worker processes (default 2)")
    ap.add_argument("--no-order-checks", action="store_true", help="skip properties (d) and (e) (faster)")
    ap.add_argument("--save", default=None, metavar="DIR", help="write one reproducer per distinct failure here")
    ap.add_argument("--progress", action="store_true")
    ap.add_argument("--hostile", action="store_true", help="run the hostile inputs of fuzz/hostile.py (not the property fuzzing)")
    ap.add_argument("--large", action="store_true", help="with --hostile: also the very large inputs (minutes, GBs)")
    ap.add_argument("--only", default=None, metavar="REGEX", help="with --hostile: only the cases whose name matches")
    ap.add_argument("--no-strace", action="store_true", help="with --hostile: do not run light cases under strace")
    ap.add_argument("--keep", action="store_true", help="with --hostile: keep the generated inputs (their folder is printed)")
    a = ap.parse_args(argv)
    if a.hostile:
        from fuzz.hostile import main_hostile

        return main_hostile(large=a.large, only=a.only, trace=False if a.no_strace else None, keep=a.keep)
    t0 = time.monotonic()
    jobs = max(1, min(a.jobs, a.n))
    shares = [a.n // jobs + (1 if i < a.n % jobs else 0) for i in range(jobs)]
    tasks = [(k, a.seed * 1000 + i, not a.no_order_checks, a.progress) for i, k in enumerate(shares) if k]
    if jobs == 1:
        results = [_worker(t) for t in tasks]
    else:
        import multiprocessing as mp

        with mp.get_context("fork").Pool(jobs) as pool:
            results = pool.map(_worker, tasks)
    stats = Stats()
    for r in results:
        stats.merge(r)
    distinct: dict[str, list] = {}
    for f in stats.failures:
        distinct.setdefault(f.signature, []).append(f)
    total = sum(stats.tried.values())
    print(f"b12kg fuzz: seed {a.seed}, {total} inputs in {time.monotonic() - t0:.0f}s ({jobs} processes)")
    for k in sorted(stats.tried):
        print(f"  {k:20s} {stats.tried[k]}")
    print("exit codes: " + ", ".join(f"{k}={v}" for k, v in sorted(stats.exits.items())))
    print(f"property failures: {len(stats.failures)}; distinct: {len(distinct)}")
    for sig, fs in sorted(distinct.items(), key=lambda kv: -len(kv[1])):
        f = min(fs, key=lambda f: len(f.case.blob))
        print(f"  [{len(fs)}x] {sig}  (smallest reproducer: {f.case.kind}-{f.case.variant}, {len(f.case.blob)} bytes)")
        if a.save:
            d = Path(a.save)
            d.mkdir(parents=True, exist_ok=True)
            name = hashlib.sha1(sig.encode()).hexdigest()[:10]
            ext = {"fhir": ".json", "ndjson": ".ndjson", "turtle": ".ttl"}[f.case.kind]
            (d / (name + ext)).write_bytes(f.case.blob)
            (d / (name + ".txt")).write_text(f"{sig}\n\n{f.detail}\n", encoding="utf-8")
    return 1 if stats.failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
