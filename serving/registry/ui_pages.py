"""The registry web UI's pages, rendered on the server from the store (no script, no CDN):
built from :mod:`satchel.report.html`, the same blocks as the evaluation report. Every
value from the registry is escaped by those blocks."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from satchel.report.html import Markup, badge, esc, fmt, join, keyvalues, page, section, table, tag

EXTRA_CSS = """
.login{max-width:420px}.login input{width:100%;padding:6px;margin:6px 0 10px}
.decide textarea{width:100%;min-height:2.4em}.muted{color:#5a6472}
button.approve{background:#17663a;color:#fff;border:0;padding:4px 12px;border-radius:4px}
button.reject{background:#9b1c1c;color:#fff;border:0;padding:4px 12px;border-radius:4px}
header nav a{color:#c9d1dd}
"""


def when(ms: int | None) -> str:
    if not ms:
        return ""
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _nav(identity: Any) -> Markup:
    return tag("nav", tag("a", "Models", href="/"),
               tag("span", f"signed in as {identity.name} ({identity.role})", class_="muted"),
               tag("a", "Sign out", href="/logout"))


def login(message: str | None = None) -> str:
    form = tag("form", tag("label", "Token", for_="token"),
               Markup('<input id="token" name="token" type="password" autocomplete="off" '
                      'required>'),
               tag("button", "Sign in", type="submit"), method="post", action="/login",
               class_="login")
    body = [section("Sign in", tag("p", message, class_="bad") if message else "", form,
                    id_="login")]
    return page("satchel registry", "Sign in with your registry token", *body,
                extra_css=EXTRA_CSS)


def models(identity: Any, items: list[Any]) -> str:
    rows = [(tag("a", m.name, href=f"/models/{quote(m.name, safe='')}"), m.versions,
             m.latest_version or "", ", ".join(f"{a} → {v}" for a, v in sorted(m.aliases.items())),
             m.description) for m in items]
    body = section("Registered models", table(["model", "versions", "latest", "aliases",
                                               "description"], rows, class_="models")
                   if rows else tag("p", "No registered models yet."), id_="models")
    return page("satchel registry", f"{len(items)} registered models", body,
                nav=_nav(identity), extra_css=EXTRA_CSS)


def model(identity: Any, m: Any, versions: list[Any], policy: Any, requests: list[Any],
          evaluations: dict[int, list[tuple[int, Any]]], audit: list[Any], verified: Any,
          can_decide: bool, message: str | None) -> str:
    name = quote(m.name, safe="")
    parts: list[Markup] = []
    if message:
        parts.append(section("Notice", tag("p", message), id_="notice"))
    parts.append(section("Model", keyvalues([
        ("name", m.name), ("description", m.description or "–"),
        ("aliases", ", ".join(f"{a} → version {v}" for a, v in sorted(m.aliases.items()))
         or "none"),
        ("tags", ", ".join(f"{k}={v}" for k, v in sorted(m.tags.items())) or "none")]),
        id_="summary"))
    rows = []
    for v in versions:
        lineage = join(tag("div", f"{k}: {val}") for k, val in (
            ("source", v.source), ("model uuid", v.model_uuid), ("run", v.run_id),
            ("git commit", v.git_commit), ("training data", v.training_data_digest),
            *[(k, json.dumps(val) if not isinstance(val, str) else val)
              for k, val in sorted(v.metadata.items())]) if val)
        evals = join(tag("div", tag("a", f"evaluation {eid}"
                                    + (f" on {r.dataset.name}" if r.dataset.name else ""),
                                    href=f"/models/{name}/evaluations/{eid}"),
                         f" · {_headline(r)}") for eid, r in evaluations.get(v.version, []))
        rows.append((v.version, v.stage, ", ".join(v.aliases), v.created_by, when(v.created_at),
                     v.digest[:12], lineage, evals or "–"))
    parts.append(section("Versions", table(
        ["version", "stage", "aliases", "registered by", "at", "digest", "lineage",
         "evaluations"], rows, class_="versions"), id_="versions"))
    if policy is not None:
        parts.append(section("Promotion policy", tag("pre", policy.text), id_="policy"))
    parts.append(_requests(requests, name, can_decide))
    parts.append(_audit(audit, verified))
    return page(f"Model {m.name}", f"{len(versions)} versions", *parts, nav=_nav(identity),
                extra_css=EXTRA_CSS)


def _headline(r: Any) -> str:
    first = next(iter(r.metrics.values()), None)
    return f"{first.name} {fmt(first.value)}" if first is not None else r.task


def _requests(requests: list[Any], name: str, can_decide: bool) -> Markup:
    rows = []
    for r in requests:
        gates = join(tag("div", badge("pass" if g.passed else "fail", g.passed), f" {g.gate}: ",
                         g.detail) for g in r.gates) or "no gates"
        action: Any = r.decided_by and f"{r.state} by {r.decided_by}" + (
            f": {r.reason}" if r.reason else "") or ""
        if can_decide and r.state in ("pending", "gates_failed"):
            action = join([
                tag("form", tag("button", "Approve", type="submit", class_="approve"),
                    method="post", action=f"/requests/{r.id}/approve", class_="inline"),
                tag("form", Markup('<textarea name="reason" placeholder="reason" '
                                   'required></textarea>'),
                    tag("button", "Reject", type="submit", class_="reject"),
                    method="post", action=f"/requests/{r.id}/reject", class_="decide")])
        state_badge = badge(r.state, {"approved": True, "rejected": False,
                                      "gates_failed": False}.get(r.state))
        rows.append((r.id, f"{r.target_kind} {r.target} → version {r.version}",
                     r.holder or "–", r.requested_by, when(r.requested_at), state_badge,
                     gates, action))
    return section("Promotion requests", table(
        ["id", "move", "holder", "requested by", "at", "state", "gates", "decision"], rows,
        class_="requests") if rows else tag("p", "No requests."), id_="requests")


def _audit(entries: list[Any], verified: Any) -> Markup:
    status = badge(f"chain verified ({verified.entries} entries)" if verified.ok
                   else "chain BROKEN", verified.ok)
    problems = join(tag("li", p) for p in verified.problems)
    rows = [(e.seq, when(e.at), e.actor, e.action, "" if e.version is None else e.version,
             _short(e.before), _short(e.after)) for e in reversed(entries)]
    return section("Audit trail", tag("p", status), tag("ul", problems) if problems else "",
                   table(["#", "at", "who", "action", "version", "before", "after"], rows,
                         class_="audit"), id_="audit")


def _short(value: Any) -> str:
    text = json.dumps(value, default=str) if value is not None else ""
    return text if len(text) <= 160 else text[:157] + "..."


def error(identity: Any, status: int, message: str) -> str:
    return page("satchel registry", f"error {status}", section("Error", tag("p", message)),
                nav=_nav(identity) if identity is not None else None, extra_css=EXTRA_CSS)


__all__ = ["login", "models", "model", "error", "esc"]
