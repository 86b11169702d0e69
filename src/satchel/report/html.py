"""HTML pieces: escaped text, tables, key-value lists, badges and one whole page.

Every function returns a :class:`Markup` (HTML known to be safe); plain ``str`` given to
any of them is escaped, so a value from data or a model's metadata can never inject
markup into a report.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from typing import Any


class Markup(str):
    """Text that is already HTML (not escaped again)."""


def esc(value: Any) -> Markup:
    """``value`` as HTML: Markup passes through, anything else is escaped text."""
    if isinstance(value, Markup):
        return value
    return Markup(html.escape("" if value is None else str(value), quote=True))


def tag(name: str, *children: Any, **attrs: Any) -> Markup:
    """``<name attrs>children</name>``; ``class_`` sets ``class``; None attributes are left out."""
    text = "".join(f' {k.rstrip("_").replace("_", "-")}="{esc(v)}"'
                   for k, v in attrs.items() if v is not None)
    return Markup(f"<{name}{text}>" + "".join(esc(c) for c in children) + f"</{name}>")


def join(parts: Iterable[Any]) -> Markup:
    return Markup("".join(esc(p) for p in parts))


def table(headers: Sequence[Any], rows: Iterable[Sequence[Any]], *,
          caption: str | None = None, class_: str | None = None) -> Markup:
    """A table; numbers are right-aligned (class ``num``)."""
    head = tag("tr", *[tag("th", h) for h in headers])
    body = join(tag("tr", *[tag("td", c, class_="num" if _numeric(c) else None) for c in row])
                for row in rows)
    return tag("table", tag("caption", caption) if caption else "", tag("thead", head),
               tag("tbody", body), class_=class_)


def keyvalues(items: Iterable[tuple[Any, Any]]) -> Markup:
    """A definition list of label/value pairs."""
    return tag("dl", join(join((tag("dt", k), tag("dd", v))) for k, v in items))


def badge(text: str, ok: bool | None) -> Markup:
    """A coloured word: green for True, red for False, grey for None."""
    kind = "neutral" if ok is None else ("ok" if ok else "bad")
    return tag("span", text, class_=f"badge {kind}")


def section(title: str, *body: Any, id_: str | None = None) -> Markup:
    return tag("section", tag("h2", title), *body, id=id_)


def figure(svg: Markup, caption: str) -> Markup:
    return tag("figure", svg, tag("figcaption", caption))


def fmt(value: Any, digits: int = 4) -> str:
    """A number for a table: 4 significant digits, blank for NaN/None."""
    if value is None:
        return ""
    if isinstance(value, float):
        if value != value:
            return "–"
        return f"{value:.{digits}g}"
    return str(value)


CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1d2430;
background:#f6f7f9}
header{background:#1d2430;color:#fff;padding:18px 28px}header h1{margin:0;font-size:20px}
header p{margin:4px 0 0;color:#c9d1dd}main{padding:12px 28px 40px;max-width:1200px}
section{background:#fff;border:1px solid #dde2ea;border-radius:6px;padding:14px 18px;margin:14px 0}
h2{font-size:16px;margin:0 0 10px}table{border-collapse:collapse;margin:6px 0 10px;font-size:13px}
th,td{border-bottom:1px solid #e6e9ef;padding:4px 10px;text-align:left;vertical-align:top}
th{background:#f0f2f6}td.num{text-align:right;font-variant-numeric:tabular-nums}
caption{text-align:left;font-weight:600;padding:4px 0}dl{display:grid;
grid-template-columns:max-content 1fr;gap:4px 14px;margin:0}dt{color:#5a6472}dd{margin:0;
word-break:break-word}.badge{display:inline-block;padding:1px 8px;border-radius:10px;
font-size:12px;font-weight:600}.ok{background:#d8f3e0;color:#17663a}.bad{background:#fde2e1;
color:#9b1c1c}.neutral{background:#e8ebf0;color:#4a5361}figure{display:inline-block;
margin:6px 12px 6px 0;vertical-align:top}figcaption{font-size:12px;color:#5a6472}
figure svg{max-width:100%;height:auto}pre{background:#f0f2f6;padding:8px;overflow:auto;
font-size:12px}nav a{margin-right:12px}a{color:#1f5fbf}form.inline{display:inline}
input,button,textarea{font:inherit}button{cursor:pointer}
"""


def page(title: str, subtitle: str, *body: Any, nav: Markup | None = None,
         extra_css: str = "") -> str:
    """A whole HTML document with the report's inline stylesheet (no external resource)."""
    head = tag("head", Markup('<meta charset="utf-8">'),
               Markup('<meta name="viewport" content="width=device-width, initial-scale=1">'),
               tag("title", title), tag("style", Markup(CSS + extra_css)))
    top = tag("header", tag("h1", title), tag("p", subtitle), nav or "")
    return "<!DOCTYPE html>\n" + tag("html", head, tag("body", top, tag("main", *body)),
                                     lang="en")


def _numeric(value: Any) -> bool:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return True
    if isinstance(value, str) and not isinstance(value, Markup):
        try:
            float(value.replace("–", "nan"))
            return True
        except ValueError:
            return False
    return False
