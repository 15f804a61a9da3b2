"""Hostile input (docs/reliability.md, "Hostile input"; issue 6, item 2).

Every hostile input class has a test here. Each input is generated on the fly by fuzz/hostile.py
and run through the real CLI (``reasoner.cli.main``: ``recommend -f json`` and ``convert``) in a
child process that records, with a Python audit hook, any file opened outside the inputs' folder
(the project's code and encoding, Python and the virtualenv excepted), any socket, URL, subprocess
or exec; when strace is installed the child also runs under ``strace -f`` so that pyoxigraph's own
(Rust) file and network use is watched too. Inputs that name files or URLs point at a canary file
whose content must never appear in any output and at a local HTTP server that must see no
connection. Each run must end as its case says: refused (exit 2, one ``b12kg: error: <file>...``
line naming the file, and the line and column where there is one, no traceback, no output) or
processed (exit 0, with the records that cannot be used listed as unused).

The light cases run in one child process (the knowledge base is loaded once; shared between xdist
workers through a file lock). The heavy ones (100,000-level nesting, the 100,000-entry bundle,
/dev/zero) run alone so that their wall time and peak RSS are measured and bounded. The very large
inputs (~105-210 MB) are in ``python fuzz/run.py --hostile --large`` only.
"""
from __future__ import annotations

import fcntl
import json
import os
import sys
from dataclasses import asdict
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fuzz import hostile as H  # noqa: E402
from reasoner import load  # noqa: E402
from reasoner.errors import InputError  # noqa: E402

CASES = {c.name: c for c in H.cases()}
LIGHT = [c for c in CASES.values() if not c.heavy and not c.large]
HEAVY = [c for c in CASES.values() if c.heavy and not c.large]


def _serialise(outcomes, hits, env) -> dict:
    return {"hits": len(hits), "token": env.token, "strace": H.strace_available(),
            "outcomes": [{"case": o.case.name, "command": o.command, "paths": o.paths, "run": asdict(o.run),
                          "problems": o.problems} for o in outcomes]}


