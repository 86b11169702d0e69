"""The drift report: one self-contained HTML file (inline SVG, no scripts, no CDN).

Figures are drawn with matplotlib's SVG backend through :mod:`satchel.report.svg` (the
evaluation report's building blocks: no pyplot state, ids unique in the page) and
inlined, so the file opens anywhere, including air-gapped machines and CI artifacts.
"""

from __future__ import annotations

import datetime as _dt
import html
from collections.abc import Sequence
from typing import Any

import numpy as np

from satchel.monitoring.drift import DriftFigures
from satchel.monitoring.profile import NUMERIC, ColumnProfile
from satchel.monitoring.tally import Tally

_CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:1100px;color:#1d1d1f}
h1{font-size:1.6rem}h2{margin-top:2rem;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.5rem 0}td,th{padding:.3rem .7rem;border:1px solid #ddd;
text-align:right}th{background:#f5f5f7}td.name{text-align:left;font-family:monospace}
tr.over td{background:#fde8e8}.ok{color:#1b7f3b}.bad{color:#b3261e;font-weight:600}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(330px,1fr));gap:1rem}
figure{margin:0;border:1px solid #eee;padding:.4rem}figcaption{font-family:monospace}
.note{color:#555}
"""


def render(tally: Tally, *, title: str, threshold: float, source: str) -> str:
    """The report as an HTML string."""
    ins, outs = tally.figures()
    rows = [*((f, False) for f in ins), *((f, True) for f in outs)]
    ranked = sorted(rows, key=lambda r: -(r[0].psi or 0.0))
    moved = [f.column for f, _ in ranked if f.psi is not None and f.psi > threshold]
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f"<p class='note'>Data: {html.escape(source)} &middot; generated "
        f"{_dt.datetime.now(_dt.UTC).strftime('%Y-%m-%d %H:%M UTC')} &middot; "
        f"PSI threshold {threshold:g}</p>",
    ]
    if tally.profile is None:
        parts.append("<p class='bad' id='no-reference'>This model has no reference profile: "
                     "only raw distributions are shown. Save it with reference_data= or run "
                     "<code>satchel profile</code> to measure drift.</p>")
    else:
        verdict = (f"<span class='bad'>{len(moved)} column(s) over the threshold: "
                   f"{html.escape(', '.join(moved))}</span>" if moved
                   else "<span class='ok'>no column over the threshold</span>")
        parts.append(f"<p id='verdict'>{verdict}</p>")
        parts.append("<h2>Drift by column</h2>")
        parts.append(_table(ranked, threshold))
        parts.append("<h2>Distributions</h2><div class='grid'>")
        profile = tally.profile
        for f, output in ranked:
            ref = profile.column(f.column, output=output)
            counts = (tally.outputs if output else tally.inputs).get(f.column)
            if ref is None:
                continue
            current = counts.bins if counts is not None else np.zeros(ref.bins)
            parts.append(f"<figure><figcaption>{'output ' if output else ''}"
                         f"{html.escape(f.column)}</figcaption>{_histogram(ref, current)}</figure>")
        parts.append("</div>")
    raw = tally.report()
    if raw["raw_inputs"] or raw["raw_outputs"]:
        parts.append("<h2>Columns without a reference</h2>")
        parts.append(_raw_table(raw["raw_inputs"] + raw["raw_outputs"]))
    parts.append("</body></html>")
    return "\n".join(parts)


def _fmt(v: float | None, digits: int = 4) -> str:
    return "&ndash;" if v is None else f"{v:.{digits}f}"


def _table(rows: Sequence[tuple[DriftFigures, bool]], threshold: float) -> str:
    head = ("<table id='drift'><tr><th>column</th><th>side</th><th>rows</th><th>PSI</th>"
            "<th>JS distance</th><th>null rate</th><th>reference null rate</th>"
            "<th>out of range</th></tr>")
    body = []
    for f, output in rows:
        over = f.psi is not None and f.psi > threshold
        body.append(
            f"<tr class='{'over' if over else ''}'><td class='name'>{html.escape(f.column)}</td>"
            f"<td>{'output' if output else 'input'}</td><td>{f.count:,.0f}</td>"
            f"<td>{_fmt(f.psi)}</td><td>{_fmt(f.js_distance)}</td><td>{_fmt(f.null_rate)}</td>"
            f"<td>{_fmt(f.reference_null_rate)}</td><td>{_fmt(f.out_of_range_rate)}</td></tr>")
    return head + "".join(body) + "</table>"


def _raw_table(rows: list[dict[str, Any]]) -> str:
    head = ("<table id='raw'><tr><th>column</th><th>rows</th><th>null rate</th><th>min</th>"
            "<th>max</th><th>mean</th></tr>")
    body = "".join(
        f"<tr><td class='name'>{html.escape(str(r['column']))}</td><td>{r['count']:,.0f}</td>"
        f"<td>{_fmt(r['null_rate'])}</td><td>{_fmt(r['minimum'])}</td>"
        f"<td>{_fmt(r['maximum'])}</td><td>{_fmt(r['mean'])}</td></tr>" for r in rows)
    return head + body + "</table>"


def _labels(ref: ColumnProfile) -> list[str]:
    if ref.kind != NUMERIC:
        return [*ref.categories, "(other)"]
    edges = [f"{e:.3g}" for e in ref.edges]
    if not edges:
        return ["all"]
    return [f"≤{edges[0]}", *(f"≤{e}" for e in edges[1:]), f">{edges[-1]}"]


def _histogram(ref: ColumnProfile, current: np.ndarray) -> str:
    from satchel.report.svg import new_figure, to_svg

    cur = np.asarray(current, dtype=np.float64)
    cur = cur / cur.sum() if cur.sum() > 0 else cur
    x = np.arange(ref.bins)
    fig = new_figure(4.2, 2.6)
    ax = fig.add_subplot()
    ax.bar(x - 0.2, ref.frequencies, width=0.4, label="reference", color="#8e8e93")
    ax.bar(x + 0.2, cur, width=0.4, label="current", color="#0a84ff")
    ax.set_xticks(x, _labels(ref), rotation=45, ha="right", fontsize=7)
    ax.set_ylabel("share of rows", fontsize=8)
    ax.legend(fontsize=7)
    return str(to_svg(fig))
