"""Hostile inputs for the CLI, generated on the fly (nothing is stored), and a runner that watches
what the CLI touches while it reads them.

Each :class:`Case` writes its input into a fresh folder and says what must happen: ``refused`` (exit
2, exactly one ``b12kg: error: <file>...`` line on stderr, nothing on stdout) or ``processed`` (exit
0, or 1 for ``validate``; with a case-specific check, e.g. that the record is listed as unused).
Every run goes through ``reasoner.cli.main`` in a child Python process (:data:`CHILD`) that installs
an audit hook (``sys.addaudithook``) recording, for the whole run:

* every ``open``, ``os.listdir``/``os.scandir`` and file-changing ``os.*``/``shutil.*`` event whose
  real path is outside the inputs' folder, the project's ``reasoner``/``ontology``/``shapes``/
  ``queries`` folders, the Python installation and the virtualenv (what Python itself needs);
* every ``socket.*``, ``urllib.Request``, ``http.client.*``, ``subprocess.Popen``, ``os.system``,
  ``os.exec``/``os.posix_spawn`` event.

pyoxigraph is Rust, so its own file and socket use is invisible to Python audit hooks. For that the
runner can also run the child under ``strace -f`` (when strace is installed) and reports any
``open``/``openat`` of a path outside an allowlist of the same folders plus the system libraries,
any ``connect`` to an IP address and any ``execve`` after the first. Inputs that name files or URLs
also point at a canary file (outside the inputs, holding a random token) and at a local HTTP server
that counts connections (:class:`CountingServer`): the token must never appear in any output and
the server must see no connection.

Used by ``python fuzz/run.py --hostile [--large]`` (every case in its own process: exit code, first
stderr line, wall time and peak RSS per case) and by ``tests/test_hostile.py`` (the short version).
"""
from __future__ import annotations

import gzip
import io
import json
import os
import random
import re
import shutil
import signal
import socketserver
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
AS_OF = "2026-06-01"
MiB = 1024 * 1024

# ------------------------------------------------------------------------------------------------
# The child process: reasoner.cli.main under an audit hook
# ------------------------------------------------------------------------------------------------

#: Run in a child as ``python -c CHILD spec.json``. The spec lists the runs (argv, stdout and
#: stderr files), the allowed folders and the report file; every file it writes is opened before
#: the hook is installed.
CHILD = r'''
import json, os, sys, time, traceback
spec = json.load(open(sys.argv[1], encoding="utf-8"))
allowed = tuple(os.path.realpath(a) for a in spec["allowed"])
outs = [(open(r["stdout"], "w", encoding="utf-8", errors="surrogateescape"),
         open(r["stderr"], "w", encoding="utf-8", errors="surrogateescape")) for r in spec["runs"]]
report = open(spec["report"], "w", encoding="utf-8")
PATH_EVENTS = {"open", "os.listdir", "os.scandir", "os.remove", "os.rename", "os.replace", "os.mkdir", "os.rmdir",
               "os.symlink", "os.link", "os.truncate", "os.chmod", "os.chown", "os.utime", "shutil.rmtree",
               "shutil.copyfile", "shutil.copymode", "shutil.copystat", "shutil.move", "glob.glob", "os.chdir"}
DENIED = ("socket.", "urllib.", "http.client.", "ftplib.", "smtplib.", "poplib.", "imaplib.", "nntplib.",
          "telnetlib.", "webbrowser.", "subprocess.", "os.system", "os.exec", "os.posix_spawn", "os.spawn",
          "os.startfile", "pty.")
state = {"on": True, "busy": False, "run": -1}
events = []

def outside(p):
    if p is None or isinstance(p, int):
        return None
    try:
        p = os.fsdecode(os.fspath(p))
    except TypeError:
        return None
    real = os.path.realpath(p)
    if any(real == a or real.startswith(a + os.sep) for a in allowed):
        return None
    return p

def hook(event, args):
    if not state["on"] or state["busy"]:
        return
    state["busy"] = True
    try:
        if event in PATH_EVENTS:
            for a in args[:2] if event in ("os.rename", "os.replace", "os.link", "os.symlink", "shutil.copyfile", "shutil.move") else args[:1]:
                bad = outside(a)
                if bad is not None:
                    events.append([state["run"], event, bad])
        elif event.startswith(DENIED):
            events.append([state["run"], event, repr(args)[:300]])
    finally:
        state["busy"] = False

sys.addaudithook(hook)
from reasoner.cli import main
results = []
for i, r in enumerate(spec["runs"]):
    state["run"] = i
    out, err = outs[i]
    sys.stdout, sys.stderr = out, err
    t0 = time.perf_counter()
    code = tb = None
    try:
        code = main(r["argv"])
    except BaseException:
        tb = traceback.format_exc()
    wall = time.perf_counter() - t0
    sys.stdout, sys.stderr = sys.__stdout__, sys.__stderr__
    out.flush()
    err.flush()
    results.append({"code": code, "traceback": tb, "wall": wall})
state["on"] = False
for out, err in outs:
    out.close()
    err.close()
peak = None
try:  # this process image's own peak (ru_maxrss would also count the parent's pages at fork)
    with open("/proc/self/status", encoding="ascii") as f:
        peak = next((int(ln.split()[1]) for ln in f if ln.startswith("VmHWM:")), None)
except OSError:
    pass
import resource
workers = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss or None  # cohort worker processes, if any
json.dump({"results": results, "events": events, "peak_kb": peak, "workers_peak_kb": workers}, report)
report.close()
'''


def python_allowed() -> list[str]:
    """What Python and the project legitimately read: the interpreter, the virtualenv and
    site-packages, the project's code and encoding."""
    import site
    import sysconfig

    dirs = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix,
            os.path.dirname(os.path.realpath(sys.executable))}
    dirs.update(site.getsitepackages())
    dirs.update(p for p in sysconfig.get_paths().values() if p)
    dirs.update(str(ROOT / d) for d in ("reasoner", "ontology", "shapes", "queries"))
    return sorted(d for d in dirs if d)


#: Besides python_allowed(): what the C and Rust runtimes read (the strace layer only).
SYSTEM_ALLOWED = ("/lib", "/lib64", "/usr/lib", "/usr/lib64", "/usr/local/lib", "/usr/share/locale", "/usr/share/zoneinfo",
                  "/etc/ld.so.cache", "/etc/ld.so.preload", "/etc/localtime", "/etc/ssl/openssl.cnf", "/proc/self",
                  "/sys/fs/cgroup", "/sys/devices/system/cpu", "/dev/urandom", "/dev/random", "/dev/null", "/dev/tty")
STRACE_SYSCALLS = "open,openat,openat2,creat,connect,execve,execveat,rename,renameat,renameat2,unlink,unlinkat,mkdir,mkdirat"
_STRACE_LINE = re.compile(r"^(?P<pid>\d+)\s+(?:<\.\.\. )?(?P<call>\w+)(?:\(| resumed>)(?P<rest>.*)$")
_QUOTED = re.compile(r'"((?:[^"\\]|\\.)*)"')


