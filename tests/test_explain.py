"""``b12kg explain``: why an identifier fired (derivation tree and graph, DOT, Mermaid, JSON) and
why it did not (the rule's conditions checked against the patient), on the shipped examples.

One evaluation per example; every explanation is then built in-process from that report."""
from __future__ import annotations

import json
import re
from pathlib import Path

import networkx as nx
import pytest

from reasoner import derivation as d
from reasoner import recommend
from reasoner.cli import main
from reasoner.workbench.explain import explain

ROOT = Path(__file__).resolve().parents[1]
AS_OF = "2026-06-01"
EXAMPLES = sorted((ROOT / "examples").glob("*.ttl"))
CASE45 = ROOT / "examples" / "case45-pernicious-anaemia-paraesthesia-nonneuro-regimen.ttl"
CASE49 = ROOT / "examples" / "case49-maintenance-after-plateau.ttl"


def _case(path: Path) -> str:
    return path.name.split("-")[0]


@pytest.fixture(scope="module")
def reports(kb):
    return {_case(p): recommend(p, AS_OF, kb=kb) for p in EXAMPLES}


def _patient(report) -> str:
    (p,) = [p["patient"] for p in report.patients]
    return p


# --- why: the derivation of an item that fired ------------------------------------------------

def test_case45_neuro_loading_why_tree(reports):
    report = reports["case45"]
    text = explain(report, "TX-NEURO-LOADING")
    assert text.startswith("Why TX-NEURO-LOADING fired")
    # the patient's facts ...
    assert "[fact] paraesthesia" in text
    assert "[fact] pernicious-anaemia" in text
    assert "[fact] b12-2026-05-18" in text and "value 165 pg/mL" in text
    # ... the inferred classes and derived states between them and the item ...
    assert "NeurologicalInvolvementFinding -> PatientWithNeurologicalInvolvement" in text
    assert "(EstablishedOrHighSuspicion)" in text and "(DeficiencyEstablished)" in text
    # ... the rules, the item's rule file, and its source documents
    assert "rule: queries/rules/catalog/TX-NEURO-LOADING.rq" in text
    assert "rule: queries/rules/defs/PatientClassStates.rq" in text
    assert '000 "Treatment of Vitamin B12 Neuropathy", ref 1' in text
    # the conditions, including the negative one that holds
    assert "[ok] excludes state MaintenancePhase" in text


def test_case45_derivation_graph_structure(reports):
    report = reports["case45"]
    patient = _patient(report)
    g = d.derivation_graph(report, patient, "TX-NEURO-LOADING")
    assert isinstance(g, nx.DiGraph) and nx.is_directed_acyclic_graph(g)
    kinds = {data["kind"] for _n, data in g.nodes(data=True)}
    assert kinds == set(d.KINDS)
    assert all(data.get("label") for _n, data in g.nodes(data=True))
    item = patient + "/b12kg/TX-NEURO-LOADING"
    assert g.nodes[item]["kind"] == "item" and g.nodes[item]["root"]
    para = "https://example.org/b12kg/case45/paraesthesia"
    assert g.nodes[para]["kind"] == "fact" and "Paraesthesia" in g.nodes[para]["label"]
    assert nx.has_path(g, para, item)  # fact -> classes -> rule -> state -> rule -> item
    path = nx.shortest_path(g, para, item)
    assert [g.nodes[n]["kind"] for n in path] == ["fact", "class", "class", "rule", "state", "rule", "item"]
    rules = {data.get("file") for _n, data in g.nodes(data=True) if data["kind"] == "rule"}
    assert "queries/rules/catalog/TX-NEURO-LOADING.rq" in rules
    sources = [data for _n, data in g.nodes(data=True) if data["kind"] == "source"]
    assert {s["document_id"] for s in sources} == {"000", "002", "004"}
    assert all(s["document"] and s["evidence"] for s in sources)
    assert all(g.has_edge(item, n) for n, data in g.nodes(data=True) if data["kind"] == "source")


def test_safety_violation_derivation_names_the_shape(reports):
    report = reports["case45"]
    g = d.derivation_graph(report, _patient(report), "SAFETY-NONNEURO-REGIMEN-IN-NEURO")
    rules = [data for _n, data in g.nodes(data=True) if data["kind"] == "rule"]
    assert any(r["file"] == "shapes/safety.ttl" and r["rule_id"] == "SAFETY-NONNEURO-REGIMEN-IN-NEURO" for r in rules)
    facts = {data["title"] for _n, data in g.nodes(data=True) if data["kind"] == "fact"}
    assert {"hydroxocobalamin-2026", "paraesthesia"} <= facts


def test_dot_output(reports):
    report = reports["case45"]
    g = d.derivation_graph(report, _patient(report), "TX-NEURO-LOADING")
    dot = explain(report, "TX-NEURO-LOADING", fmt="dot")
    assert dot.lstrip().startswith("digraph ")
    assert dot.count("{") == dot.count("}")
    nodes = set(re.findall(r"^\s+(n\d+) \[label=\"", dot, re.M))
    edges = re.findall(r"^\s+(n\d+) -> (n\d+)(?: \[[^\]]*\])?;$", dot, re.M)
    assert len(nodes) == g.number_of_nodes()
    assert len(edges) == g.number_of_edges()
    assert all(a in nodes and b in nodes for a, b in edges)
    assert "queries/rules/catalog/TX-NEURO-LOADING.rq" in dot


