"""Faults, provoked for real in subprocesses (issue 6, item 4): a `load` or a cohort run killed
midway leaves the store readable and a rerun completes without duplicates; an unwritable output
path or a full disk is a one-line error; a remote store that goes away or never answers is a
one-line error naming it, promptly, never a hang. The commands each test runs are in
docs/reliability.md ("Faults")."""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = str(ROOT / "examples" / "case10-b12-120-pmol-folic-acid-1mg.ttl")
OXIGRAPH = shutil.which("oxigraph") or str(Path(sys.executable).parent / "oxigraph")
AS_OF = "2026-06-01"
GRAPHS = "SELECT ?g (COUNT(*) AS ?n) WHERE { GRAPH ?g { ?s ?p ?o } } GROUP BY ?g ORDER BY ?g\n"


# ---- helpers -----------------------------------------------------------------------------------


def b12kg_cmd(*args) -> list[str]:
    return [sys.executable, "-m", "reasoner", *map(str, args)]


def b12kg(*args, env: dict | None = None, timeout: float = 600, stdout=None) -> subprocess.CompletedProcess:
    return subprocess.run(b12kg_cmd(*args), cwd=ROOT, env=env, timeout=timeout, text=True,
                          stdout=subprocess.PIPE if stdout is None else stdout, stderr=subprocess.PIPE)


def start(*args, env: dict | None = None, **kw) -> subprocess.Popen:
    """Start the CLI in its own process group (its worker processes too), output to files or pipes."""
    return subprocess.Popen(b12kg_cmd(*args), cwd=ROOT, env=env, start_new_session=True, text=True, **kw)