def strace_available() -> bool:
    if not shutil.which("strace"):
        return False
    try:
        return subprocess.run(["strace", "--seccomp-bpf", "-f", "-qq", "-e", "trace=openat", "-o", os.devnull, "true"],
                              capture_output=True, timeout=30, check=False).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def strace_violations(trace: str, allowed: list[str], cwd: str) -> list[str]:
    """Lines of an strace log that open a path outside ``allowed`` (successful or not), connect to
    anything but a local netlink socket, or execute a program (after the traced Python itself)."""
    allowed = sorted({os.path.normpath(a) for a in allowed} | {os.path.realpath(a) for a in allowed})

    def ok(path: str) -> bool:
        return any(path == a or path.startswith(a.rstrip("/") + "/") for a in allowed)

    bad: list[str] = []
    execs = 0
    for line in trace.splitlines():
        m = _STRACE_LINE.match(line)
        if not m or "resumed>" in line.split("(", 1)[0]:
            continue
        call, rest = m["call"], m["rest"]
        if call in ("execve", "execveat"):
            execs += 1
            if execs > 1:
                bad.append(line)
            continue
        if call == "connect":
            if "AF_NETLINK" not in rest:
                bad.append(line)
            continue
        q = _QUOTED.search(rest)
        if not q:
            continue
        if call in ("openat", "openat2", "unlinkat", "mkdirat", "renameat", "renameat2") and not rest.startswith("AT_FDCWD") \
                and not q.group(1).startswith("/"):
            continue  # relative to a directory descriptor opened (and checked) before
        path = q.group(1).encode().decode("unicode_escape", "replace")
        full = os.path.normpath(os.path.join(cwd, path))
        if not ok(full) and not ok(os.path.realpath(full)):
            bad.append(line)
    return bad


@dataclass
class RunResult:
    argv: list[str]
    code: int | None  # None: killed (timeout) or crashed before main() returned
    stdout: str
    stderr: str
    traceback: str | None
    wall: float  # seconds, main() only (batched) or the whole process (alone=True)
    peak_rss_mb: float | None  # the child's peak resident set (alone=True only)
    events: list  # audit-hook events outside the allowed folders
    strace: list  # strace violations (when traced)
    timed_out: bool = False
    signal: int | None = None
    child_stderr: str = ""
    killed_for_memory: bool = False
    workers_peak_rss_mb: float | None = None  # the largest worker process (--jobs), when there were any

    @property
    def first_line(self) -> str:
        lines = [ln for ln in (self.stderr or self.child_stderr).splitlines() if ln.strip()]
        return lines[0] if lines else ""


def _rss_kb(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as f:
            return next((int(ln.split()[1]) for ln in f if ln.startswith("VmHWM:")), None)
    except (OSError, ValueError):
        return None


def _wait(proc: subprocess.Popen, timeout: float, kill_rss_mb: float | None = None):
    """Wait for a child; kill its process group at ``timeout`` or when its resident set passes
    ``kill_rss_mb`` (the machine is shared: a runaway input must not take it down).
    Returns (status, rusage, timed_out, killed_for_memory, highest VmHWM seen in KB)."""
    deadline = time.monotonic() + timeout
    timed_out = over = False
    seen = 0
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            return status, usage, timed_out, over, seen
        hwm = _rss_kb(proc.pid)
        if hwm:
            seen = max(seen, hwm)
        kill = not (timed_out or over) and (time.monotonic() > deadline or (kill_rss_mb and seen > kill_rss_mb * 1024))
        if kill:
            timed_out, over = time.monotonic() > deadline, not time.monotonic() > deadline
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.05)


def _read(path: str) -> str:
    return Path(path).read_text(encoding="utf-8", errors="replace") if Path(path).exists() else ""


def run_child(runs: list[list[str]], inputs_dir: str, workdir: str, timeout: float = 600, trace: bool = False,
              extra_allowed: tuple[str, ...] = (), kill_rss_mb: float | None = None) -> list[RunResult]:
    """Run each argv through reasoner.cli.main in one child process under the audit hook (and
    strace when ``trace``). With one run, wall time and peak RSS are the whole child's."""
    work = Path(tempfile.mkdtemp(prefix="child-", dir=workdir))
    allowed = python_allowed() + [inputs_dir, str(work), *extra_allowed]
    spec = {"runs": [{"argv": argv, "stdout": str(work / f"{i}.out"), "stderr": str(work / f"{i}.err")} for i, argv in enumerate(runs)],
            "allowed": allowed, "report": str(work / "report.json")}
    (work / "spec.json").write_text(json.dumps(spec), encoding="utf-8")
    cmd = [sys.executable, "-c", CHILD, str(work / "spec.json")]
    trace_file = work / "strace.log"
    if trace:
        cmd = ["strace", "--seccomp-bpf", "-f", "-qq", "-e", f"trace={STRACE_SYSCALLS}", "-o", str(trace_file)] + cmd
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHONHOME", "PYTHONSTARTUP"))}
    env["PYTHONDONTWRITEBYTECODE"] = "1"  # no .pyc written: the audit would see it as a write
    env.setdefault("PYTHONIOENCODING", "utf-8")
    t0 = time.monotonic()
    with open(work / "child.err", "wb") as cerr:
        proc = subprocess.Popen(cmd, cwd=inputs_dir, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=cerr,
                                env=env, start_new_session=True)
        _, usage, timed_out, over, seen_kb = _wait(proc, timeout, kill_rss_mb)
    wall = time.monotonic() - t0
    sig = -proc.returncode if proc.returncode is not None and proc.returncode < 0 else None
    report = {"results": [], "events": [], "peak_kb": None}
    if (work / "report.json").exists() and (work / "report.json").stat().st_size:
        report = json.loads((work / "report.json").read_text(encoding="utf-8"))
    peak_kb = report.get("peak_kb") or seen_kb or usage.ru_maxrss
    violations = strace_violations(trace_file.read_text(errors="replace"), allowed + list(SYSTEM_ALLOWED), inputs_dir) \
        if trace and trace_file.exists() else []
    child_err = (work / "child.err").read_text(encoding="utf-8", errors="replace")
    out: list[RunResult] = []
    for i, argv in enumerate(runs):
        r = report["results"][i] if i < len(report["results"]) else {"code": None, "traceback": None, "wall": wall}
        out.append(RunResult(argv, r["code"], _read(spec["runs"][i]["stdout"]), _read(spec["runs"][i]["stderr"]), r["traceback"],
                             wall if len(runs) == 1 else r["wall"],
                             peak_kb / 1024 if len(runs) == 1 and (report.get("peak_kb") or not trace) else None,
                             [e for e in report["events"] if e[0] == i], violations, timed_out, sig, child_err, over,
                             report["workers_peak_kb"] / 1024 if len(runs) == 1 and report.get("workers_peak_kb") else None))
    shutil.rmtree(work, ignore_errors=True)
    return out


