"""The report as one self-contained HTML page (no external CSS, scripts, fonts or network).

``render_html(report)`` gives a section per patient: safety violations (in red, with severity and
message), findings, recommendations with their regimen, source conflicts with each side's
position and citing documents side by side, input problems and unused records. Every item shows
its catalog identifier, its sources, the patient facts it rests on ('because'), its rule, and
its derivation graph drawn as inline SVG, laid out here from the networkx graph of
``reasoner.derivation`` in layers (top to bottom, so that deep derivations fit the page width:
patient facts, inferred classes, rules and derived states, the item, its sources). All text is
escaped.
"""
from __future__ import annotations

import re
import textwrap
from html import escape

import networkx as nx

from . import derivation as d

_KIND_STYLE = {
    "fact": ("#dbeafe", "#1d4ed8", "patient fact"),
    "class": ("#dcfce7", "#15803d", "inferred class (OWL)"),
    "state": ("#fef3c7", "#b45309", "derived state"),
    "rule": ("#ede9fe", "#6d28d9", "rule / shape"),
    "item": ("#ccfbf1", "#0f766e", "report item"),
    "source": ("#f3f4f6", "#4b5563", "source document"),
}
_SECTIONS = (
    ("violations", "Safety violations"),
    ("findings", "Findings"),
    ("recommendations", "Recommendations"),
    ("conflicts", "Source conflicts"),
)
_CSS = """
:root { --ink:#1f2937; --muted:#6b7280; --line:#e5e7eb; --red:#b91c1c; --redbg:#fef2f2; --amber:#92400e; --amberbg:#fffbeb; }
* { box-sizing: border-box; }
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; color: var(--ink);
       margin: 0; background: #f9fafb; line-height: 1.45; font-size: 15px; }
header.page, main, footer { max-width: 1180px; margin: 0 auto; padding: 0 24px; }
header.page { padding-top: 24px; }
h1 { font-size: 1.6rem; margin: 0 0 4px; }
h2 { font-size: 1.35rem; margin: 0 0 8px; border-bottom: 2px solid var(--ink); padding-bottom: 4px; }
h3 { font-size: 1.1rem; margin: 22px 0 8px; }
h4 { font-size: 1rem; margin: 0; display: flex; flex-wrap: wrap; gap: 8px; align-items: baseline; }
code, .id { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 0.88em; }
code.id { background: #111827; color: #fff; padding: 1px 6px; border-radius: 4px; white-space: nowrap; }
.muted { color: var(--muted); }
table { border-collapse: collapse; width: 100%; margin: 6px 0; font-size: 0.9rem; }
th, td { border: 1px solid var(--line); padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #f3f4f6; }
nav table td.bad { color: var(--red); font-weight: 600; }
section.patient { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 18px 20px; margin: 22px 0; }
.facts-line { margin: 0 0 6px; }
article.item { border: 1px solid var(--line); border-left: 5px solid #0f766e; border-radius: 6px; padding: 10px 14px; margin: 10px 0; background: #fff; }
article.item.finding { border-left-color: #1d4ed8; }
article.item.conflict { border-left-color: #7c3aed; }
article.item.violation { border-left-color: var(--red); background: var(--redbg); }
article.item.violation.sev-warning, article.item.violation.sev-info { border-left-color: #d97706; background: var(--amberbg); }
.badge { display: inline-block; font-size: 0.78rem; font-weight: 700; padding: 1px 8px; border-radius: 10px; text-transform: uppercase; letter-spacing: .03em; }
.badge.sev-violation { background: var(--red); color: #fff; }
.badge.sev-warning { background: #d97706; color: #fff; }
.badge.sev-info { background: #2563eb; color: #fff; }
p.message { color: var(--red); font-weight: 600; margin: 6px 0; }
article.sev-warning p.message, article.sev-info p.message { color: var(--amber); }
dl.meta { display: grid; grid-template-columns: 7.5em 1fr; gap: 2px 10px; margin: 8px 0 0; font-size: 0.9rem; }
dl.meta dt { font-weight: 600; color: var(--muted); }
dl.meta dd { margin: 0; }
dl.meta ul { margin: 0; padding-left: 18px; }
.sides { display: grid; grid-template-columns: repeat(auto-fit, minmax(260px, 1fr)); gap: 10px; margin: 8px 0; }
.side { border: 1px solid #c4b5fd; background: #f5f3ff; border-radius: 6px; padding: 8px 10px; }
.side h5 { margin: 0 0 4px; font-size: 0.95rem; }
.side p { margin: 4px 0; }
details.derivation { margin-top: 8px; }
details.derivation summary { cursor: pointer; color: #374151; font-weight: 600; font-size: 0.9rem; }
.graph { overflow-x: auto; border: 1px solid var(--line); border-radius: 6px; background: #fff; margin-top: 6px; padding: 4px; }
.legend span.key { display: inline-block; padding: 1px 8px; margin: 2px 6px 2px 0; border-radius: 4px; border: 1px solid; font-size: 0.85rem; }
.empty { color: var(--muted); font-style: italic; }
footer { color: var(--muted); font-size: 0.85rem; padding-bottom: 30px; }
"""


