"""The knowledge base's pool of working stores (reasoner.pipeline.StorePool): a store is reused
only when nobody can still hold it, comes back holding exactly the ontology, and is retired after
``max_uses`` evaluations so that the terms an in-memory store keeps cannot pile up."""
from __future__ import annotations

import datetime as dt
import gc
from pathlib import Path

import pytest

from reasoner.load import load_sources
from reasoner.pipeline import StorePool, evaluate
from reasoner.report import to_dict

ROOT = Path(__file__).resolve().parents[1]
AS_OF = dt.date(2026, 6, 1)


@pytest.fixture()
def pool(kb, monkeypatch):
    """A fresh pool on the knowledge base (not the shared one other tests use)."""
    fresh = StorePool(kb.evaluation_quads, size=2, max_uses=3)
    monkeypatch.setitem(kb.__dict__, "store_pool", fresh)
    return fresh


def _data():
    return load_sources([str(ROOT / "examples" / "case01-b12-179-metformin-deficient.ttl")])


def _run(kb):
    ev = evaluate(kb, _data(), AS_OF)
    result = to_dict(ev)
    del ev
    gc.collect()
    return result


def test_store_reused_until_retired(kb, pool):
    first = _run(kb)
    assert len(pool.free) == 1
    store, uses = pool.free[0]
    assert uses == 1 and len(store) == len(kb.evaluation_quads)  # only the ontology is left in it
    assert _run(kb) == first and pool.free == [(store, 2)]  # same store, same answer
    assert _run(kb) == first
    assert pool.free == []  # third use: retired (max_uses=3), not put back
    assert _run(kb) == first and pool.free and pool.free[0][0] is not store


def test_exposed_store_is_not_reused(kb, pool):
    ev = evaluate(kb, _data(), AS_OF)
    held = ev.store  # someone may keep this
    del ev
    gc.collect()
    assert pool.free == []
    assert len(held) > len(kb.evaluation_quads)  # still the caller's, untouched