# ------------------------------------------------------------------------------------------------
# Canary and counting HTTP server
# ------------------------------------------------------------------------------------------------


class CountingServer:
    """An HTTP server on 127.0.0.1 that counts every TCP connection (a fetch of a JSON-LD context,
    an owl:imports, a FHIR reference or an https handshake alike) and answers 200 with a body that
    would change the output if it were used."""

    def __init__(self) -> None:
        hits = self.hits = []

        class Handler(socketserver.StreamRequestHandler):
            def handle(self):
                try:
                    self.rfile.readline(65536)
                    body = b'{"@context": {"q": "http://canary.invalid/fetched#"}}'
                    self.wfile.write(b"HTTP/1.0 200 OK\r\nContent-Type: application/ld+json\r\nContent-Length: "
                                     + str(len(body)).encode() + b"\r\n\r\n" + body)
                except OSError:
                    pass

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True

            def verify_request(self, request, client_address):
                hits.append(client_address)
                return True

        self.server = Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class Env:
    """Where a case may point: the counting server and a canary file outside the inputs."""

    port: int
    outside: Path  # a folder outside the inputs' folder
    token: str  # the canary's content: must never appear in any output

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def canary(self) -> Path:
        return self.outside / "secret.ttl"

    @property
    def canary_uri(self) -> str:
        return self.canary.as_uri()


def make_env(port: int, base: str) -> Env:
    outside = Path(tempfile.mkdtemp(prefix="outside-", dir=base))
    token = f"CANARY{random.Random().getrandbits(64):016x}"
    (outside / "secret.ttl").write_text(f'<urn:canary> <urn:canary> "{token}" .\n', encoding="utf-8")
    (outside / "secret.json").write_text(json.dumps({"@context": {"q": f"urn:{token}#"}}), encoding="utf-8")
    return Env(port, outside, token)


# ------------------------------------------------------------------------------------------------
# Input builders
# ------------------------------------------------------------------------------------------------

PATIENT_TTL = """@prefix b12: <https://w3id.org/b12kg/> .
@prefix xsd: <http://www.w3.org/2001/XMLSchema#> .
"""


def _w(d: Path, name: str, data: bytes | str) -> str:
    p = d / name
    p.write_bytes(data if isinstance(data, bytes) else data.encode("utf-8"))
    return str(p)


def _ttl_patient(s: str = "<urn:ex:p>", b12: str = "<urn:ex:b12>", value: str = "150") -> str:
    return (f'{s} a b12:Patient ; b12:birthDate "1960-01-01"^^xsd:date ; b12:sex b12:female .\n'
            f'{b12} a b12:TotalB12Result ; b12:subject {s} ; b12:value {value} ; b12:unit "pg/mL" ; '
            f'b12:date "2026-05-20"^^xsd:date .\n')


P = {"resourceType": "Patient", "id": "p1", "birthDate": "1960-01-01", "gender": "female"}


def _obs(oid: str, subject: str, value=150) -> dict:
    return {"resourceType": "Observation", "id": oid, "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "2132-9"}]},
            "subject": {"reference": subject}, "effectiveDateTime": "2026-05-20",
            "valueQuantity": {"value": value, "unit": "pg/mL", "system": "http://unitsofmeasure.org", "code": "pg/mL"}}


def _bundle(*entries: dict) -> str:
    return json.dumps({"resourceType": "Bundle", "type": "collection",
                       "entry": [e if "resource" in e else {"resource": e} for e in entries]})


def _jsonld(ctx) -> str:
    return json.dumps({"@context": ctx, "@id": "http://ex/p", "q": 1, "http://ex/q": 2})


def b_jsonld_context(kind: str):
    def build(d: Path, env: Env) -> list[str]:
        ctx = {
            "http": f"{env.url}/context.jsonld",
            "https": f"https://127.0.0.1:{env.port}/context.jsonld",
            "file": env.outside.joinpath("secret.json").as_uri(),
            "relative": os.path.relpath(env.outside / "secret.json", d),
            "array": [{"x": "http://ex/x"}, f"{env.url}/context.jsonld"],
            "import": {"@import": f"{env.url}/context.jsonld", "q": "http://ex/q"},
            "nested": {"q": {"@id": "http://ex/q", "@context": f"{env.url}/scoped.jsonld"}},
            "escaped": "\\u0068ttp://127.0.0.1:%d/context.jsonld" % env.port,
        }[kind]
        if kind == "escaped":  # the URL written with a JSON escape, past any byte-level check
            text = '{"@context": "%s", "@id": "http://ex/p", "http://ex/q": 1}' % ctx
        elif kind == "nested":
            text = json.dumps({"@context": ctx, "@id": "http://ex/p", "q": {"@id": "http://ex/o"}})
        else:
            text = _jsonld(ctx)
        return [_w(d, f"context-{kind}.jsonld", text)]
    return build


def b_xxe(d: Path, env: Env) -> list[str]:
    return [_w(d, "xxe.rdf", f'''<?xml version="1.0"?>
<!DOCTYPE rdf:RDF [<!ENTITY xxe SYSTEM "file:///etc/passwd"><!ENTITY canary SYSTEM "{env.canary_uri}"><!ENTITY web SYSTEM "{env.url}/e.xml">]>
<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" xmlns:e="http://ex/">
  <rdf:Description rdf:about="http://ex/a"><e:p>&xxe;</e:p><e:q>&canary;</e:q><e:r>&web;</e:r></rdf:Description>
</rdf:RDF>
''')]


def b_xxe_parameter(d: Path, env: Env) -> list[str]:
    return [_w(d, "xxe-parameter.xml", f'''<?xml version="1.0"?>
<!DOCTYPE r [<!ENTITY % remote SYSTEM "{env.url}/evil.dtd"> %remote;]>
<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"/>
''')]


