"""b12kg benchmark: run with `make bench` (or `python bench/run.py --sizes 1000,10000,100000`).

Prints, for synthetic cohorts of each size, the end-to-end time of the full pipeline with
provenance (`b12kg recommend … -f ndjson`, both cores), patients per second and peak memory; in
the same run the pyoxigraph parse-only floor of the same input and the naive baseline (rdflib
parse + owlrl closure + rdflib SPARQL rules + pySHACL) on a sample small enough to finish, scaled
per patient; single-patient warm latency and CLI cold start. The targets of the scale issue are
checked as ratios measured side by side, and the results are written to docs/performance.md.
Not part of the test suite's pass/fail.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
AS_OF = "2026-06-01"
BIN = Path(sys.executable).parent


def b12kg(*args: str, output: str | None = None) -> tuple[float, int]:
    """Run the CLI in a child process; return (wall seconds, peak RSS in MiB of the largest child)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t = time.perf_counter()
    subprocess.run([str(BIN / "b12kg"), *args], check=True, stdout=subprocess.DEVNULL if output is None else None)
    wall = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return wall, max(peak, before) // 1024


def synth(n: int, path: Path, seed: int = 1) -> None:
    if not path.exists():
        subprocess.run([str(BIN / "b12kg"), "synth", "--n", str(n), "--seed", str(seed), "--as-of", AS_OF, "-o", str(path)], check=True)


def parse_floor(path: Path, repeat: int = 5) -> float:
    """Median seconds for pyoxigraph to parse the cohort file (every quad materialised). One run
    of a 0.5 s parse varied from 0.48 to 0.74 s on this shared machine, which moved the ratio
    by half; the median of five is steady to a few per cent."""
    import pyoxigraph as ox

    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        n = sum(1 for _ in ox.parse(path=str(path), format=ox.RdfFormat.TURTLE))
        times.append(time.perf_counter() - t)
        assert n > 0
    return statistics.median(times)


def naive_baseline(sample: Path, patients: int) -> float:
    """rdflib parse + owlrl OWL-RL closure + every rule through rdflib's SPARQL engine + pySHACL;
    seconds per patient."""
    import owlrl
    import rdflib
    from pyshacl import validate

    from reasoner.api import default_kb
    from reasoner.vocab import sparql_prefixes

    kb = default_kb()
    t = time.perf_counter()
    g = rdflib.Dataset(default_union=True)
    for f in kb.ontology_files:
        g.parse(f, format="turtle")
    g.parse(sample, format="turtle")
    ctx = rdflib.URIRef("https://w3id.org/b12kg/run/context")
    g.add((ctx, rdflib.RDF.type, rdflib.URIRef("https://w3id.org/b12kg/EvaluationContext")))
    g.add((ctx, rdflib.URIRef("https://w3id.org/b12kg/asOf"), rdflib.Literal(AS_OF, datatype=rdflib.XSD.date)))
    flat = rdflib.Graph()
    for tr in g.triples((None, None, None)):
        flat.add(tr)
    owlrl.DeductiveClosure(owlrl.OWLRL_Semantics).expand(flat)
    for rule in kb.rules:
        text = rule.text.replace("GRAPH b12g:context", "").replace("GRAPH b12g:data", "").replace("GRAPH b12g:ontology", "")
        try:
            for tr in flat.query(text):
                flat.add(tr)
        except Exception:  # noqa: BLE001 - rdflib lacks some of Oxigraph's date arithmetic; counted as run
            pass
    validate(flat, shacl_graph=kb.shapes_rdflib, inference="none", advanced=True, allow_warnings=True)
    return (time.perf_counter() - t) / patients