def kill_group(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


def one_line_error(err: str, *must: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    assert lines[0].startswith("b12kg: error: "), lines[0]
    for m in must:
        assert m in lines[0], (m, lines[0])
    return lines[0]


def wait_for(condition, timeout: float, what: str, proc: subprocess.Popen | None = None, every: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"the process ended (exit {proc.returncode}) before {what}")
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(every)


def dir_size(path: Path) -> int:
    total = 0
    for p in path.rglob("*"):
        try:
            total += p.stat().st_size if p.is_file() else 0
        except OSError:
            pass  # a file the writer just removed
    return total


def graph_counts(store: Path, tmp: Path) -> str:
    q = tmp / "graphs.rq"
    q.write_text(GRAPHS, encoding="utf-8")
    r = b12kg("query", q, "--store", store, "-f", "tsv")
    assert r.returncode == 0, r.stderr
    return r.stdout


def _synth(tmp_path_factory, name: str, n: int, seed: int) -> Path:
    path = tmp_path_factory.mktemp(name) / "cohort.ttl"
    r = b12kg("synth", "--n", n, "--seed", seed, "--as-of", AS_OF, "-o", path)
    assert r.returncode == 0, r.stderr
    return path


@pytest.fixture(scope="module")
def cohort(tmp_path_factory) -> Path:
    """3,000 synthetic patients: `load` takes a few seconds, long enough to be killed midway."""
    return _synth(tmp_path_factory, "cohort", 3000, 3)


@pytest.fixture(scope="module")
def small_cohort(tmp_path_factory) -> Path:
    return _synth(tmp_path_factory, "small", 400, 4)


# ---- killed midway -----------------------------------------------------------------------------


def test_load_killed_midway_then_rerun_has_no_duplicates(cohort, tmp_path):
    clean = tmp_path / "clean"
    r = b12kg("load", cohort, "--store", clean)
    assert r.returncode == 0, r.stderr
    assert "loaded 3000 patients" in r.stderr
    expected = graph_counts(clean, tmp_path)
    assert expected.count("/graph/patient/") == 3000
    full = dir_size(clean)

    victim = tmp_path / "victim"
    proc = start("load", cohort, "--store", victim, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    # the store is being written: its directory holds part of what a complete load writes
    wait_for(lambda: victim.exists() and dir_size(victim) > full * 0.2, 300, "the store to be written", proc, every=0.01)
    assert proc.poll() is None, "the load finished before it could be killed"
    kill_group(proc)
    assert proc.returncode == -signal.SIGKILL

    partial = graph_counts(victim, tmp_path)  # the killed store opens and answers
    assert partial.count("/graph/patient/") < 3000, "the load was not killed midway"
    r = b12kg("load", cohort, "--store", victim)
    assert r.returncode == 0, r.stderr
    assert "loaded 3000 patients" in r.stderr
    # same graphs, each with the same number of triples: every patient once, nothing twice
    assert graph_counts(victim, tmp_path) == expected


def _ndjson_patients(path: Path) -> list[str]:
    return [json.loads(line)["patient"] for line in path.read_text(encoding="utf-8").splitlines()]


def test_cohort_run_over_a_store_killed_midway_then_rerun(small_cohort, tmp_path):
    store = tmp_path / "kb"
    assert b12kg("load", small_cohort, "--store", store).returncode == 0
    copy = tmp_path / "kb-copy"
    shutil.copytree(store, copy)
    run = ("recommend", "--as-of", AS_OF, "--jobs", 2, "--batch-size", 20, "-f", "ndjson")

    clean_out = tmp_path / "clean.ndjson"
    r = b12kg(*run, "--store", copy, "-o", clean_out)
    assert r.returncode == 0, r.stderr
    clean_graphs = graph_counts(copy, tmp_path)

    out = tmp_path / "out.ndjson"
    proc = start(*run, "--store", store, "-o", out, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wait_for(lambda: out.exists() and out.stat().st_size > 0, 300, "the first results", proc, every=0.01)
    assert proc.poll() is None, "the run finished before it could be killed"
    kill_group(proc)  # the parent and both workers
    assert len(out.read_text(encoding="utf-8").splitlines()) < 400, "the run was not killed midway"

    assert graph_counts(store, tmp_path)  # readable after the kill
    r = b12kg(*run, "--store", store, "-o", out)
    assert r.returncode == 0, r.stderr
    patients = _ndjson_patients(out)
    assert len(patients) == len(set(patients)) == 400
    assert out.read_bytes() == clean_out.read_bytes()
    # inferences and reports written back to the store: as after one clean run, nothing twice
    assert graph_counts(store, tmp_path) == clean_graphs


def test_cohort_run_from_a_file_killed_leaves_no_staging_files(small_cohort, tmp_path):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = {**os.environ, "TMPDIR": str(tmp), "SQLITE_TMPDIR": str(tmp)}
    out = tmp_path / "out.ndjson"
    run = ("recommend", small_cohort, "--as-of", AS_OF, "--jobs", 2, "--batch-size", 20, "-f", "ndjson", "-o", out)
    proc = start(*run, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wait_for(lambda: out.exists() and out.stat().st_size > 0, 300, "the first results", proc, every=0.01)
    assert proc.poll() is None
    kill_group(proc)
    assert list(tmp.iterdir()) == []  # the staging database was never visible on disk
    r = b12kg(*run, env=env)
    assert r.returncode == 0, r.stderr
    patients = _ndjson_patients(out)
    assert len(patients) == len(set(patients)) == 400 and patients == sorted(patients)


@pytest.mark.parametrize("damage", ["CURRENT", "sst"])
def test_a_damaged_store_is_a_one_line_error(small_cohort, tmp_path, damage):
    store = tmp_path / "kb"
    assert b12kg("load", small_cohort, "--store", store).returncode == 0
    if damage == "CURRENT":  # the file that names the store's manifest
        (store / "CURRENT").write_text("garbage\n")
    else:  # every data file cut short, as by a disk that lost their ends
        for f in store.glob("*.sst"):
            os.truncate(f, 100)
    q = tmp_path / "graphs.rq"
    q.write_text(GRAPHS, encoding="utf-8")
    for args in (("query", q, "--store", store), ("recommend", "--store", store, "--as-of", AS_OF, "-f", "ndjson")):
        r = b12kg(*args)
        assert r.returncode == 2, r.stderr
        one_line_error(r.stderr, str(store), "the store is damaged")


# ---- unwritable output, full disk -------------------------------------------------------------


@pytest.fixture
def tiny_fs(tmp_path):
    """A 256 KiB tmpfs (needs root and permission to mount); skipped otherwise."""
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("a tiny full filesystem needs root to mount a tmpfs")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mnt)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


@pytest.fixture
def read_only_file(tmp_path):
    """A file that cannot be written: chmod 0444, or for root (who ignores modes) a file on a
    tmpfs remounted read-only."""
    if os.geteuid() != 0:
        f = tmp_path / "ro.json"
        f.write_text("{}")
        f.chmod(0o444)
        yield f
        return
    mnt = tmp_path / "ro"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mnt)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"root ignores file modes and cannot mount a read-only tmpfs here: {r.stderr.strip()}")
    try:
        (mnt / "ro.json").write_text("{}")
        assert subprocess.run(["mount", "-o", "remount,ro", str(mnt)], capture_output=True).returncode == 0
        yield mnt / "ro.json"
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


COMMANDS = {
    "recommend": ("recommend", EXAMPLE, "--as-of", AS_OF, "-f", "json"),
    "recommend-ndjson": ("recommend", EXAMPLE, "--as-of", AS_OF, "-f", "ndjson", "--jobs", 1),
    "validate": ("validate", EXAMPLE, "--as-of", AS_OF),
    "convert": ("convert", EXAMPLE),
    "synth": ("synth", "--n", 200, "--as-of", AS_OF),
}


@pytest.mark.parametrize("command", sorted(COMMANDS))
@pytest.mark.parametrize("target", ["missing-dir", "a-directory", "read-only", "dev-full"])
def test_unwritable_output_is_a_one_line_error(command, target, tmp_path, request):
    if command == "synth" and target == "a-directory":
        pytest.skip("synth -o DIR writes FHIR NDJSON into the directory (by design)")
    if target == "missing-dir":
        path = tmp_path / "no" / "such" / "dir" / "out.json"
        why = "No such file or directory"
    elif target == "a-directory":
        path = tmp_path
        why = "Is a directory"
    elif target == "read-only":
        path = request.getfixturevalue("read_only_file")
        why = "Read-only file system" if os.geteuid() == 0 else "Permission denied"
    else:
        path = Path("/dev/full")
        if not path.exists():
            pytest.skip("/dev/full is not available")
        why = "No space left on device"
    r = b12kg(*COMMANDS[command], "-o", path, timeout=300)
    assert r.returncode == 2, (r.returncode, r.stderr)
    one_line_error(r.stderr, str(path), why)


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_stdout_on_a_full_disk_is_a_one_line_error(command):
    if not Path("/dev/full").exists():
        pytest.skip("/dev/full is not available")
    with open("/dev/full", "w") as full:
        r = b12kg(*COMMANDS[command], stdout=full, timeout=300)
    assert r.returncode == 2, (r.returncode, r.stderr)
    one_line_error(r.stderr, "No space left on device")


def test_store_on_a_full_filesystem_is_a_one_line_error(small_cohort, tiny_fs):
    store = tiny_fs / "kb"
    r = b12kg("load", small_cohort, "--store", store, timeout=300)
    assert r.returncode == 2, (r.returncode, r.stderr)
    one_line_error(r.stderr, str(store), "No space left on device")
    r = b12kg("recommend", small_cohort, "--store", store, "--as-of", AS_OF, "-f", "ndjson", "-o", os.devnull, timeout=300)
    assert r.returncode == 2, (r.returncode, r.stderr)
    one_line_error(r.stderr, str(store))


def test_staging_on_a_full_filesystem_is_a_one_line_error(cohort, tiny_fs):
    # the staging database outgrows SQLite's page cache and spills into TMPDIR, which is full
    env = {**os.environ, "TMPDIR": str(tiny_fs), "SQLITE_TMPDIR": str(tiny_fs)}
    r = b12kg("recommend", cohort, "--as-of", AS_OF, "-f", "ndjson", "-o", os.devnull, env=env, timeout=300)
    assert r.returncode == 2, (r.returncode, r.stderr)
    one_line_error(r.stderr, str(tiny_fs), "TMPDIR")


# ---- the remote store goes away, or never answers ---------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_oxigraph(location: Path) -> tuple[subprocess.Popen, str]:
    if not Path(OXIGRAPH).exists():
        pytest.skip("the oxigraph server (pip install oxigraph) is not installed")
    port = free_port()
    proc = subprocess.Popen([OXIGRAPH, "serve", "--location", str(location), "--bind", f"127.0.0.1:{port}", "--union-default-graph"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(url + "/query?query=ASK%7B%7D", timeout=1).read()
            return proc, url
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                pytest.fail("the oxigraph server did not start")
            time.sleep(0.05)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_remote_store_killed_mid_run_is_a_prompt_error(small_cohort, tmp_path):
    server, url = start_oxigraph(tmp_path / "oxigraph")
    try:
        r = b12kg("load", small_cohort, "--store", url, timeout=300)
        assert r.returncode == 0, r.stderr
        before = cpu_seconds(server.pid)
        proc = start("recommend", "--store", url, "--as-of", AS_OF, "-f", "ndjson", "--store-timeout", 60,
                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        # the run is under way when the server is busy answering its queries
        wait_for(lambda: cpu_seconds(server.pid) - before > 0.5, 120, "the server to answer the run's queries", proc)
        assert proc.poll() is None
        server.kill()
        server.wait(timeout=10)
        killed = time.monotonic()
        try:
            out, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            kill_group(proc)
            pytest.fail("the run hung after the remote store went away")
        assert time.monotonic() - killed < 30
        assert proc.returncode == 2, err
        one_line_error(err, url)
        assert out == ""
    finally:
        if server.poll() is None:
            server.kill()
            server.wait(timeout=10)


@pytest.fixture
def silent_endpoint():
    """Accepts connections and never answers."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept():
        srv.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
                held.append(conn)
            except OSError:
                continue

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.getsockname()[1]}"
    stop.set()
    t.join(timeout=5)
    for c in held:
        c.close()
    srv.close()


@pytest.mark.parametrize("command", [
    ("recommend", "--as-of", AS_OF, "-f", "json"),
    ("load", EXAMPLE),
    ("query", ROOT / "queries" / "violations.rq"),
])
def test_remote_store_that_never_answers_times_out(silent_endpoint, command):
    t = time.monotonic()
    r = b12kg(*command, "--store", silent_endpoint, "--store-timeout", 2, timeout=60)
    elapsed = time.monotonic() - t
    assert r.returncode == 2, r.stderr
    one_line_error(r.stderr, silent_endpoint, "did not answer within 2 s")
    assert elapsed < 30


def test_store_timeout_must_be_positive():
    r = b12kg("recommend", "--store", "http://127.0.0.1:9", "--store-timeout", "0", "-f", "json")
    assert r.returncode == 2
    one_line_error(r.stderr, "--store-timeout")