def _e(value) -> str:
    return escape("" if value is None else str(value), quote=True)


def render_html(report, *, graphs: bool = True) -> str:
    """The report of ``reasoner.api.Report`` as a self-contained HTML page."""
    data = report.data
    as_of = data["as_of"]
    patients = data["patients"]
    sides = _conflict_sides(report) if any(p["conflicts"] for p in patients) else {}
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>b12kg report — as of {_e(as_of)}</title>",
        f"<style>{_CSS}</style></head><body>",
        '<header class="page">',
        "<h1>Vitamin B12 deficiency neuropathy: guideline report</h1>",
        f'<p class="muted">Evaluated as of <time datetime="{_e(as_of)}">{_e(as_of)}</time>. '
        "Every item names its catalog identifier, the source documents it comes from, the patient facts it rests on "
        "and the rule that produced it. Safety violations are shown first, in red.</p>",
        _summary_table(patients),
        _legend(),
        "</header><main>",
    ]
    for n, p in enumerate(patients):
        out.append(_patient_section(report, p, n, sides, graphs))
    out.append("</main><footer><p>Generated by b12kg from the report graph (PROV-O). "
               "Sources are the guideline's documents 000–004; evidence levels are as given in each source.</p></footer>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def _summary_table(patients) -> str:
    rows = []
    for n, p in enumerate(patients):
        name = p["patient"] or "(records without a patient)"
        v = len(p["violations"])
        rows.append(
            f'<tr><td><a href="#patient-{n}">{_e(name)}</a></td><td class="{"bad" if v else ""}">{v}</td>'
            f'<td>{len(p["findings"])}</td><td>{len(p["recommendations"])}</td><td>{len(p["conflicts"])}</td>'
            f'<td>{len(p["input_problems"]) + len(p["unused"])}</td></tr>'
        )
    return ('<nav aria-label="patients"><table><thead><tr><th>Patient</th><th>Safety violations</th><th>Findings</th>'
            "<th>Recommendations</th><th>Source conflicts</th><th>Input problems / unused</th></tr></thead><tbody>"
            + "".join(rows) + "</tbody></table></nav>")


def _legend() -> str:
    keys = "".join(
        f'<span class="key" style="background:{fill};border-color:{stroke}">{_e(text)}</span>'
        for fill, stroke, text in _KIND_STYLE.values()
    )
    return f'<p class="legend"><strong>Derivation graphs</strong> (read from the top: patient facts, down to the item and its sources): {keys}</p>'


def _patient_section(report, p, n, sides, graphs) -> str:
    patient = p["patient"]
    out = [f'<section class="patient" id="patient-{n}" data-patient="{_e(patient)}">']
    out.append(f"<h2>Patient <code>{_e(patient or '(records without a patient)')}</code></h2>")
    facts_iris = {f for key, _t in _SECTIONS for item in p[key] for f in item["because"]}
    records = d.describe_records(report, facts_iris | ({patient} if patient else set()))
    if patient:
        demo = records.get(patient, {}).get("values", {})
        bits = [f"born {demo['birthDate']}" if "birthDate" in demo else "", demo.get("sex", "")]
        bits = [b for b in bits if b]
        if bits:
            out.append(f'<p class="facts-line muted">{_e(" · ".join(bits))}</p>')
    for key, title in _SECTIONS:
        items = p[key]
        out.append(f'<section class="{key}"><h3>{_e(title)} ({len(items)})</h3>')
        if not items:
            out.append(f'<p class="empty">No {_e(title.lower())}.</p>')
        for item in items:
            out.append(_item(report, p, item, key, records, sides, graphs, n))
        out.append("</section>")
    if p["input_problems"]:
        out.append('<section class="input-problems"><h3>Input problems</h3><table><thead><tr><th>Identifier</th>'
                   "<th>Record</th><th>Severity</th><th>Problem</th></tr></thead><tbody>")
        for ip in p["input_problems"]:
            out.append(f'<tr data-id="{_e(ip["id"])}"><td><code class="id">{_e(ip["id"])}</code></td><td><code>{_e(ip["resource"])}</code></td>'
                       f'<td>{_e(ip["severity"])}</td><td>{_e(ip["message"])}</td></tr>')
        out.append("</tbody></table></section>")
    if p["unused"]:
        out.append('<section class="unused"><h3>Not used</h3><table><thead><tr><th>Record</th><th>Reason</th></tr></thead><tbody>')
        for u in p["unused"]:
            out.append(f'<tr><td><code>{_e(u["resource"])}</code></td><td>{_e(u["reason"])}</td></tr>')
        out.append("</tbody></table></section>")
    out.append("</section>")
    return "\n".join(out)


_KIND_CLASS = {"violations": "violation", "findings": "finding", "recommendations": "recommendation", "conflicts": "conflict"}


def _item(report, p, item, key, records, sides, graphs, n) -> str:
    iid = item["id"]
    classes = ["item", _KIND_CLASS[key]]
    if key == "violations":
        classes.append("sev-" + item["severity"].lower())
    out = [f'<article class="{" ".join(classes)}" id="p{n}-{_e(iid)}" data-id="{_e(iid)}">']
    badge = ""
    if key == "violations":
        sev = item["severity"]
        badge = f' <span class="badge sev-{_e(sev.lower())}">{_e(sev)}</span>'
    out.append(f'<h4><code class="id">{_e(iid)}</code> <span class="label">{_e(item["label"])}</span>{badge}</h4>')
    if key == "violations" and item.get("message"):
        out.append(f'<p class="message">{_e(item["message"])}</p>')
    if item.get("regimen"):
        out.append(_regimen(item["regimen"]))
    elif key == "recommendations" and "regimen" in item:
        out.append('<p class="muted">No regimen is given by the sources for this recommendation.</p>')
    if key == "conflicts":
        if item.get("between"):
            out.append("<p>Between " + " and ".join(f'<code class="id">{_e(b)}</code>' for b in item["between"]) + ".</p>")
        out.append(_sides(sides.get(iid, [])))
    out.append('<dl class="meta">')
    out.append("<dt>Sources</dt><dd><ul>" + "".join(_source(s) for s in item["sources"]) + "</ul></dd>" if item["sources"]
               else '<dt>Sources</dt><dd class="empty">none recorded</dd>')
    if item["because"]:
        out.append("<dt>Because</dt><dd><ul>" + "".join(_fact(f, records.get(f)) for f in item["because"]) + "</ul></dd>")
    out.append(f"<dt>Rule</dt><dd>{_rule(report, item['rule'])}</dd>")
    out.append("</dl>")
    if graphs and p["patient"]:
        try:
            g = d.derivation_graph(report, p["patient"], iid)
        except LookupError:
            g = None
        if g is not None:
            out.append(f'<details class="derivation"><summary>How <span class="id">{_e(iid)}</span> was derived '
                       f'(derivation graph, {g.number_of_nodes()} nodes)</summary><div class="graph">{svg_graph(g, f"g{n}-{iid}")}</div></details>')
    out.append("</article>")
    return "\n".join(out)


def _rule(report, rule: str) -> str:
    shape = d.ontology(report.evaluation.kb).shapes.get(rule)
    if shape is not None:
        return f'<code>{_e(shape["file"])}</code>, SHACL shape <code>{_e(shape["id"])}</code>'
    return f"<code>{_e(rule)}</code>"


def _source(s) -> str:
    ref = f", ref {_e(s['reference'])}" if s["reference"] else ""
    return (f'<li><strong>{_e(s["document_id"])}</strong> <cite>{_e(s["document"])}</cite>{ref} '
            f'<span class="muted">— evidence: {_e(s["evidence"])}</span></li>')


def _fact(iri, info) -> str:
    if not info:
        return f"<li><code>{_e(d.local_name(iri))}</code></li>"
    types = ", ".join(sorted(d.local_name(t) for t in info["types"] if t.startswith("https://w3id.org/b12kg/")))
    summary = d.fact_summary(info)
    return (f'<li title="{_e(iri)}"><code>{_e(d.local_name(iri))}</code> {_e(types)}'
            + (f' <span class="muted">— {_e(summary)}</span>' if summary else "") + "</li>")


def _duration(value: str | None) -> str:
    if not value:
        return ""
    m = re.fullmatch(r"P(?:(\d+)Y)?(?:(\d+)M)?(?:(\d+)W)?(?:(\d+)D)?", value)
    if not m:
        return value
    parts = []
    for num, unit in zip(m.groups(), ("year", "month", "week", "day")):
        if num:
            parts.append(f"{num} {unit}{'' if num == '1' else 's'}")
    return " ".join(parts) or value


def _regimen(regimen) -> str:
    steps = any("step" in r for r in regimen)
    assumptions = any(r.get("assumption") for r in regimen)
    rows = []
    for r in regimen:
        if "dose" in r:
            dose = f"{r['dose']} {r.get('unit', '')}"
        elif "dose_min" in r or "dose_max" in r:
            dose = f"{r.get('dose_min', '?')}–{r.get('dose_max', '?')} {r.get('unit', '')}"
        else:
            dose = ""
        how_long = "for life" if r.get("for_life") else (_duration(r.get("duration")) or r.get("until", ""))
        cells = ([r.get("step", "")] if steps else []) + [
            r.get("label", ""), r.get("drug", ""), dose.strip(), r.get("route", ""), r.get("frequency", ""), how_long]
        row = "".join(f"<td>{_e(v)}</td>" for v in cells)
        if assumptions:
            row += f'<td class="muted">{_e(r.get("assumption", ""))}</td>'
        rows.append(f"<tr>{row}</tr>")
    head = (["Step"] if steps else []) + ["Regimen", "Drug", "Dose", "Route", "Frequency", "Duration"]
    head += ["Encoder's assumption"] if assumptions else []
    return ('<table class="regimen"><thead><tr>' + "".join(f"<th>{_e(h)}</th>" for h in head) + "</tr></thead><tbody>"
            + "".join(rows) + "</tbody></table>")


def _conflict_sides(report) -> dict[str, list[dict]]:
    """Each conflict statement's sides: label, position and citing documents (from the ontology)."""
    q = """
    PREFIX b12: <https://w3id.org/b12kg/>
    PREFIX rdfs: <http://www.w3.org/2000/01/rdf-schema#>
    PREFIX dcterms: <http://purl.org/dc/terms/>
    SELECT DISTINCT ?id ?side ?label ?position ?docId ?title ?ref WHERE {
      ?st b12:side ?side ; dcterms:identifier ?id .
      OPTIONAL { ?side rdfs:label ?label }
      OPTIONAL { ?side b12:position ?position }
      OPTIONAL { ?side b12:citation ?c . ?c b12:document ?doc . ?doc dcterms:identifier ?docId ; dcterms:title ?title .
                 OPTIONAL { ?c b12:reference ?ref } }
    }"""
    sides: dict[str, dict[str, dict]] = {}
    for r in report.query(q):
        sid = r["id"].value
        key = str(r["side"])
        side = sides.setdefault(sid, {}).setdefault(key, {
            "label": r["label"].value if r["label"] is not None else "",
            "position": r["position"].value if r["position"] is not None else "",
            "documents": [],
        })
        if r["docId"] is not None:
            doc = (r["docId"].value, r["title"].value, r["ref"].value if r["ref"] is not None else "")
            if doc not in side["documents"]:
                side["documents"].append(doc)
    out = {}
    for sid, by in sides.items():
        lst = list(by.values())
        for s in lst:
            s["documents"].sort()
        lst.sort(key=lambda s: (s["documents"][0] if s["documents"] else ("",), s["label"]))
        out[sid] = lst
    return out


def _sides(sides) -> str:
    if not sides:
        return '<p class="empty">The sides of this conflict are not recorded.</p>'
    out = ['<div class="sides">']
    for i, s in enumerate(sides, 1):
        docs = "".join(
            f'<li><strong>{_e(doc_id)}</strong> <cite>{_e(title)}</cite>{f", ref {_e(ref)}" if ref else ""}</li>'
            for doc_id, title, ref in s["documents"]
        )
        out.append(f'<div class="side"><h5>Side {i}: {_e(s["label"])}</h5><p>{_e(s["position"])}</p>'
                   f'<p class="muted">Cited by:</p><ul>{docs}</ul></div>')
    out.append("</div>")
    return "".join(out)


# --------------------------------------------------------------------------------------------
# Inline SVG of a derivation graph
# --------------------------------------------------------------------------------------------

_CHAR_W = 6.9
_LINE_H = 15
_PAD = 8
_GAP_X = 16
_GAP_Y = 40
_MAX_CHARS = 30
_MAX_ROW = 1080


def _layers(g: nx.DiGraph) -> dict:
    """Longest-path layering: the patient's facts first, then each node one step after the last
    thing it was derived from; the item and its sources come last."""
    layer = {}
    if nx.is_directed_acyclic_graph(g):
        for node in nx.topological_sort(g):
            layer[node] = max((layer[p] + 1 for p in g.predecessors(node)), default=0)
    else:  # should not happen (PROV derivations are acyclic): fall back to the kind order
        for node, data in g.nodes(data=True):
            layer[node] = d.KINDS.index(data.get("kind", "fact"))
    return layer


def _svg_label(data: dict, node) -> str:
    kind = data.get("kind")
    if kind == "rule" and data.get("file"):
        base = data["file"].rsplit("/", 1)[-1]
        return f"rule: {base}" + (f"\nshape {data['rule_id']}" if "\nshape" in data.get("label", "") else "")
    if kind == "source":
        ref = f" · ref {data['reference']}" if data.get("reference") else ""
        return f"source {data.get('document_id', '')}{ref}\n{data.get('document', '')}"
    return data.get("label", str(node))


def _wrap_label(label: str) -> list[str]:
    lines = []
    for part in label.split("\n"):
        lines += textwrap.wrap(part, _MAX_CHARS, break_long_words=True, break_on_hyphens=False) or [""]
    if len(lines) > 8:
        lines = lines[:7] + ["…"]
    return lines


def svg_graph(g: nx.DiGraph, uid: str = "g") -> str:
    """The graph as an SVG string, layered top to bottom: the patient's facts at the top, then
    inferred classes, rules and derived states, and the item with its sources at the bottom."""
    uid = re.sub(r"[^A-Za-z0-9_-]", "-", uid)
    if g.number_of_nodes() == 0:
        return ""
    layer = _layers(g)
    rows: dict[int, list] = {}
    for node in g.nodes:
        rows.setdefault(layer[node], []).append(node)
    for r in rows.values():
        r.sort(key=lambda n: (d.KINDS.index(g.nodes[n].get("kind", "fact")), g.nodes[n].get("label", "")))
    order = sorted(rows)
    # barycentre sweeps (down, then up) to reduce crossings
    pos = {n: i / max(1, len(r)) for r in rows.values() for i, n in enumerate(r)}
    for _ in range(4):
        for neighbours, seq in ((g.predecessors, order), (g.successors, list(reversed(order)))):
            for row in seq:
                def bary(n, neighbours=neighbours):
                    nb = [pos[m] for m in neighbours(n)]
                    return sum(nb) / len(nb) if nb else pos[n]
                rows[row].sort(key=bary)
                for i, n in enumerate(rows[row]):
                    pos[n] = i / max(1, len(rows[row]))
    size = {}
    for n, data in g.nodes(data=True):
        lines = _wrap_label(_svg_label(data, n))
        w = max(len(x) for x in lines) * _CHAR_W + 2 * _PAD
        size[n] = (max(80.0, w), len(lines) * _LINE_H + 2 * _PAD - 3, lines)
    # a layer wider than the page folds onto several visual rows
    visual: list[list] = []
    for r in order:
        chunk, width = [], 0.0
        for n in rows[r]:
            w = size[n][0]
            if chunk and width + w > _MAX_ROW:
                visual.append(chunk)
                chunk, width = [], 0.0
            chunk.append(n)
            width += w + _GAP_X
        visual.append(chunk)
    row_w = [sum(size[n][0] for n in v) + _GAP_X * (len(v) - 1) for v in visual]
    width = max(row_w) + 20
    xy = {}
    y = 10.0
    for v, rw in zip(visual, row_w):
        x = 10 + (width - 20 - rw) / 2
        h_row = max(size[n][1] for n in v)
        for n in v:
            w, h, _lines = size[n]
            xy[n] = (x, y + (h_row - h) / 2)
            x += w + _GAP_X
        y += h_row + _GAP_Y
    height = y - _GAP_Y + 10
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" width="{width:.0f}" height="{height:.0f}" '
        f'viewBox="0 0 {width:.0f} {height:.0f}" font-family="system-ui, Helvetica, Arial, sans-serif" font-size="11.5">',
        f"<title>Derivation of {_e(g.graph.get('item', ''))} for {_e(g.graph.get('patient', ''))}</title>",
        f'<defs><marker id="{uid}-arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse">'
        '<path d="M 0 0 L 10 5 L 0 10 z" fill="#6b7280"/></marker></defs>',
    ]
    for a, b, data in sorted(g.edges(data=True), key=lambda e: (str(e[0]), str(e[1]))):
        ax, ay = xy[a]
        bx, by = xy[b]
        aw, ah, _ = size[a]
        bw, _bh, _ = size[b]
        x1, y1 = ax + aw / 2, ay + ah
        x2, y2 = bx + bw / 2, by
        if y2 <= y1:  # same visual row (a folded layer): go round below
            y2 = by + _bh
        dy = max(18.0, abs(y2 - y1) / 2)
        rel = data.get("relation", "")
        out.append(f'<path d="M {x1:.1f} {y1:.1f} C {x1:.1f} {y1 + dy:.1f}, {x2:.1f} {y2 - dy:.1f}, {x2:.1f} {y2:.1f}" '
                   f'fill="none" stroke="#9ca3af" stroke-width="1.3" marker-end="url(#{uid}-arrow)"><title>{_e(rel)}</title></path>')
    for n, data in sorted(g.nodes(data=True), key=lambda x: str(x[0])):
        kind = data.get("kind", "fact")
        fill, stroke, _t = _KIND_STYLE.get(kind, ("#fff", "#333", ""))
        if data.get("item_kind") == "violation" or data.get("satisfied") is False:
            fill, stroke = "#fee2e2", "#b91c1c"
        x0, y0 = xy[n]
        w, h, lines = size[n]
        bold = ' font-weight="700"' if kind in ("item", "fact") else ""
        out.append(f'<g class="node k-{_e(kind)}"><title>{_e(kind)}: {_e(data.get("iri", n))}</title>'
                   f'<rect x="{x0:.1f}" y="{y0:.1f}" width="{w:.1f}" height="{h:.1f}" rx="6" fill="{fill}" stroke="{stroke}" stroke-width="1.2"/>')
        for i, line in enumerate(lines):
            weight = bold if i == 0 else ""
            out.append(f'<text x="{x0 + _PAD:.1f}" y="{y0 + _PAD + 11 + i * _LINE_H:.1f}" fill="#111827"{weight}>{_e(line)}</text>')
        out.append("</g>")
    out.append("</svg>")
    return "".join(out)
