"""`b12kg trace`: every catalog identifier with its rule or shape and a source document, no gap
on the shipped encoding, a gap as soon as a test case, a rule or a citation goes missing, and the
committed docs/traceability.md is the current matrix."""
from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from reasoner.cli import main
from reasoner.workbench import trace

ROOT = Path(__file__).resolve().parents[1]
CATALOG = ROOT / "docs" / "guideline" / "CATALOG.md"


def catalog_ids() -> list[str]:
    return sorted(set(re.findall(r"^\| ((?:DX|TX|PAIN|MON|SAFETY|INFO|CONFLICT)-[A-Z0-9-]+)", CATALOG.read_text(), re.M)))


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main(["trace", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def matrix_rows(md: str) -> dict[str, list[str]]:
    """The Matrix section's rows by identifier (cells split on unescaped pipes)."""
    section = md.split("## Matrix", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        if line.startswith("| ") and not line.startswith("| identifier"):
            cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip().strip("|"))]
            rows[cells[0]] = cells
    return rows


@pytest.fixture(scope="module")
def shipped_md() -> str:
    return trace.to_markdown(trace.build())


def test_lists_all_64_identifiers_with_implementation_and_source(shipped_md):
    ids = catalog_ids()
    assert len(ids) == 64
    rows = matrix_rows(shipped_md)
    assert sorted(rows) == ids
    for ident, cells in rows.items():
        _, statement, sources, implemented, _reads, tests, _examples, gap = cells
        assert f"stmt:{ident}" in statement
        if ident.startswith("SAFETY-"):
            assert "shapes/" in implemented and f"shape:{ident}" in implemented, ident
        else:
            assert f"queries/rules/catalog/{ident}.rq" in implemented, ident
        assert re.search(r"\b00[0-4]\b[^<]*: \S", sources), f"{ident}: no source document title in {sources!r}"
        assert f"tests/cases/{ident}.toml" in tests
        assert gap == "none", f"{ident}: {gap}"


def test_no_gap_on_the_shipped_encoding(capsys):
    m = trace.build()
    assert m.gaps == []
    code, out, _ = run(capsys, "--check")
    assert code == 0
    assert "**0 gaps**" in out
    assert "## Gaps\n\nNone" in out


def test_per_document_section(shipped_md):
    docs = shipped_md.split("## Source documents", 1)[1].split("\n## Derived states", 1)[0]
    headings = re.findall(r"^### (\d{3}) — (.+)$", docs, re.M)
    assert [h[0] for h in headings] == ["000", "001", "002", "003", "004"]
    assert ("000", "Treatment of Vitamin B12 Neuropathy") in headings
    # every identifier is cited by at least one document section
    cited = set(re.findall(r"^\| ((?:DX|TX|PAIN|MON|SAFETY|INFO|CONFLICT)-[A-Z0-9-]+) \|", docs, re.M))
    assert cited == set(catalog_ids())


def test_reads_derived_states_and_results(shipped_md):
    rows = matrix_rows(shipped_md)
    assert "b12:DeficiencyEstablished" in rows["TX-NONNEURO-LOADING"][4]
    assert "b12:NeurologicalInvolvement" in rows["TX-NONNEURO-LOADING"][4]
    assert "stmt:TX-NEURO-LOADING" in rows["CONFLICT-NEURO-LOADING"][4]
    assert "b12:DeficiencySuspected" in rows["SAFETY-FOLATE-WITHOUT-B12"][4]  # read from the shape's SPARQL
    assert "case01" in rows["TX-NONNEURO-LOADING"][6]


def test_removed_case_file_shows_a_gap(tmp_path, capsys):
    cases = tmp_path / "cases"
    shutil.copytree(ROOT / "tests" / "cases", cases)
    (cases / "MON-PLATELETS.toml").unlink()
    # and a file that keeps its fire cases but loses every near miss
    text = (cases / "TX-ORAL-MILD.toml").read_text()
    (cases / "TX-ORAL-MILD.toml").write_text(re.sub(r'silent = \[[^\]]*\]', "silent = []", text))
    code, out, _ = run(capsys, "--cases", cases, "--check")
    assert code == 1
    rows = matrix_rows(out)
    assert "no test case file" in rows["MON-PLATELETS"][7]
    assert "no near-miss case" in rows["TX-ORAL-MILD"][7]
    assert rows["DX-B12-DEFICIENT"][7] == "none"
    gaps = out.split("## Gaps", 1)[1].split("\n## ", 1)[0]
    assert "MON-PLATELETS" in gaps and "TX-ORAL-MILD" in gaps
    assert "**2 gaps**" in out


def _copy_project(dst: Path) -> Path:
    for d in ("ontology", "shapes", "queries", "examples", "tests/cases", "docs/guideline"):
        shutil.copytree(ROOT / d, dst / d)
    return dst


def test_missing_rule_and_missing_citation_show_gaps(tmp_path, capsys):
    root = _copy_project(tmp_path / "proj")
    (root / "queries" / "rules" / "catalog" / "DX-NO-DELAY.rq").unlink()
    g = root / "ontology" / "guideline.ttl"
    text = g.read_text()
    # TX-ILEAL-RESECTION loses its citations: a statement without a source
    block = re.search(r"stmt:TX-ILEAL-RESECTION a .*?\n\n", text, re.S).group(0)
    stripped = re.sub(r";\s*b12:citation \[[^\]]*\](\s*,\s*\[[^\]]*\])*", "", block)
    assert stripped != block
    g.write_text(text.replace(block, stripped))
    code, out, _ = run(capsys, "--root", root, "-f", "md")
    assert code == 0  # without --check the matrix is printed and the run succeeds
    rows = matrix_rows(out)
    assert "no implementing rule or shape" in rows["DX-NO-DELAY"][7]
    assert "no source" in rows["TX-ILEAL-RESECTION"][7]
    assert len(rows) == 64


def test_html(tmp_path, capsys):
    out_file = tmp_path / "t.html"
    code, out, _ = run(capsys, "-f", "html", "-o", out_file)
    assert code == 0 and out == ""
    page = out_file.read_text()
    assert page.startswith("<!DOCTYPE html>")
    from html.parser import HTMLParser

    HTMLParser().feed(page)
    for ident in catalog_ids():
        assert f"<td>{ident}</td>" in page


def test_committed_matrix_matches_the_encoding(shipped_md):
    """docs/traceability.md has the current rows, implementations and gap count. (Case counts may
    drift while cases are added; regenerate with `b12kg trace -o docs/traceability.md`.)"""
    committed = (ROOT / "docs" / "traceability.md").read_text(encoding="utf-8")
    stale = "docs/traceability.md is stale: run `b12kg trace -o docs/traceability.md`"
    now, then = matrix_rows(shipped_md), matrix_rows(committed)
    assert sorted(then) == sorted(now), stale
    for ident in now:
        assert then[ident][:4] == now[ident][:4] and then[ident][7] == now[ident][7], f"{stale} ({ident})"
    gaps = re.compile(r"\*\*(\d+) gaps?\*\*")
    assert gaps.search(committed).group(1) == gaps.search(shipped_md).group(1), stale


def test_bad_root_exits_2(tmp_path, capsys):
    code, _, err = run(capsys, "--root", tmp_path / "nowhere")
    assert code == 2 and len(err.strip().splitlines()) == 1