def b_billion_laughs(d: Path, env: Env) -> list[str]:
    ents = '<!ENTITY lol "lol">' + "".join(f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">' for i in range(1, 10))
    return [_w(d, "laughs.rdf", f'''<?xml version="1.0"?>
<!DOCTYPE rdf:RDF [{ents}]>
<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" xmlns:e="http://ex/">
  <rdf:Description rdf:about="http://ex/a"><e:p>&lol9;</e:p></rdf:Description>
</rdf:RDF>
''')]


def b_xml_base(d: Path, env: Env) -> list[str]:
    """RDF/XML naming local files and a URL (xml:base, rdf:resource, an XInclude): names only."""
    return [_w(d, "xml-base.rdf", f'''<?xml version="1.0"?>
<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" xmlns:b12="https://w3id.org/b12kg/"
         xmlns:xi="http://www.w3.org/2001/XInclude" xmlns:rdfs="http://www.w3.org/2000/01/rdf-schema#" xml:base="file:///etc/">
  <b12:Patient rdf:about="passwd"><rdfs:seeAlso rdf:resource="{env.canary_uri}"/><rdfs:seeAlso rdf:resource="{env.url}/x.rdf"/></b12:Patient>
  <rdf:Description rdf:about="shadow"><rdfs:comment rdf:parseType="Literal"><xi:include href="{env.canary_uri}" parse="text"/></rdfs:comment></rdf:Description>
</rdf:RDF>
''')]


def b_turtle_base(d: Path, env: Env) -> list[str]:
    return [_w(d, "base-file.ttl", PATIENT_TTL + "@base <file:///etc/> .\n" + _ttl_patient("<passwd>", "<shadow>") +
               f"<group> b12:note <{env.canary_uri}> .\n")]


def b_turtle_local_iris(d: Path, env: Env) -> list[str]:
    return [_w(d, "local-iris.ttl", PATIENT_TTL + _ttl_patient(f"<{env.canary_uri}>", "<file:///etc/passwd>") +
               f"<urn:ex:x> <http://www.w3.org/2000/01/rdf-schema#seeAlso> <file:///etc/shadow>, <{env.url}/more.ttl>, <secret.ttl> .\n")]


def b_owl_imports(d: Path, env: Env) -> list[str]:
    return [_w(d, "imports.ttl", PATIENT_TTL + "@prefix owl: <http://www.w3.org/2002/07/owl#> .\n" + _ttl_patient() +
               f"<urn:ex:onto> a owl:Ontology ; owl:imports <{env.canary_uri}>, <file:///etc/passwd>, <{env.url}/onto.ttl>, "
               f"<https://127.0.0.1:{env.port}/onto.ttl> .\n"
               f"<urn:ex:p> owl:imports <{env.url}/patient.ttl> .\n")]


def b_fhir_urls(d: Path, env: Env) -> list[str]:
    """fullUrl and references that are URLs of the counting server: resolved within the bundle."""
    purl = f"{env.url}/fhir/Patient/p1"
    doc = {"resourceType": "DocumentReference", "id": "doc", "status": "current", "subject": {"reference": purl},
           "content": [{"attachment": {"url": env.canary_uri}}, {"attachment": {"url": f"{env.url}/fhir/Binary/b"}}]}
    binary = {"resourceType": "Binary", "id": "b", "contentType": "text/plain", "securityContext": {"reference": "file:///etc/passwd"}}
    return [_w(d, "fhir-urls.json", _bundle({"fullUrl": purl, "resource": P}, {"fullUrl": f"{env.url}/fhir/Observation/o1",
                                                                              "resource": _obs("o1", purl)},
                                            doc, binary))]


def b_fhir_dangling(d: Path, env: Env) -> list[str]:
    return [_w(d, "fhir-dangling.json", _bundle(P, _obs("o1", f"{env.url}/fhir/Patient/elsewhere")))]


def b_fhir_dangling_ndjson(d: Path, env: Env) -> list[str]:
    lines = [P, _obs("o1", "Patient/p1"), _obs("o2", f"{env.url}/fhir/Patient/elsewhere"), _obs("o3", "file:///etc/passwd"),
             _obs("o4", env.canary_uri)]
    return [_w(d, "fhir-dangling.ndjson", "\n".join(json.dumps(x) for x in lines) + "\n")]


def _deep_json(depth: int, kind: str) -> bytes:
    if kind == "array":
        return b'{"resourceType":"Bundle","type":"collection","entry":' + b"[" * depth + b"]" * depth + b"}"
    if kind == "object":
        return b'{"resourceType":"Patient","id":"p","extension":' + b'{"a":' * depth + b"1" + b"}" * depth + b"}"
    if kind == "ndjson":
        return json.dumps(P).encode() + b"\n" + b'{"resourceType":"Observation","x":' + b'[' * depth + b"]" * depth + b"}\n"
    if kind == "jsonld":
        return b'{"@id":"http://ex/a","http://ex/b":' + b'{"http://ex/c":' * depth + b"1" + b"}" * depth + b"}"
    if kind == "xml":
        return (b'<?xml version="1.0"?><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" xmlns:e="http://ex/">'
                b'<rdf:Description rdf:about="http://ex/a">' + b"<e:p><rdf:Description>" * depth
                + b"</rdf:Description></e:p>" * depth + b"</rdf:Description></rdf:RDF>")
    if kind == "turtle-list":
        return b"<urn:a> <urn:b> " + b"( " * depth + b")" * depth + b" .\n"
    if kind == "turtle-bnode":
        return b"<urn:a> <urn:b> " + b"[ <urn:c> " * depth + b"1" + b" ]" * depth + b" .\n"
    raise ValueError(kind)


def b_deep(kind: str, depth: int):
    ext = {"array": ".json", "object": ".json", "ndjson": ".ndjson", "jsonld": ".jsonld", "xml": ".rdf",
           "turtle-list": ".ttl", "turtle-bnode": ".ttl"}[kind]

    def build(d: Path, env: Env) -> list[str]:
        return [_w(d, f"deep-{kind}-{depth}{ext}", _deep_json(depth, kind))]
    return build


def _case01_entries() -> tuple[str, list[str]]:
    src = json.loads((EXAMPLES / "fhir" / "case01-b12-179-metformin-deficient.fhir.json").read_text(encoding="utf-8"))
    return json.dumps(src["entry"]), [e["resource"]["id"] for e in src["entry"]]


def write_bundle(path: Path, entries: int) -> int:
    """A FHIR Bundle of ``entries`` entries: copies of examples/fhir case01 (6 resources per patient)
    with fresh ids, streamed to ``path``. Returns the number of patients."""
    text, ids = _case01_entries()
    n = 0
    k = 0
    with open(path, "w", encoding="utf-8") as f:
        f.write('{"resourceType":"Bundle","type":"collection","entry":[')
        while n < entries:
            copy = text
            for j, rid in enumerate(ids):
                copy = copy.replace(rid, f"{k:08x}-0000-4000-8000-{j:012x}")
            for e in json.loads(copy):
                if n == entries:
                    break
                f.write(("," if n else "") + json.dumps(e, separators=(",", ":")))
                n += 1
            k += 1
        f.write("]}")
    return k


def write_ndjson(path: Path, size: int) -> int:
    """FHIR Bulk Data NDJSON of about ``size`` bytes (case01 copies, references as Patient/<id>),
    streamed. Returns the number of patients."""
    text, ids = _case01_entries()
    written = 0
    k = 0
    with open(path, "w", encoding="utf-8") as f:
        while written < size:
            copy = text
            for j, rid in enumerate(ids):
                copy = copy.replace(rid, f"{k:08x}-0000-4000-8000-{j:012x}")
            copy = re.sub(r'"urn:uuid:([^"]+)"', r'"Patient/\1"', copy)
            for e in json.loads(copy):
                line = json.dumps(e["resource"], separators=(",", ":")) + "\n"
                f.write(line)
                written += len(line)
            k += 1
    return k


def write_turtle(path: Path, size: int) -> int:
    """Turtle of about ``size`` bytes: the case01 patient repeated under fresh IRIs, streamed."""
    body = (EXAMPLES / "case01-b12-179-metformin-deficient.ttl").read_text(encoding="utf-8")
    prefixes = "".join(ln + "\n" for ln in body.splitlines() if ln.startswith("@prefix") and " ex:" not in ln)
    body = "".join(ln + "\n" for ln in body.splitlines() if not ln.startswith(("@prefix", "#")))
    written = 0
    k = 0
    with open(path, "w", encoding="utf-8") as f:
        f.write(prefixes)
        while written < size:
            chunk = f"@prefix ex: <https://example.org/b12kg/large/{k}/> .\n" + body
            f.write(chunk)
            written += len(chunk)
            k += 1
    return k


def b_written(name: str, write: Callable[[Path], object]):
    """A case input written by ``write(path)`` into the case's folder as ``name``."""
    def build(d: Path, env: Env) -> list[str]:
        p = d / name
        write(p)
        return [str(p)]
    return build


def b_bundle(entries: int):
    return b_written(f"bundle-{entries}.json", lambda p: write_bundle(p, entries))


def b_bundle_unread(entries: int):
    """One patient and ``entries - 1`` entries of a type the importer does not read (Encounter)."""
    def build(d: Path, env: Env) -> list[str]:
        p = d / f"bundle-unread-{entries}.json"
        with open(p, "w", encoding="utf-8") as f:
            f.write('{"resourceType":"Bundle","type":"collection","entry":[' + json.dumps({"resource": P}))
            for i in range(entries - 1):
                f.write(',{"resource":{"resourceType":"Encounter","id":"e%d","status":"finished","subject":{"reference":"Patient/p1"}}}' % i)
            f.write("]}")
        return [str(p)]
    return build


def b_ndjson_large(size: int):
    return b_written(f"large-{size // MiB}MB.ndjson", lambda p: write_ndjson(p, size))


def b_turtle_large(size: int):
    return b_written(f"large-{size // MiB}MB.ttl", lambda p: write_turtle(p, size))


def b_over_limit(real: bool):
    """A file one byte over MAX_INPUT_BYTES: sparse (truncate; no disk used) or real Turtle bytes."""
    def build(d: Path, env: Env) -> list[str]:
        from reasoner.load import MAX_INPUT_BYTES

        p = d / ("over-limit-real.ttl" if real else "over-limit-sparse.ttl")
        if real:
            line = b"<urn:ex:s> <urn:ex:p> " + b'"' + b"x" * 200 + b'" .\n'
            with open(p, "wb") as f:
                block = line * (MiB // len(line))
                while f.tell() + len(block) <= MAX_INPUT_BYTES:
                    f.write(block)
                f.write(line * ((MAX_INPUT_BYTES - f.tell()) // len(line) + 1))
        else:
            with open(p, "wb") as f:
                f.truncate(MAX_INPUT_BYTES + 1)
        return [str(p)]
    return build


def b_bytes(name: str, make: Callable[[], bytes]):
    def build(d: Path, env: Env) -> list[str]:
        return [_w(d, name, make())]
    return build


def _zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("bundle.json", _bundle(P))
    return buf.getvalue()


_TTL_TEXT = PATIENT_TTL + _ttl_patient()
_BUNDLE_TEXT = _bundle(P, _obs("o1", "Patient/p1"))


def b_device(path: str):
    def build(d: Path, env: Env) -> list[str]:
        return [path]
    return build


def b_fifo(d: Path, env: Env) -> list[str]:
    p = d / "pipe.ttl"
    os.mkfifo(p)
    return [str(p)]


def b_symlink_folder(d: Path, env: Env) -> list[str]:
    folder = d / "export"
    folder.mkdir()
    (folder / "bundle.json").write_text(_BUNDLE_TEXT, encoding="utf-8")
    (folder / "inside.ttl").write_text(PATIENT_TTL + _ttl_patient("<urn:ex:q>", "<urn:ex:qb12>"), encoding="utf-8")
    (folder / "alias.ttl").symlink_to("inside.ttl")  # inside the folder: read
    (folder / "secret.ttl").symlink_to(env.canary)  # outside: not followed
    (folder / "passwd.ttl").symlink_to("/etc/passwd")
    (folder / "zero.ttl").symlink_to("/dev/zero")
    (folder / "outside-dir").symlink_to(env.outside, target_is_directory=True)
    (folder / "dangling.json").symlink_to(folder / "nowhere.json")
    (folder / "loop.ttl").symlink_to(folder / "loop.ttl")
    os.mkfifo(folder / "pipe.ndjson")
    return [str(folder)]


def b_folder_binary(d: Path, env: Env) -> list[str]:
    folder = d / "mixed"
    folder.mkdir()
    (folder / "bundle.json").write_text(_BUNDLE_TEXT, encoding="utf-8")
    (folder / "export.ndjson.gz").write_bytes(gzip.compress(_BUNDLE_TEXT.encode(), mtime=0))
    (folder / "noise.json").write_bytes(random.Random(7).randbytes(4096))
    (folder / "utf16.ndjson").write_bytes(json.dumps(P).encode("utf-16"))
    (folder / "empty.ndjson").write_bytes(b"")
    return [str(folder)]


# ------------------------------------------------------------------------------------------------
# Cases
# ------------------------------------------------------------------------------------------------


@dataclass
class Case:
    name: str
    group: str  # the hostile input class (a row of the table in docs/reliability.md)
    how: str  # how the input is generated
    build: Callable[[Path, Env], list[str]]
    expect: str  # "refused" | "processed"
    needles: tuple[str, ...] = ()  # in the one error line (refused) or in stdout (processed)
    commands: tuple[str, ...] = ("recommend", "convert")
    heavy: bool = False  # run alone: its own process, wall time and peak RSS measured
    timeout: float = 120.0
    max_rss_mb: float = 1536.0
    max_wall: float = 60.0
    unused: tuple[str, ...] = ()  # substrings of 'unused' reasons a processed run must list (convert output)
    check: Callable[[RunResult, Env], list[str]] | None = None
    place: bool = False  # the error line names a line (and column)
    large: bool = False  # only with --large (fuzz/run.py)


def _argv(command: str, paths: list[str]) -> list[str]:
    if command == "recommend":
        return ["recommend", "-f", "json", "--as-of", AS_OF, *paths]
    if command == "recommend-ndjson":
        return ["recommend", "-f", "ndjson", "--jobs", "2", "--as-of", AS_OF, *paths]
    if command == "validate":
        return ["validate", "-f", "json", "--as-of", AS_OF, *paths]
    if command == "convert":
        return ["convert", *paths]
    if command == "convert-nt":
        return ["convert", "-f", "nt", *paths]
    raise ValueError(command)


def cases() -> list[Case]:
    ref = "refused"
    ok = "processed"
    c: list[Case] = []
    for kind, how in [("http", "@context: http://127.0.0.1:PORT/context.jsonld"),
                      ("https", "@context: https://127.0.0.1:PORT/..."),
                      ("file", "@context: file:// URI of the canary file"),
                      ("relative", "@context: relative path to the canary file"),
                      ("array", "@context: [inline object, remote URL]"),
                      ("import", "@context: {\"@import\": URL}"),
                      ("nested", "property-scoped @context: URL"),
                      ("escaped", "@context URL written with a \\u0068 JSON escape")]:
        c.append(Case(f"jsonld-context-{kind}", "JSON-LD remote @context", how, b_jsonld_context(kind), ref, ("remote @context",)))
    c += [
        Case("rdfxml-xxe", "RDF/XML external entities", "<!ENTITY xxe SYSTEM file:///etc/passwd>, the canary, a URL",
             b_xxe, ref, ("DTD or entity",)),
        Case("rdfxml-xxe-parameter", "RDF/XML external entities", "parameter entity %remote; SYSTEM http://127.0.0.1:PORT/evil.dtd (.xml)",
             b_xxe_parameter, ref, ("DTD or entity",)),
        Case("rdfxml-billion-laughs", "RDF/XML entity expansion", "10 levels of 10 entity references (10^9 'lol')",
             b_billion_laughs, ref, ("DTD or entity",)),
        Case("rdfxml-base-xinclude", "RDF/XML naming local files", "xml:base file:///etc/, rdf:resource canary and URL, xi:include",
             b_xml_base, ok, ("file:///etc/passwd",)),
        Case("turtle-base-file", "Turtle @base / IRIs to local files", "@base <file:///etc/> . <passwd> a b12:Patient ...",
             b_turtle_base, ok, ("file:///etc/passwd",)),
        Case("turtle-local-iris", "Turtle @base / IRIs to local files", "patient IRI = canary file URI; rdfs:seeAlso file:, http:, relative",
             b_turtle_local_iris, ok, ()),
        Case("turtle-owl-imports", "owl:imports", "owl:imports of the canary file, /etc/passwd, http and https URLs",
             b_owl_imports, ok, ("urn:ex:p",),
             check=lambda r, env: [] if r.argv[0] != "convert" or "owl#imports" in r.stdout else ["the owl:imports triples are not kept as data"]),
        Case("fhir-url-references", "FHIR fullUrl / references to URLs", "fullUrl and subject = http://127.0.0.1:PORT/fhir/Patient/p1; "
             "attachment.url = canary, Binary", b_fhir_urls, ok, ("http://127.0.0.1",),
             unused=("DocumentReference is not read", "Binary is not read")),
        Case("fhir-url-dangling-bundle", "FHIR fullUrl / references to URLs", "Bundle: subject = http://127.0.0.1:PORT/fhir/Patient/elsewhere",
             b_fhir_dangling, ref, ("Observation/o1", "points to no resource in the input")),
        Case("fhir-url-dangling-ndjson", "FHIR fullUrl / references to URLs", "NDJSON: subjects = URL, file:///etc/passwd, canary URI",
             b_fhir_dangling_ndjson, ok, (), unused=("line 3", "line 4", "line 5", "points to no resource in the input")),
    ]
    for kind in ("array", "object", "ndjson", "jsonld", "xml"):
        for depth in (10_000, 100_000):
            expect = ok if kind == "ndjson" else ref
            needles = {"array": ("nested too deeply",), "object": ("nested too deeply",), "jsonld": ("nested", "256"),
                       "xml": ("nested more than 256",), "ndjson": ()}[kind]
            c.append(Case(f"deep-{kind}-{depth}", "Deeply nested input", f"{depth:,} levels ({kind})", b_deep(kind, depth), expect,
                          needles, heavy=depth == 100_000, commands=("recommend",) if depth == 100_000 else ("recommend", "convert"),
                          unused=("nested too deeply",) if kind == "ndjson" else (), place=kind == "xml"))
    for kind in ("turtle-list", "turtle-bnode"):
        c.append(Case(f"deep-{kind}-10000", "Deeply nested input", f"10,000 levels ({kind})", b_deep(kind, 10_000), ok, ()))
        c.append(Case(f"deep-{kind}-100000", "Deeply nested input", f"100,000 levels ({kind})", b_deep(kind, 100_000), ok, (),
                      heavy=True, large=True, commands=("recommend",)))
    c += [
        Case("bundle-100k", "100,000-entry Bundle", "16,667 patients (copies of examples/fhir case01, 6 entries each), 68 MB",
             b_bundle(100_000), ok, (), commands=("convert-nt",), heavy=True, max_wall=120,
             check=lambda r, env: [] if "100000 records read, 100000 used, 0 not used" in r.stdout else ["not every entry accounted for"]),
        Case("bundle-100k-unread", "100,000-entry Bundle", "1 Patient + 99,999 Encounters (a type not read), 11 MB",
             b_bundle_unread(100_000), ok, (), commands=("recommend",), heavy=True,
             check=lambda r, env: [] if r.stdout.count("Encounter is not read") == 99_999 else ["99,999 unused Encounters not listed"]),
        Case("bundle-100k-recommend", "100,000-entry Bundle", "as bundle-100k, recommend -f ndjson --jobs 2",
             b_bundle(100_000), ok, (), commands=("recommend-ndjson",), heavy=True, large=True, timeout=3600, max_wall=3600,
             max_rss_mb=4096),
        Case("random-bytes", "Binary garbage", "4 KiB of random bytes (seeded), .ttl", b_bytes("noise.ttl", lambda: random.Random(1).randbytes(4096)),
             ref, ("binary content",)),
        Case("random-bytes-json", "Binary garbage", "4 KiB of random bytes without NUL, .json",
             b_bytes("noise.json", lambda: bytes(b for b in random.Random(2).randbytes(8192) if b)[:4096]), ref, ("not UTF-8",), place=True),
        Case("gzip", "Binary garbage", "gzip of a valid bundle, .json", b_bytes("bundle.json", lambda: gzip.compress(_BUNDLE_TEXT.encode(), mtime=0)),
             ref, ("gzip", "decompress")),
        Case("zip", "Binary garbage", "zip holding a valid bundle, no extension", b_bytes("export", _zip), ref, ("zip archive",)),
        Case("png", "Binary garbage", "PNG signature + random bytes, .ttl", b_bytes("image.ttl", lambda: b"\x89PNG\r\n\x1a\n" + random.Random(3).randbytes(200)),
             ref, ("PNG image",)),
        Case("utf16-bom", "Wrong encoding", "Turtle patient in UTF-16 with BOM", b_bytes("utf16.ttl", lambda: _TTL_TEXT.encode("utf-16")),
             ref, ("UTF-16", "convert the file to UTF-8")),
        Case("utf16-no-bom", "Wrong encoding", "FHIR bundle in UTF-16LE without BOM", b_bytes("utf16.json", lambda: _BUNDLE_TEXT.encode("utf-16-le")),
             ref, ("UTF-16LE", "convert the file to UTF-8")),
        Case("utf32-bom", "Wrong encoding", "FHIR bundle in UTF-32 with BOM", b_bytes("utf32.json", lambda: _BUNDLE_TEXT.encode("utf-32")),
             ref, ("UTF-32",)),
        Case("latin1-literal", "Wrong encoding", "Latin-1 byte 0xE9 in a Turtle literal (line 4)",
             b_bytes("latin1.ttl", lambda: (_TTL_TEXT + '<urn:ex:p> <urn:ex:name> "Ren\xe9e" .\n').encode("latin-1")),
             ref, ("not UTF-8", "0xE9"), place=True),
        Case("overlong-utf8", "Wrong encoding", "overlong UTF-8 (0xC0 0xAF for '/') in a JSON string",
             b_bytes("overlong.json", lambda: _BUNDLE_TEXT.replace('"p1"', '"p\\u0031"').encode().replace(b"\\u0031", b"\xc0\xaf")),
             ref, ("not UTF-8", "0xC0"), place=True),
        Case("cesu8-surrogate", "Wrong encoding", "a surrogate encoded as UTF-8 bytes (0xED 0xA0 0x80)",
             b_bytes("cesu.ttl", lambda: _TTL_TEXT.encode() + b'<urn:ex:p> <urn:ex:name> "\xed\xa0\x80" .\n'),
             ref, ("not UTF-8", "0xED"), place=True),
        Case("utf8-bom-json", "Wrong encoding", "UTF-8 BOM before a FHIR bundle", b_bytes("bom.json", lambda: b"\xef\xbb\xbf" + _BUNDLE_TEXT.encode()),
             ok, ("urn:fhir:Patient/p1",)),
        Case("utf8-bom-turtle", "Wrong encoding", "UTF-8 BOM before a Turtle patient", b_bytes("bom.ttl", lambda: b"\xef\xbb\xbf" + _TTL_TEXT.encode()),
             ok, ("urn:ex:p",)),
        Case("lone-surrogate-json", "Wrong encoding", 'FHIR bundle with "gender": "\\ud800"',
             b_bytes("surrogate.json", lambda: _BUNDLE_TEXT.replace('"female"', '"\\ud800"').encode()), ref, ("lone surrogate",), place=True),
        Case("lone-surrogate-ndjson", "Wrong encoding", 'NDJSON line 2 with a code "\\udc00"',
             b_bytes("surrogate.ndjson", lambda: (json.dumps(P) + "\n" + json.dumps(_obs("o1", "Patient/p1")).replace('"2132-9"', '"\\udc00"') + "\n").encode()),
             ok, (), unused=("line 2", "lone surrogate")),
        Case("lone-surrogate-jsonld", "Wrong encoding", 'JSON-LD value "\\ud800"',
             b_bytes("surrogate.jsonld", lambda: b'{"@id": "http://ex/a", "http://ex/b": "\\ud800"}'), ref, ("lone surrogate",), place=True),
        Case("lone-surrogate-turtle", "Wrong encoding", 'Turtle literal "\\uD800"',
             b_bytes("surrogate.ttl", lambda: b'<urn:ex:a> <urn:ex:b> "\\uD800" .\n'), ref, ("D800",), place=True),
        Case("over-limit-sparse", "Larger than MAX_INPUT_BYTES", "sparse file of 512 MiB + 1 byte (truncate)", b_over_limit(False),
             ref, ("larger than 512 MiB",)),
        Case("over-limit-real", "Larger than MAX_INPUT_BYTES", "512 MiB + 1 line of real Turtle, streamed", b_over_limit(True),
             ref, ("larger than 512 MiB",), heavy=True, large=True),
        Case("empty-file", "Empty file", "0 bytes, .json", b_bytes("empty.json", lambda: b""), ref, ("empty file",)),
        Case("blank-file", "Empty file", "whitespace and a UTF-8 BOM only, .ttl", b_bytes("blank.ttl", lambda: b"\xef\xbb\xbf \n\t\n"), ref, ("empty file",)),
        Case("dev-zero", "FIFO / device", "/dev/zero given as input", b_device("/dev/zero"), ref, ("character device", "not read"), heavy=True),
        Case("dev-stdin", "FIFO / device", "/dev/stdin (the child's stdin is /dev/null)", b_device("/dev/stdin"), ref, ("not read",)),
        Case("fifo", "FIFO / device", "a named pipe with no writer, .ttl", b_fifo, ref, ("FIFO", "not read")),
        Case("folder-symlinks", "Folder with symlinks", "links to a file inside, the canary, /etc/passwd, /dev/zero, a folder outside, "
             "a dangling link, a loop, a FIFO", b_symlink_folder, ok, ("urn:ex:q",),
             unused=("secret.ttl: symbolic link pointing outside the folder", "passwd.ttl: symbolic link pointing outside",
                     "zero.ttl: symbolic link pointing outside", "outside-dir: symbolic link pointing outside",
                     "dangling.json: cannot be read", "loop.ttl: cannot be read", "pipe.ndjson: a FIFO")),
        Case("folder-binary", "Binary garbage", "folder: a bundle, a .ndjson.gz, random bytes, UTF-16 NDJSON, an empty file",
             b_folder_binary, ok, ("urn:fhir:Patient/p1",),
             unused=("export.ndjson.gz: binary content (gzip", "noise.json: binary content", "utf16.ndjson: UTF-16", "empty.ndjson: empty file")),
        Case("large-ndjson", "Very large input", "~210 MB FHIR NDJSON (57,853 case01 copies), streamed", b_ndjson_large(200 * MiB), ok, (),
             commands=("convert-nt",), heavy=True, large=True, timeout=3600, max_wall=3600, max_rss_mb=6144),
        Case("large-turtle", "Very large input", "~105 MB Turtle (108,439 case01 copies), streamed", b_turtle_large(100 * MiB), ok, (),
             commands=("convert-nt",), heavy=True, large=True, timeout=3600, max_wall=3600, max_rss_mb=6144),
    ]
    return c


# ------------------------------------------------------------------------------------------------
# Checking one run
# ------------------------------------------------------------------------------------------------

_PASSWD = re.compile(r"root:[^:\n]*:0:0:")


def problems(case: Case, command: str, paths: list[str], r: RunResult, env: Env) -> list[str]:
    """What is wrong with one run of one case (empty: the outcome is the expected one)."""
    out: list[str] = []
    if r.timed_out:
        return [f"timed out after {case.timeout:.0f} s"]
    if r.killed_for_memory:
        return [f"killed: resident set above {2 * case.max_rss_mb:.0f} MB"]
    if r.signal:
        return [f"killed by signal {r.signal}: {r.child_stderr.strip()[-300:]}"]
    if r.traceback or "Traceback" in r.stderr:
        return ["traceback: " + (r.traceback or r.stderr).strip().splitlines()[-1]]
    if r.code is None:
        return [f"no exit code; child stderr: {r.child_stderr.strip()[-300:]}"]
    if r.events:
        out.append(f"audit events outside the inputs: {r.events[:5]}")
    if r.strace:
        out.append(f"strace: {r.strace[:5]}")
    for text in (r.stdout, r.stderr):
        if env.token in text:
            out.append("the canary file's content appears in the output")
        if _PASSWD.search(text):
            out.append("/etc/passwd's content appears in the output")
    if case.expect == "refused":
        lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
        if r.code != 2:
            out.append(f"exit {r.code}, expected 2 (refused)")
        if len(lines) != 1 or not lines[0].startswith("b12kg: error: "):
            out.append(f"stderr is not one 'b12kg: error:' line: {r.stderr[:300]!r}")
        else:
            line = lines[0]
            named = [p for p in paths if line.startswith(f"b12kg: error: {p}")]
            if not named:
                out.append(f"the error line does not start with the file: {line[:200]}")
            elif case.place and not re.match(rf"b12kg: error: {re.escape(named[0])}:\d+(:\d+)?: ", line):
                out.append(f"the error line does not name the line and column: {line[:200]}")
            for n in case.needles:
                if n not in line:
                    out.append(f"{n!r} not in the error line: {line[:300]}")
        if r.stdout:
            out.append(f"stdout not empty: {r.stdout[:100]!r}")
    else:
        if r.code not in ((0, 1) if command == "validate" else (0,)):
            out.append(f"exit {r.code}, expected 0 (processed): {r.first_line[:300]}")
        for n in case.needles:
            if command in ("convert", "convert-nt", "recommend") and n not in r.stdout:
                out.append(f"{n!r} not in the output")
        if command.startswith("convert"):
            for n in case.unused:
                if n not in r.stdout:
                    out.append(f"unused reason {n!r} not listed")
    if case.check and not out:
        out += case.check(r, env)
    if case.heavy:
        if r.peak_rss_mb is not None and r.peak_rss_mb > case.max_rss_mb:
            out.append(f"peak RSS {r.peak_rss_mb:.0f} MB > {case.max_rss_mb:.0f} MB")
        if r.wall > case.max_wall:
            out.append(f"wall time {r.wall:.1f} s > {case.max_wall:.0f} s")
    return out


@dataclass
class Outcome:
    case: Case
    command: str
    paths: list[str]
    run: RunResult
    problems: list[str]

    def row(self) -> str:
        rss = f"{self.run.peak_rss_mb:.0f} MB" if self.run.peak_rss_mb is not None else "-"
        if self.run.workers_peak_rss_mb:
            rss += f" (workers {self.run.workers_peak_rss_mb:.0f} MB)"
        status = "ok" if not self.problems else "FAIL"
        what = "refused" if self.run.code == 2 else ("processed" if self.run.code in (0, 1) else "crash")
        first = self.run.first_line.replace(self.paths[0], "<input>") if self.paths else self.run.first_line
        return f"{status:4s} {self.case.name:28s} {self.command:16s} {what:9s} exit={self.run.code!s:4s} {self.run.wall:7.2f}s {rss:>8s}  {first[:140]}"


def build_case(case: Case, base: Path, env: Env) -> tuple[Path, list[str]]:
    d = Path(tempfile.mkdtemp(prefix=f"{case.name}-", dir=base))
    return d, case.build(d, env)


def run_cases(selected: list[Case], base: Path, env: Env, *, batch: bool = True, trace: bool = False,
              progress: Callable[[Outcome], None] | None = None) -> list[Outcome]:
    """Run every (case, command): heavy cases alone (time and memory measured); the others in one
    child process when ``batch`` (the knowledge base is loaded once), else each alone."""
    outcomes: list[Outcome] = []
    light = [c for c in selected if not c.heavy] if batch else []
    if light:
        inputs = base / "inputs"
        inputs.mkdir(exist_ok=True)
        built = []
        for case in light:
            d = inputs / case.name
            d.mkdir()
            built.append((case, d, case.build(d, env)))
        runs = [(case, cmd, paths) for case, d, paths in built for cmd in case.commands]
        named = tuple(sorted({p for _, _, paths in runs for p in paths}))  # /dev/zero given as an input is an input
        results = run_child([_argv(cmd, paths) for _, cmd, paths in runs], str(inputs), str(base),
                            timeout=max(300.0, 10.0 * len(runs)), trace=trace, extra_allowed=named)
        for (case, cmd, paths), r in zip(runs, results):
            o = Outcome(case, cmd, paths, r, problems(case, cmd, paths, r, env))
            outcomes.append(o)
            if progress:
                progress(o)
    for case in selected:
        if case in light:
            continue
        d, paths = build_case(case, base, env)
        try:
            for cmd in case.commands:
                (r,) = run_child([_argv(cmd, paths)], str(d), str(base), timeout=case.timeout, trace=trace and not case.heavy,
                                 extra_allowed=tuple(paths), kill_rss_mb=2 * case.max_rss_mb)
                o = Outcome(case, cmd, paths, r, problems(case, cmd, paths, r, env))
                outcomes.append(o)
                if progress:
                    progress(o)
        finally:
            shutil.rmtree(d, ignore_errors=True)
    return outcomes


def main_hostile(large: bool = False, only: str | None = None, trace: bool | None = None, keep: bool = False) -> int:
    """``fuzz/run.py --hostile``: every case in its own process; one line per run; exit 1 on any problem."""
    selected = [c for c in cases() if (large or not c.large) and (only is None or re.search(only, c.name))]
    trace = strace_available() if trace is None else trace
    base = Path(tempfile.mkdtemp(prefix="b12kg-hostile-"))
    t0 = time.monotonic()
    print(f"b12kg hostile: {len(selected)} cases{' (with --large)' if large else ''}; audit hook on; "
          f"strace {'on (light cases)' if trace else 'off'}; columns: status case command outcome exit wall peak-RSS first-stderr-line",
          flush=True)
    try:
        with CountingServer() as server:
            env = make_env(server.port, str(base))
            outcomes = run_cases(selected, base, env, batch=False, trace=trace,
                                 progress=lambda o: print(o.row() + "".join(f"\n     ! {p}" for p in o.problems), flush=True))
            hits = len(server.hits)
    finally:
        if keep:
            print(f"inputs kept in {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)
    bad = [o for o in outcomes if o.problems]
    print(f"{len(outcomes)} runs in {time.monotonic() - t0:.0f} s; connections to the test server: {hits}; "
          f"runs with a problem: {len(bad)}")
    return 1 if bad or hits else 0
