"""The HTML report: one self-contained page with a section per patient, every identifier of the
JSON report visible, violations in red, conflicts side by side with their sources, and inline SVG
derivation graphs; rendered in headless Chromium when it is installed."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from html import unescape
from pathlib import Path

import pytest

from reasoner import recommend, recommend_text
from reasoner.html import render_html

ROOT = Path(__file__).resolve().parents[1]
AS_OF = "2026-06-01"
EXAMPLES = sorted((ROOT / "examples").glob("*.ttl"))


@pytest.fixture(scope="module")
def report(kb):
    return recommend(EXAMPLES, AS_OF, kb=kb)


@pytest.fixture(scope="module")
def page(report):
    return render_html(report)


def _sections(page: str) -> dict[str, str]:
    """Patient IRI -> the HTML of its section."""
    starts = [(m.start(), unescape(m.group(1))) for m in re.finditer(r'<section class="patient" id="patient-\d+" data-patient="([^"]*)">', page)]
    out = {}
    for k, (pos, patient) in enumerate(starts):
        end = starts[k + 1][0] if k + 1 < len(starts) else len(page)
        out[patient] = page[pos:end]
    return out


def _text(html: str) -> str:
    return unescape(re.sub(r"<[^>]+>", " ", html))


def _ids(p: dict) -> set[str]:
    return {i["id"] for key in ("findings", "recommendations", "violations", "conflicts") for i in p[key]}


def test_every_identifier_of_each_patient_is_in_its_section(report, page):
    sections = _sections(page)
    assert len(report.patients) == len(EXAMPLES)
    assert set(sections) == {p["patient"] for p in report.patients}
    for p in report.patients:
        html = sections[p["patient"]]
        text = _text(html)
        for item_id in _ids(p):
            assert f'data-id="{item_id}"' in html, (p["patient"], item_id)
            assert f'<code class="id">{item_id}</code>' in html, (p["patient"], item_id)
            assert item_id in text
        # nothing from another patient leaks in
        assert {m for m in re.findall(r'<article class="[^"]*" id="p\d+-[^"]*" data-id="([^"]+)"', html)} == _ids(p)


def test_page_is_self_contained(page):
    assert page.startswith("<!DOCTYPE html>")
    assert "<script" not in page.lower()
    assert "<link" not in page.lower()
    assert "@import" not in page and "url(http" not in page
    assert not re.search(r'\ssrc="', page)
    assert all(h.startswith("#") for h in re.findall(r'\shref="([^"]*)"', page))


def test_items_show_sources_because_rule_and_graph(report, page):
    sections = _sections(page)
    p = next(p for p in report.patients if "case45" in p["patient"])
    html = sections[p["patient"]]
    art = _article(html, "TX-NEURO-LOADING")
    assert '<table class="regimen">' in art and "hydroxocobalamin" in art and "alternate days" in art
    assert "Treatment of Vitamin B12 Neuropathy" in art
    assert "paraesthesia" in art and "pernicious-anaemia" in art and "b12-2026-05-18" in art
    assert "queries/rules/catalog/TX-NEURO-LOADING.rq" in art
    assert "<svg" in art and "rule: TX-NEURO-LOADING.rq" in art
    # every item of every patient has its derivation graph
    assert page.count("<svg") == sum(len(_ids(q)) for q in report.patients)


def test_violations_are_red_with_severity_and_message(report, page):
    html = _sections(page)[next(p["patient"] for p in report.patients if "case45" in p["patient"])]
    art = _article(html, "SAFETY-NONNEURO-REGIMEN-IN-NEURO")
    assert art.startswith('<article class="item violation sev-violation"')
    assert '<span class="badge sev-violation">Violation</span>' in art
    assert '<p class="message">a current B12 therapy is given three times weekly' in art
    assert "shapes/safety.ttl" in art
    assert "p.message { color: var(--red)" in page and "--red:#b91c1c" in page


def test_conflicts_side_by_side_with_their_documents(report, page):
    html = _sections(page)[next(p["patient"] for p in report.patients if "case45" in p["patient"])]
    art = _article(html, "CONFLICT-NEURO-LOADING")
    sides = re.findall(r'<div class="side">(.*?)</div>', art)
    assert len(sides) == 2
    assert "three times weekly for 2 weeks in B12 neuropathy" in sides[0] and "Treatment of Vitamin B12 Neuropathy" in sides[0]
    assert "alternate-day loading until plateau" in sides[1] and "<strong>004</strong>" in sides[1]
    assert '<code class="id">TX-NEURO-LOADING</code>' in art


def test_text_is_escaped(kb):
    ttl = """@prefix b12: <https://w3id.org/b12kg/> . @prefix ex: <https://example.org/esc/> .
    @prefix xsd: <http://www.w3.org/2001/XMLSchema#> .
    ex:p a b12:Patient .
    ex:r a b12:TotalB12Result ; b12:subject ex:p ; b12:value 100 ; b12:unit "<script>alert(1)</script>" ; b12:date "2026-05-01"^^xsd:date .
    ex:n a b12:Paraesthesia ; b12:subject ex:p ; b12:onset "2026-05-01"^^xsd:date ."""
    html = render_html(recommend_text(ttl, AS_OF, kb=kb))
    assert "<script" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def _article(html: str, item_id: str) -> str:
    m = re.search(rf'<article class="[^"]*" id="p\d+-{re.escape(item_id)}" data-id="{re.escape(item_id)}">.*?</article>', html, re.S)
    assert m, item_id
    return m.group(0)


CHROMIUM = shutil.which("chromium")
_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
          "--disable-component-update", "--disable-sync"]


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium binary on PATH (Debian: apt-get install chromium; `make system-deps`)")
def test_renders_in_headless_chromium(report, page, tmp_path):
    target = tmp_path / "report.html"
    target.write_text(page, encoding="utf-8")
    url = target.as_uri()
    env = dict(os.environ, HOME=str(tmp_path))
    shot = tmp_path / "page.png"
    common = [CHROMIUM, *_FLAGS, f"--user-data-dir={tmp_path / 'profile'}"]
    subprocess.run([*common, f"--screenshot={shot}", "--window-size=1280,2000", url],
                   check=True, capture_output=True, timeout=120, env=env)
    assert shot.exists() and shot.stat().st_size > 10_000
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    dom = subprocess.run([*common, "--dump-dom", url], check=True, capture_output=True, timeout=120, env=env).stdout.decode("utf-8")
    text = _text(dom)
    assert "Vitamin B12 deficiency neuropathy" in text
    sections = _sections(dom)
    for p in report.patients:
        assert p["patient"] in text
        section_text = _text(sections[p["patient"]])
        for item_id in _ids(p):
            assert item_id in section_text, (p["patient"], item_id)
    assert dom.count("<svg") == page.count("<svg")