def warm_latency(repeat: int = 100) -> dict[str, float]:
    """Median seconds for one patient in a warm process: the evaluation (every stage and the PROV
    report graph: ``recommend()``), and the same plus the indented JSON view (``.serialize("json")``);
    wall and process CPU time (the CPU figure is what a shared machine's noise distorts least)."""
    from reasoner import recommend

    f = ROOT / "examples" / "case45-pernicious-anaemia-paraesthesia-nonneuro-regimen.ttl"
    for _ in range(5):
        recommend(f, AS_OF).serialize("json")
    calls = (("evaluate", lambda: recommend(f, AS_OF)), ("json", lambda: recommend(f, AS_OF).serialize("json")))
    walls: dict[str, list[float]] = {name: [] for name, _ in calls}
    cpus: dict[str, list[float]] = {name: [] for name, _ in calls}
    for _ in range(repeat):  # the two interleaved, so that a noisy spell hits both alike
        for name, call in calls:
            t, c = time.perf_counter(), time.process_time()
            call()
            walls[name].append(time.perf_counter() - t)
            cpus[name].append(time.process_time() - c)
    out: dict[str, float] = {}
    for name, _ in calls:
        out[name] = statistics.median(walls[name])
        out[name + "_cpu"] = statistics.median(cpus[name])
    return out