def test_mermaid_output(reports):
    report = reports["case45"]
    g = d.derivation_graph(report, _patient(report), "TX-NEURO-LOADING")
    mmd = explain(report, "TX-NEURO-LOADING", fmt="mermaid")
    assert mmd.startswith(("flowchart", "graph"))
    edges = re.findall(r"^\s+(n\d+) -->(?:\|[^|]*\|)? (n\d+)$", mmd, re.M)
    assert len(edges) == g.number_of_edges()
    assert '"' not in "".join(re.findall(r'\["(.*)"\]', mmd))  # quotes inside labels are escaped


def test_json_output(reports):
    report = reports["case45"]
    out = json.loads(explain(report, "TX-NEURO-LOADING", fmt="json"))
    (entry,) = out["explanations"]
    assert entry["fired"] is True
    assert {n["kind"] for n in entry["derivation"]["nodes"]} == set(d.KINDS)
    assert all(c["satisfied"] for c in entry["conditions"]["conditions"])


# --- why not: the conditions of an identifier that did not fire ------------------------------

def test_case49_neuro_loading_why_not_names_the_maintenance_phase(reports):
    report = reports["case49"]
    w = d.why_not(report, _patient(report), "TX-NEURO-LOADING")
    assert not w.fired
    negatives = [c for c in w.conditions if c.negative]
    (maint,) = [c for c in negatives if "MaintenancePhase" in c.classes]
    assert maint.holds is True and maint.satisfied is False  # the excluded state is present
    assert any("maintenance-phase" in m for m in maint.matches)  # ... and it comes from this record
    assert maint in w.failing
    text = explain(report, "TX-NEURO-LOADING")
    assert text.startswith("Why TX-NEURO-LOADING did not fire")
    assert "[FAIL] excludes state MaintenancePhase (maintenance phase) [MINUS]" in text
    assert "present for this patient: state/MaintenancePhase (from maintenance-phase)" in text
    assert "[ok] requires state NeurologicalInvolvement" in text


def test_why_not_mentions_catalog_dependencies(reports):
    report = reports["case49"]
    w = d.why_not(report, _patient(report), "MON-NEURO-EXAM-WEEKLY")
    (dep,) = w.conditions
    assert dep.kind == "result" and dep.depends_on == {"TX-NEURO-LOADING": False}
    assert "catalog result TX-NEURO-LOADING (did not fire)" in explain(report, "MON-NEURO-EXAM-WEEKLY")
    # UNION branches are alternatives; any one suffices
    w = d.why_not(report, _patient(report), "TX-NEURO-MAINTENANCE")
    assert w.fired
    (alts,) = w.conditions
    assert alts.kind == "any-of" and len(alts.alternatives) == 2 and alts.satisfied


def test_why_not_for_a_safety_shape(reports):
    report = reports["case49"]
    w = d.why_not(report, _patient(report), "SAFETY-NONNEURO-REGIMEN-IN-NEURO")
    assert w.shape and w.rule_file == "shapes/safety.ttl" and not w.fired
    assert [c.text for c in w.failing] == ["a record of class B12Therapy, CurrentMedication with b12:frequency b12:threeTimesWeekly"]


@pytest.mark.parametrize("example", EXAMPLES, ids=_case)
def test_explain_every_identifier(reports, example):
    """Every identifier that fires has a derivation from the patient's facts to its sources, and
    every condition of its rule is met; every one that does not fire has a condition it fails."""
    report = reports[_case(example)]
    patient = _patient(report)
    fired = report.ids(patient)
    assert fired
    for item_id in sorted(d.catalog_ids(report)):
        w = d.why_not(report, patient, item_id)
        assert w.conditions, item_id
        if item_id in fired:
            g = d.derivation_graph(report, patient, item_id)
            kinds = {data["kind"] for _n, data in g.nodes(data=True)}
            assert {"fact", "rule", "item", "source"} <= kinds <= set(d.KINDS), item_id
            root = patient + "/b12kg/" + item_id
            assert any(nx.has_path(g, n, root) for n, data in g.nodes(data=True) if data["kind"] == "fact"), item_id
            assert item_id in d.tree_text(g)
            assert d.to_dot(g).startswith("digraph") and d.to_mermaid(g).startswith("flowchart")
            assert w.fired and all(c.satisfied for c in w.conditions), (item_id, [c.text for c in w.conditions if not c.satisfied])
        else:
            with pytest.raises(LookupError):
                d.derivation_graph(report, patient, item_id)
            assert not w.fired and w.failing, item_id
            text = d.why_not_text(w)
            assert "did not fire" in text and "[FAIL]" in text
            assert d.to_mermaid(d.why_not_graph(w)).startswith("flowchart")


# --- the command line -------------------------------------------------------------------------

def test_cli_explain_writes_dot(tmp_path, capsys):
    out = tmp_path / "why.dot"
    rc = main(["explain", str(CASE45), "--id", "TX-NEURO-LOADING", "--as-of", AS_OF, "-f", "dot", "-o", str(out)])
    assert rc == 0
    assert out.read_text(encoding="utf-8").startswith("digraph")


def test_cli_explain_unknown_identifier(capsys):
    rc = main(["explain", str(CASE45), "--id", "TX-NO-SUCH-THING", "--as-of", AS_OF])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.count("\n") == 1 and "unknown identifier 'TX-NO-SUCH-THING'" in err


def test_cli_explain_patient_not_found(capsys):
    rc = main(["explain", str(CASE45), "--id", "TX-NEURO-LOADING", "--patient", "https://example.org/nobody", "--as-of", AS_OF])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.count("\n") == 1 and "no patient" in err


def test_cli_explain_why_not_text(capsys):
    rc = main(["explain", str(CASE49), "--id", "tx-neuro-loading", "--patient", "patient", "--as-of", AS_OF])
    out = capsys.readouterr().out
    assert rc == 0
    assert "did not fire" in out and "MaintenancePhase" in out
