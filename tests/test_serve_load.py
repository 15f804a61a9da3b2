"""``b12kg serve`` under load and attack, short: bench/load.py's run for a few seconds.

``b12kg serve`` over the examples (2 workers, a 3 s time limit, 256 MiB per query) in a child
process; 4 clients send the mix of bench/load.py with a third of hostile requests (every one of
them at least once) while an attacker sends very expensive queries back to back. The full run
(16 clients, 60 s) is ``python bench/load.py``; its figures are in docs/reliability.md.
"""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _bench_module():
    spec = importlib.util.spec_from_file_location("b12kg_bench_load", ROOT / "bench" / "load.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


load = _bench_module()
TIME_LIMIT = 3.0

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc for the server's processes")


@pytest.fixture(scope="module")
def figures():
    cfg = load.Config(clients=4, attackers=1, seconds=5.0, seed=3, hostile=0.35, query_timeout=TIME_LIMIT,
                      query_memory=256, workers=2, inputs=[str(p) for p in sorted((ROOT / "examples").glob("*.ttl"))])
    return load.run(cfg)


def test_every_request_gets_its_expected_outcome(figures):
    assert figures["errors"] == 0, figures["error_examples"]
    assert figures["by_outcome"].get(load.OK, 0) >= 20
    assert not [o for o in figures["by_outcome"] if o not in (load.OK, load.BAD_QUERY, load.REFUSED, load.TOO_LARGE,
                                                                load.TIME_LIMIT, load.MEMORY_LIMIT)]


def test_hostile_requests_are_refused(figures):
    # every hostile template was sent at least once, and (no errors) each got its refusal
    for kind in ("update", "load", "service", "syntax", "huge"):
        assert figures["by_kind"].get(kind, 0) >= 1, kind
    assert figures["by_outcome"][load.REFUSED] >= 9  # 4 updates, 2 LOAD, 3 SERVICE
    assert figures["by_outcome"][load.BAD_QUERY] >= 2
    assert figures["by_outcome"][load.TOO_LARGE] >= 2


def test_expensive_queries_are_cut_off_while_the_others_are_served(figures):
    assert figures["by_outcome"].get(load.TIME_LIMIT, 0) >= 1
    assert figures["latency_by_kind_s"]["time-limit"]["min"] >= TIME_LIMIT
    assert figures["latency_by_kind_s"]["time-limit"]["max"] < TIME_LIMIT + 10
    cut = figures["cut_off"]
    assert cut["requests"] >= 2
    assert cut["with_no_good_completed_during"] == 0  # good requests completed while each one ran
    assert cut["good_completed_during_each"]["min"] >= 1


def test_the_server_still_answers_and_leaks_nothing(figures):
    after, stop = figures["after"], figures["stop"]
    assert after["answers"]
    assert after["workers"] == after["expected_workers"] == 2  # extra and replacement workers are gone
    assert stop["exit_code"] == 0 and stop["processes_left"] == [] and stop["tracebacks"] == 0
    assert figures["failed"] == []
    memory = figures["memory"]
    assert memory["workers_max"] <= 4  # 2 workers, and at most 2 more for slow queries
    assert memory["server_peak_mib"] < 400
