"""Figures as inline SVG, drawn with matplotlib's SVG backend (no display, no pyplot state).

Each SVG's element ids get a unique prefix, so several figures inline in one page never
share an id (matplotlib names clip paths and markers by content). Text stays text
(``svg.fonttype: none``), so a figure is searchable and small.
"""

from __future__ import annotations

import io
import itertools
import re
from collections.abc import Sequence
from typing import Any

from satchel.errors import MissingDependencyError
from satchel.report.html import Markup

_COUNTER = itertools.count()
_ID = re.compile(r'id="([^"]+)"')
PALETTE = ["#1f5fbf", "#d9822b", "#2e9e5b", "#b8336a", "#7a5cc2", "#8c6d31", "#3aa6b9",
           "#5a6472"]


def new_figure(width: float = 4.6, height: float = 3.4) -> Any:
    """A matplotlib Figure not registered with pyplot (so nothing global is touched)."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise MissingDependencyError(
            "the HTML report needs matplotlib: pip install 'satchel[report]'") from None

    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def to_svg(fig: Any) -> Markup:
    """The figure as an ``<svg>`` element (no XML prolog), ids made unique in the page."""
    import matplotlib
    from matplotlib.backends.backend_svg import FigureCanvasSVG

    buf = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "satchel"}):
        FigureCanvasSVG(fig).print_svg(buf)  # type: ignore[no-untyped-call]
    text = buf.getvalue()
    text = text[text.index("<svg"):]
    prefix = f"f{next(_COUNTER)}-"
    for old in set(_ID.findall(text)):
        text = text.replace(f'id="{old}"', f'id="{prefix}{old}"')
        text = text.replace(f"#{old})", f"#{prefix}{old})").replace(
            f'href="#{old}"', f'href="#{prefix}{old}"')
    return Markup(text)


def lines(series: Sequence[tuple[str, Sequence[float], Sequence[float]]], *, title: str,
          xlabel: str, ylabel: str, diagonal: bool = False, markers: bool = False) -> Markup:
    """Line chart of (label, x, y) series, optionally with the y = x reference line."""
    fig = new_figure()
    ax = fig.add_subplot()
    for (label, x, y), color in zip(series, itertools.cycle(PALETTE)):
        ax.plot(x, y, label=label, color=color, linewidth=1.6, marker="o" if markers else None,
                markersize=3)
    if diagonal:
        ax.plot([0, 1], [0, 1], linestyle="--", color="#9aa3b0", linewidth=1)
    _style(ax, title, xlabel, ylabel)
    if len(series) > 1 or (series and series[0][0]):
        ax.legend(fontsize=8, frameon=False)
    return to_svg(fig)


def scatter(x: Sequence[float], y: Sequence[float], *, title: str, xlabel: str, ylabel: str,
            hline: float | None = None, diagonal: bool = False) -> Markup:
    """Scatter plot (residuals, actual against predicted)."""
    fig = new_figure()
    ax = fig.add_subplot()
    ax.scatter(x, y, s=6, alpha=0.5, color=PALETTE[0], linewidths=0)
    if hline is not None:
        ax.axhline(hline, color="#9aa3b0", linestyle="--", linewidth=1)
    if diagonal and len(x):
        lo, hi = min(min(x), min(y)), max(max(x), max(y))
        ax.plot([lo, hi], [lo, hi], color="#9aa3b0", linestyle="--", linewidth=1)
    _style(ax, title, xlabel, ylabel)
    return to_svg(fig)


def heatmap(matrix: Sequence[Sequence[float]], labels: Sequence[str], *, title: str,
            xlabel: str, ylabel: str) -> Markup:
    """A matrix with its counts written in the cells (a confusion matrix)."""
    import numpy as np

    m = np.asarray(matrix, dtype=float)
    size = min(2.6 + 0.45 * len(labels), 9.0)
    fig = new_figure(size + 1, size)
    ax = fig.add_subplot()
    ax.imshow(m, cmap="Blues")
    ax.set_xticks(range(len(labels)), [str(v) for v in labels], rotation=45, ha="right",
                  fontsize=8)
    ax.set_yticks(range(len(labels)), [str(v) for v in labels], fontsize=8)
    top = m.max() if m.size else 0
    if len(labels) <= 20:
        for (i, j), v in np.ndenumerate(m):
            ax.text(j, i, f"{int(v)}", ha="center", va="center", fontsize=8,
                    color="white" if top and v > top / 2 else "#1d2430")
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(xlabel, fontsize=9)
    ax.set_ylabel(ylabel, fontsize=9)
    return to_svg(fig)


def bars(labels: Sequence[str], values: Sequence[float], *, title: str, ylabel: str,
         reference: float | None = None) -> Markup:
    """A bar chart (a metric per slice), with an optional reference line (the overall)."""
    fig = new_figure(max(3.6, 0.5 * len(labels) + 2), 3.2)
    ax = fig.add_subplot()
    ax.bar(range(len(labels)), values, color=PALETTE[0])
    ax.set_xticks(range(len(labels)), [str(v) for v in labels], rotation=30, ha="right",
                  fontsize=8)
    if reference is not None:
        ax.axhline(reference, color=PALETTE[1], linestyle="--", linewidth=1, label="overall")
        ax.legend(fontsize=8, frameon=False)
    _style(ax, title, "", ylabel)
    return to_svg(fig)


def _style(ax: Any, title: str, xlabel: str, ylabel: str) -> None:
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(xlabel, fontsize=9)
    ax.set_ylabel(ylabel, fontsize=9)
    ax.tick_params(labelsize=8)
    ax.grid(True, color="#e6e9ef", linewidth=0.6)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
