"""A real SPARQL 1.1 server (the `oxigraph` server from PyPI, started on 127.0.0.1) as the back
end: the same rule and shape queries run remotely and give the same report as the embedded path."""
from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.cli_helpers import run

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted(str(p) for p in (ROOT / "examples").glob("*.ttl"))
OXIGRAPH = shutil.which("oxigraph") or str(Path(sys.executable).parent / "oxigraph")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    if not Path(OXIGRAPH).exists():
        pytest.skip("the oxigraph server (pip install oxigraph) is not installed")
    port = free_port()
    location = tmp_path_factory.mktemp("oxigraph")
    proc = subprocess.Popen([OXIGRAPH, "serve", "--location", str(location), "--bind", f"127.0.0.1:{port}", "--union-default-graph"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            urllib.request.urlopen(url + "/query?query=ASK%7B%7D", timeout=1).read()
            break
        except OSError:
            time.sleep(0.05)
    yield url
    proc.terminate()
    proc.wait(timeout=10)


def test_remote_store_gives_the_embedded_report(server, capsys):
    assert run(capsys, "load", *EXAMPLES, "--store", server)[0] == 0
    code, remote, _ = run(capsys, "recommend", "--store", server, "--as-of", "2026-06-01", "-f", "json")
    assert code == 0
    code, local, _ = run(capsys, "recommend", *EXAMPLES, "--as-of", "2026-06-01", "-f", "json")
    assert json.loads(remote) == json.loads(local)
    # reloading replaces, never duplicates; queries run on the server
    run(capsys, "load", *EXAMPLES, "--store", server)
    code, again, _ = run(capsys, "recommend", "--store", server, "--as-of", "2026-06-01", "-f", "json")
    assert json.loads(again) == json.loads(local)
    code, out, _ = run(capsys, "query", str(ROOT / "queries" / "violations.rq"), "--store", server, "-f", "tsv")
    assert code == 0 and "SAFETY-FOLATE-WITHOUT-B12" in out


def test_remote_store_gone_is_a_clear_error(capsys):
    port = free_port()  # nothing listens there
    code, _, err = run(capsys, "recommend", "--store", f"http://127.0.0.1:{port}", "--as-of", "2026-06-01", "-f", "json")
    assert code == 2
    assert "not reachable" in err and err.count("\n") == 1 and "Traceback" not in err