def cold_start(repeat: int = 3) -> float:
    f = str(ROOT / "examples" / "case01-b12-179-metformin-deficient.ttl")
    return statistics.median(b12kg("recommend", f, "--as-of", AS_OF, "-f", "json")[0] for _ in range(repeat))


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = "?"
    try:
        kb = int(next(l for l in Path("/proc/meminfo").read_text().splitlines() if l.startswith("MemTotal")).split()[1])
        mem = f"{kb / 1024 / 1024:.0f} GiB"
    except (OSError, StopIteration):
        pass
    import pyoxigraph

    return (f"{cpu}, {os.cpu_count()} cores, {mem} RAM; {platform.system()} {platform.release()}; "
            f"Python {platform.python_version()}; pyoxigraph {pyoxigraph.__version__}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1000,10000", help="cohort sizes (default 1000,10000; add 100000 for the linearity target)")
    ap.add_argument("--baseline-sample", type=int, default=5, help="patients in the naive-baseline sample (default 5)")
    ap.add_argument("--workdir", default=None, help="where cohorts are generated (kept between runs)")
    ap.add_argument("--jobs", default="2")
    ap.add_argument("--out", default=str(ROOT / "docs" / "performance.md"))
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    work = Path(args.workdir or Path(tempfile.gettempdir()) / "b12kg-bench")
    work.mkdir(parents=True, exist_ok=True)

    rows = []
    for n in sizes:
        cohort = work / f"cohort-{n}.ttl"
        synth(n, cohort)
        floor = parse_floor(cohort)
        wall, peak = b12kg("recommend", str(cohort), "--as-of", AS_OF, "-f", "ndjson", "--jobs", args.jobs, "-o", os.devnull)
        rows.append({"n": n, "seconds": wall, "per_s": n / wall, "peak_mib": peak, "floor": floor, "x_floor": wall / floor})
        print(f"{n:>7} patients: {wall:8.2f} s  {n / wall:8.0f} patients/s  peak {peak} MiB  "
              f"parse floor {floor:.3f} s  ({wall / floor:.1f}x floor)", flush=True)

    sample = work / f"baseline-sample-{args.baseline_sample}.ttl"
    synth(args.baseline_sample, sample, seed=7)
    base = naive_baseline(sample, args.baseline_sample)
    print(f"naive baseline (rdflib + owlrl + rdflib SPARQL + pySHACL, {args.baseline_sample} patients): {base:.2f} s/patient", flush=True)
    warm = warm_latency()
    cold = cold_start()
    print(f"one patient warm, in process: evaluation {warm['evaluate'] * 1000:.1f} ms (CPU {warm['evaluate_cpu'] * 1000:.1f} ms), "
          f"with the JSON view {warm['json'] * 1000:.1f} ms (CPU {warm['json_cpu'] * 1000:.1f} ms); CLI cold start: {cold:.2f} s", flush=True)

    by_n = {r["n"]: r for r in rows}
    targets = []
    if 10000 in by_n:
        r = by_n[10000]
        speedup = base / (r["seconds"] / r["n"])
        targets.append(("10,000 patients: per-patient speed-up over the naive baseline", "≥ 50×", f"{speedup:,.0f}×", speedup >= 50))
        targets.append(("10,000 patients: time ÷ pyoxigraph parse-only time", "≤ 30×", f"{r['x_floor']:.1f}×", r["x_floor"] <= 30))
    if 100000 in by_n and 10000 in by_n:
        lin = by_n[100000]["seconds"] / by_n[10000]["seconds"]
        targets.append(("100,000 ÷ 10,000 time (linearity)", "≤ 12×", f"{lin:.1f}×", lin <= 12))
        targets.append(("100,000 patients: peak memory", "≤ 2 GiB", f"{by_n[100000]['peak_mib']} MiB", by_n[100000]["peak_mib"] <= 2048))
    targets.append(("one patient, warm in process: evaluation with the PROV report graph", "≤ 20 ms",
                    f"{warm['evaluate'] * 1000:.1f} ms (CPU {warm['evaluate_cpu'] * 1000:.1f} ms)", warm["evaluate"] <= 0.020))
    targets.append(("one patient, warm in process: the same plus the indented JSON view", "≤ 20 ms",
                    f"{warm['json'] * 1000:.1f} ms (CPU {warm['json_cpu'] * 1000:.1f} ms)", warm["json"] <= 0.020))
    targets.append(("`b12kg recommend` one patient, cold start", "≤ 1.5 s (guidance)", f"{cold:.2f} s", cold <= 1.5))
    for name, want, got, ok in targets:
        print(f"  {'MET ' if ok else 'GAP '} {name}: {got} (target {want})")

    lines = [
        "# Performance",
        "",
        f"Measured by `make bench` (`python bench/run.py --sizes {args.sizes}`) on {dt.date.today().isoformat()}.",
        f"Machine: {machine()}. The machine is shared and noisy: ratios measured side by side in one run",
        "are what the targets are judged on; absolute times are guidance.",
        "",
        "| patients | end to end (s) | patients/s | peak memory (MiB) | pyoxigraph parse-only (s) | × parse floor |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    lines += [f"| {r['n']:,} | {r['seconds']:.2f} | {r['per_s']:,.0f} | {r['peak_mib']} | {r['floor']:.3f} | {r['x_floor']:.1f} |" for r in rows]
    lines += [
        "",
        f"Naive baseline (rdflib parse + owlrl closure + rules in rdflib's SPARQL engine + pySHACL) on a "
        f"{args.baseline_sample}-patient sample: **{base:.2f} s per patient**.",
        f"One patient, warm, in process (median of 100, the two measures interleaved): evaluation with the PROV report graph **{warm['evaluate'] * 1000:.1f} ms** "
        f"(CPU {warm['evaluate_cpu'] * 1000:.1f} ms); with the indented JSON view **{warm['json'] * 1000:.1f} ms** "
        f"(CPU {warm['json_cpu'] * 1000:.1f} ms). `b12kg recommend` on one patient from a cold start: **{cold:.2f} s**.",
        "",
        "| target | wanted | measured | |",
        "|---|---|---|---|",
    ]
    lines += [f"| {name} | {want} | {got} | {'met' if ok else '**gap**'} |" for name, want, got, ok in targets]
    lines += ["", "End to end = `b12kg recommend COHORT.ttl --as-of 2026-06-01 -f ndjson --jobs 2` (parse, OWL RL",
              "classification, units, all rules with PROV links, SHACL, conflicts, report per patient), cohorts from",
              "`b12kg synth --seed 1`. Peak memory is the largest process's maximum resident set. End to end is",
              "one run; the parse-only floor is the median of five parses of the same file.",
              "",
              "Where the time goes, and why a target is not met, is in `docs/NOTES.md` (Known gaps)."]
    Path(args.out).write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"written {args.out}")
    print(json.dumps({"rows": rows, "baseline_s_per_patient": base, "warm_s": warm, "cold_s": cold}, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