@pytest.fixture(scope="module")
def light(tmp_path_factory):
    """All light cases, run once per test session (xdist workers share the result)."""
    shared = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        shared = shared.parent
    result = shared / "hostile-light.json"
    with open(shared / "hostile-light.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if not result.exists():
                base = tmp_path_factory.mktemp("hostile")
                with H.CountingServer() as server:
                    env = H.make_env(server.port, str(base))
                    outcomes = H.run_cases(LIGHT, base, env, batch=True, trace=H.strace_available())
                    hits = list(server.hits)
                result.write_text(json.dumps(_serialise(outcomes, hits, env)), encoding="utf-8")
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    data = json.loads(result.read_text(encoding="utf-8"))
    by_case: dict[str, list[dict]] = {}
    for o in data["outcomes"]:
        by_case.setdefault(o["case"], []).append(o)
    data["by_case"] = by_case
    return data


def _check(light, prefix: str | tuple[str, ...]) -> list[dict]:
    names = [n for n in light["by_case"] if n.startswith(prefix)]
    assert names, prefix
    runs = [o for n in names for o in light["by_case"][n]]
    report = "\n".join(f"{o['case']} {o['command']}: {p}" for o in runs for p in o["problems"])
    assert not report, report
    assert light["hits"] == 0, "a hostile input made the CLI connect to the test server"
    for o in runs:  # the audit hook saw nothing outside the inputs (checked in problems(); explicit here)
        assert o["run"]["events"] == [] and o["run"]["strace"] == []
        assert "Traceback" not in o["run"]["stderr"]
    return runs


def _line(o: dict) -> str:
    return o["run"]["stderr"].strip()


# --- one test per hostile input class -----------------------------------------------------------


def test_jsonld_remote_context_refused_never_fetched(light):
    """http, https, file, relative, array, @import, property-scoped and \\u-escaped contexts."""
    runs = _check(light, "jsonld-context-")
    assert len({o["case"] for o in runs}) == 8
    assert all(o["run"]["code"] == 2 and "remote @context" in _line(o) for o in runs)


def test_rdfxml_external_entities_and_billion_laughs_refused(light):
    runs = _check(light, ("rdfxml-xxe", "rdfxml-billion-laughs"))
    assert all(o["run"]["code"] == 2 and "DTD or entity declaration" in _line(o) for o in runs)


def test_rdfxml_base_and_xinclude_are_names_only(light):
    runs = _check(light, "rdfxml-base-xinclude")
    assert all(o["run"]["code"] == 0 for o in runs)


def test_turtle_base_and_iris_naming_local_files_are_not_read(light):
    """@base <file:///etc/> with <passwd> as the patient: processed, /etc/passwd never opened."""
    runs = _check(light, ("turtle-base-file", "turtle-local-iris"))
    base = [o for o in runs if o["case"] == "turtle-base-file" and o["command"] == "recommend"][0]
    assert [p["patient"] for p in json.loads(base["run"]["stdout"])["patients"]] == ["file:///etc/passwd"]


def test_owl_imports_not_followed(light):
    runs = _check(light, "turtle-owl-imports")
    convert = [o for o in runs if o["command"] == "convert"][0]
    assert "owl#imports" in convert["run"]["stdout"]  # kept as data, not followed


def test_fhir_urls_resolve_within_the_input_only(light):
    runs = _check(light, "fhir-url-")
    refs = [o for o in runs if o["case"] == "fhir-url-references" and o["command"] == "recommend"][0]
    patients = json.loads(refs["run"]["stdout"])["patients"]
    (patient,) = [p for p in patients if p["patient"]]  # the Binary belongs to no patient: listed under ""
    assert patient["patient"].startswith("http://127.0.0.1:") and patient["patient"].endswith("/fhir/Patient/p1")
    assert "DX-B12-DEFICIENT" in {f["id"] for f in patient["findings"]}  # the Observation's subject URL resolved in the bundle
    unused = {u["resource"]: u["reason"] for p in patients for u in p["unused"]}
    assert set(unused) == {"urn:fhir:DocumentReference/doc", "urn:fhir:Binary/b"}
    dangling = [o for o in runs if o["case"] == "fhir-url-dangling-bundle"][0]
    assert "points to no resource in the input" in _line(dangling)


def test_deep_nesting_10000_levels(light):
    runs = _check(light, tuple(f"deep-{k}-10000" for k in ("array", "object", "ndjson", "jsonld", "xml", "turtle-list", "turtle-bnode")))
    assert len(runs) == 14


@pytest.mark.parametrize("name", sorted(c.name for c in HEAVY))
def test_heavy_input_bounded_time_and_memory(name, tmp_path):
    """100,000-level nesting (JSON, NDJSON, JSON-LD, RDF/XML), the 100,000-entry bundles and
    /dev/zero: each alone in a child process, with wall time and peak RSS bounded by the case
    (60 s and 1.5 GiB; 120 s for convert on the 100,000-entry bundle)."""
    case = CASES[name]
    with H.CountingServer() as server:
        env = H.make_env(server.port, str(tmp_path))
        outcomes = H.run_cases([case], tmp_path, env, batch=False)
        hits = len(server.hits)
    assert outcomes and hits == 0
    for o in outcomes:
        assert not o.problems, (o.row(), o.problems)
        assert o.run.peak_rss_mb is not None and o.run.peak_rss_mb < case.max_rss_mb
        assert o.run.wall < case.max_wall
        assert o.run.events == []


def test_binary_garbage(light):
    runs = _check(light, ("random-bytes", "gzip", "zip", "png", "folder-binary"))
    assert {o["run"]["code"] for o in runs if o["case"] != "folder-binary"} == {2}


def test_wrong_encodings(light):
    """UTF-16 with and without BOM, UTF-32, Latin-1, overlong UTF-8, CESU-8 surrogate, lone
    surrogate escapes (JSON, NDJSON, JSON-LD, Turtle): refused naming the place; a UTF-8 BOM is read."""
    runs = _check(light, ("utf16", "utf32", "latin1", "overlong", "cesu8", "lone-surrogate", "utf8-bom"))
    latin = [o for o in runs if o["case"] == "latin1-literal"][0]
    assert ":5:30: not UTF-8 text: invalid byte 0xE9" in _line(latin)
    assert all(o["run"]["code"] == 0 for o in runs if o["case"].startswith("utf8-bom"))


def test_larger_than_max_input_bytes(light):
    runs = _check(light, "over-limit-sparse")
    assert all("larger than 512 MiB" in _line(o) for o in runs)


def test_empty_file(light):
    runs = _check(light, ("empty-file", "blank-file"))
    assert all("empty file" in _line(o) for o in runs)


def test_fifo_and_devices_are_not_read(light):
    """A FIFO without a writer and /dev/stdin are refused without blocking (/dev/zero: heavy test)."""
    runs = _check(light, ("fifo", "dev-stdin"))
    assert all(o["run"]["code"] == 2 for o in runs)


def test_folder_symlinks_outside_are_not_followed(light):
    """In a folder, a link whose target is inside is read; links to the canary, /etc/passwd,
    /dev/zero, a folder outside, a dangling link, a loop and a FIFO are listed as unused."""
    runs = _check(light, "folder-symlinks")
    rec = [o for o in runs if o["command"] == "recommend"][0]
    patients = {p["patient"]: p for p in json.loads(rec["run"]["stdout"])["patients"]}
    assert {"urn:ex:q", "urn:fhir:Patient/p1"} <= set(patients)
    reasons = " ".join(u["reason"] for p in patients.values() for u in p["unused"])
    for name in ("secret.ttl", "passwd.ttl", "zero.ttl", "outside-dir", "dangling.json", "loop.ttl", "pipe.ndjson"):
        assert name in reasons, name


def test_every_light_case_ran(light):
    assert set(light["by_case"]) == {c.name for c in LIGHT}
    assert light["hits"] == 0


# --- the watchers do see access when there is some (so that "nothing recorded" means something) ---


def test_watchers_see_file_and_network_access(tmp_path):
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    with H.CountingServer() as server:
        env = H.make_env(server.port, str(tmp_path))
        trace = H.strace_available()
        opened, connected = H.run_child([["recommend", "--as-of", H.AS_OF, str(env.canary)],
                                         ["recommend", "-f", "json", "--as-of", H.AS_OF, "--store", env.url]],
                                        str(inputs), str(tmp_path), timeout=120, trace=trace)
        hits = len(server.hits)
    assert any(e[1] == "open" and e[2] == str(env.canary) for e in opened.events), opened.events
    assert any(e[1].startswith(("socket.", "urllib.")) for e in connected.events), connected.events
    assert hits >= 1
    if trace:
        assert any(str(env.canary) in line for line in opened.strace)
        assert any("connect(" in line and "AF_INET" in line for line in opened.strace + connected.strace)


# --- regression tests for what the hostile inputs found (unit level) ------------------------------


def test_read_input_is_bounded_when_the_size_is_not_known(monkeypatch):
    """A regular file whose st_size says 0 (procfs) is read at most MAX_INPUT_BYTES + 1 bytes."""
    monkeypatch.setattr(load, "MAX_INPUT_BYTES", 64)
    with pytest.raises(InputError, match="larger than"):
        load.read_input("/proc/self/status")


def test_json_depth_skips_strings():
    assert load.json_depth(b'{"a": "[[[[{{{{", "b": [[1]], "c": "\\"[["}') == 3
    assert load.json_depth(b"[]") == 1 and load.json_depth(b'"x"') == 0


def test_lone_surrogate_detection():
    assert load.lone_surrogate('"\\ud83d\\ude00"') is None  # a valid pair (an emoji)
    assert load.lone_surrogate('"\\\\ud800"') is None  # an escaped backslash, then text
    assert load.lone_surrogate('{"a": "\\ud800"}')[1] == 7
    assert load.lone_surrogate('"\\udc00\\udc00"') is not None
    assert load.lone_surrogate('"\\ud800\\ud800"') is not None


def test_utf8_text_with_nul_free_non_ascii_is_not_taken_for_utf16():
    load.check_text("x.ttl", '<urn:a> <urn:b> "Renée, 東京, ελληνικά" .\n'.encode())
    with pytest.raises(InputError, match="UTF-16BE"):
        load.check_text("x.ttl", "<urn:a> <urn:b> <urn:c> .".encode("utf-16-be"))


def test_symlink_inside_folder_is_read(tmp_path):
    folder = tmp_path / "f"
    folder.mkdir()
    (folder / "a.ttl").write_text(H.PATIENT_TTL + H._ttl_patient())
    (folder / "b.ttl").symlink_to("a.ttl")
    data = load.load_sources([str(folder)])
    assert data.unused == [] and len(data.sources) == 2
