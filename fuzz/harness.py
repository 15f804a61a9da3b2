"""Run one generated input through the CLI (in process) and check the properties.

(a) no traceback: exit code in {0, 1, 2}; on exit 2 stderr is exactly one line starting
    'b12kg: error:'; no exception escapes ``main()``;
(b) FHIR/NDJSON input that reads: used + unused (non-note) = resources read;
(c) determinism: the same input gives the same output bytes;
(d) shuffling the records of the input does not change the JSON report;
(e) adding another patient does not change the other patients' reports.
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import random
import re
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from hypothesis import strategies as st

from . import gen

AS_OF = "2026-06-01"
EXT = {"fhir": ".json", "ndjson": ".ndjson", "turtle": ".ttl"}


@dataclass
class Case:
    kind: str  # fhir | ndjson | turtle
    variant: str  # valid | mutated | truncated
    blob: bytes
    shuffled: bytes | None = None  # same records, another order (valid inputs)
    combined: bytes | None = None  # the input plus one more patient (valid inputs)


@dataclass
class Failure:
    prop: str
    command: str
    detail: str
    case: Case

    @property
    def signature(self) -> str:
        first = self.detail.splitlines()[0] if self.detail else ""
        first = re.sub(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", "<id>", first)
        first = re.sub(r"/tmp/\S+?/input", "<input>", first)
        return f"{self.prop}|{self.command}|{first[:160]}"


@dataclass
class Stats:
    tried: dict = field(default_factory=dict)
    exits: dict = field(default_factory=dict)
    failures: list = field(default_factory=list)

    def merge(self, other: "Stats") -> None:
        for k, v in other.tried.items():
            self.tried[k] = self.tried.get(k, 0) + v
        for k, v in other.exits.items():
            self.exits[k] = self.exits.get(k, 0) + v
        self.failures += other.failures


# ------------------------------------------------------------------------------------------
# Generation (hypothesis data object)
# ------------------------------------------------------------------------------------------

def _serialize(kind, records) -> bytes:
    if kind == "fhir":
        return gen.bundle_bytes(records)
    if kind == "ndjson":
        return gen.ndjson_bytes(records)
    return gen.turtle_bytes(records)


def draw_case(data) -> Case:
    kind = data.draw(st.sampled_from(["fhir", "ndjson", "turtle"]), label="kind")
    variant = data.draw(st.sampled_from(["valid", "mutated", "truncated"]), label="variant")
    n = data.draw(st.integers(1, 2), label="n-patients")
    patient = gen.valid_turtle_patient if kind == "turtle" else gen.valid_fhir_patient
    records = [r for _ in range(n) for r in patient(data)]
    if variant == "valid":
        blob = _serialize(kind, records)
        rng = random.Random(data.draw(st.integers(0, 2**32), label="shuffle-seed"))
        shuffled = list(records)
        rng.shuffle(shuffled)
        return Case(kind, variant, blob, shuffled=_serialize(kind, shuffled),
                    combined=_serialize(kind, records + patient(data)))
    if variant == "truncated":
        return Case(kind, variant, gen.truncate(_serialize(kind, records), data))
    if kind == "turtle":
        return Case(kind, variant, gen.mutate_turtle(records, data))
    if kind == "fhir":
        doc = json.loads(gen.bundle_bytes(records))
        if data.draw(st.integers(0, 4), label="single") == 0:  # a lone resource, not a bundle
            doc = doc["entry"][0]["resource"] if doc["entry"] else doc
        doc = gen.mutate_json(doc, data, gen.corpus())
        return Case(kind, variant, json.dumps(doc, ensure_ascii=data.draw(st.booleans())).encode("utf-8", "surrogatepass"))
    lines = [gen.mutate_json(r, data, gen.corpus()) if data.draw(st.integers(0, 2), label="mutate-line") == 0 else r for r in records]
    if data.draw(st.integers(0, 5), label="garbage-line") == 0:
        lines.append(data.draw(st.sampled_from(["", "   ", "{", "[]", "null", "42", '"x"', "{}\t{}"]), label="garbage"))
    text = "\n".join(x if isinstance(x, str) else json.dumps(x, ensure_ascii=False).replace('"urn:uuid:', '"Patient/') for x in lines)
    return Case(kind, variant, text.encode("utf-8", "surrogatepass"))


# ------------------------------------------------------------------------------------------
# Checking
# ------------------------------------------------------------------------------------------

def run_cli(argv: list[str]) -> tuple[int | None, str, str, str | None]:
    """``reasoner.cli.main(argv)`` with stdout/stderr captured; the traceback of anything that escapes."""
    from reasoner.cli import main

    out, err = io.StringIO(), io.StringIO()
    tb = None
    code = None
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except BaseException:  # noqa: BLE001 - that is the property
            tb = traceback.format_exc()
    return code, out.getvalue(), err.getvalue(), tb


def _tb_summary(tb: str) -> str:
    lines = [ln for ln in tb.strip().splitlines() if ln.strip()]
    where = [ln.strip() for ln in lines if ln.strip().startswith("File ")]
    return f"{lines[-1]} @ {where[-1] if where else '?'}"


def check_cli(cmd: str, path: str, case: Case, failures: list, stats: Stats) -> tuple[int | None, str]:
    argv = {"recommend": ["recommend", "-f", "json", "--as-of", AS_OF, path],
            "validate": ["validate", "-f", "json", "--as-of", AS_OF, path],
            "convert": ["convert", path]}[cmd]
    code, out, err, tb = run_cli(argv)
    stats.exits[f"{cmd}:{code}"] = stats.exits.get(f"{cmd}:{code}", 0) + 1
    if tb is not None:
        failures.append(Failure("a-exception", cmd, _tb_summary(tb) + "\n" + tb, case))
        return None, out
    if code not in (0, 1, 2):
        failures.append(Failure("a-exit-code", cmd, f"exit {code}; stderr {err[:300]!r}", case))
    if "Traceback" in err:
        failures.append(Failure("a-traceback-in-stderr", cmd, err.strip().splitlines()[-1], case))
    if code == 2:
        lines = err.splitlines()
        if len(lines) != 1 or not lines[0].startswith("b12kg: error:"):
            failures.append(Failure("a-error-line", cmd, f"stderr not one 'b12kg: error:' line: {err[:300]!r}", case))
    return code, out


def check_accounting(path: str, case: Case, failures: list) -> None:
    from reasoner.errors import B12kgError
    from reasoner.load import load_sources

    try:
        data = load_sources([path])
    except B12kgError:
        return
    except Exception:  # noqa: BLE001
        failures.append(Failure("a-exception", "load_sources", _tb_summary(traceback.format_exc()), case))
        return
    unused = [u.resource for u in data.unused if not u.note]
    # A resource id given twice is read twice and its second copy is listed unused as a duplicate
    # under the same IRI: identity checks cannot apply to those IRIs (the count still must).
    dup = {u.resource for u in data.unused if u.reason.startswith("duplicate:")}
    problems = []
    if len([u for u in unused if u not in dup]) != len(set(unused) - dup):
        problems.append("a resource is listed unused twice")
    if (set(unused) & set(data.used)) - dup:
        problems.append("a resource is both used and unused")
    if not {u.resource for u in data.unused if u.note} <= set(data.used):
        problems.append("a note about a resource that was not used")
    if len(data.used) + len(unused) != data.resources_read:
        problems.append(f"used {len(data.used)} + unused {len(unused)} != read {data.resources_read}")
    for p in problems:
        failures.append(Failure("b-accounting", "load_sources", p, case))


_LINE = re.compile(r"\bline \d+\b")


def _patients(out: str) -> dict:
    return {p["patient"]: p for p in json.loads(out)["patients"]}


def _order_free(out: str):
    """The JSON report with NDJSON/Turtle line numbers blanked ("s.ndjson line 4: ..."): they move
    when the lines are shuffled, by design."""
    return json.loads(_LINE.sub("line N", out))


def check_case(case: Case, workdir: str, stats: Stats, order_checks: bool = True) -> list[Failure]:
    failures: list[Failure] = []
    path = os.path.join(workdir, "input" + EXT[case.kind])
    Path(path).write_bytes(case.blob)
    key = f"{case.kind}-{case.variant}"
    stats.tried[key] = stats.tried.get(key, 0) + 1
    code, out = check_cli("recommend", path, case, failures, stats)
    code2, out2 = check_cli("recommend", path, case, failures, stats)
    if code != code2 or out != out2:
        failures.append(Failure("c-determinism", "recommend", f"exit {code} vs {code2}; outputs differ: {out != out2}", case))
    check_cli("validate", path, case, failures, stats)
    c1, cout1 = check_cli("convert", path, case, failures, stats)
    c2, cout2 = check_cli("convert", path, case, failures, stats)
    if c1 != c2 or cout1 != cout2:
        failures.append(Failure("c-determinism", "convert", f"exit {c1} vs {c2}; outputs differ", case))
    if case.kind in ("fhir", "ndjson"):
        check_accounting(path, case, failures)
    if order_checks and code == 0 and case.shuffled is not None:
        Path(path).write_bytes(case.shuffled)
        sc, sout, serr, stb = run_cli(["recommend", "-f", "json", "--as-of", AS_OF, path])
        if sc != 0 or _order_free(sout) != _order_free(out):
            if sc != 0:
                what = f"exit {sc}: {serr.strip()[:200]}"
            else:
                a, b = _patients(_LINE.sub("line N", out)), _patients(_LINE.sub("line N", sout))
                what = "keys " + ",".join(sorted({k for p in a for k in a[p] if a[p][k] != (b.get(p) or {}).get(k)}))
            failures.append(Failure("d-order", "recommend", f"report changes when records are shuffled: {what}", case))
    if order_checks and code == 0 and case.combined is not None:
        Path(path).write_bytes(case.combined)
        cc, cout, cerr, ctb = run_cli(["recommend", "-f", "json", "--as-of", AS_OF, path])
        if cc != 0:
            failures.append(Failure("e-other-patient", "recommend", f"exit {cc} after adding a patient: {cerr.strip()[:200]}", case))
        else:
            before, after = _patients(out), _patients(cout)
            changed = sorted(k for k in before if before[k] != after.get(k))
            if changed:
                failures.append(Failure("e-other-patient", "recommend", "a patient's report changes when another patient is added", case))
    stats.failures += failures
    return failures
