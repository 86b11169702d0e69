"""The append-only, hash-chained audit trail.

Each entry's hash covers its own fields and the previous entry's hash, and a one-row
head records the last sequence number and hash. Editing an entry breaks its hash;
removing one breaks the chain (or the head, when it was the last); both are reported
by :func:`verify`. Appends happen inside the writer's transaction, after it locked
the head row, so the chain stays linear under concurrent writers.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from sqlalchemy import Table, select
from sqlalchemy.orm import Session

from satchel.registry.entities import AuditEntry, AuditReport
from satchel.registry.tables import AuditHeadRow, AuditRow

GENESIS = "0" * 64


def entry_hash(
    seq: int,
    at: int,
    actor: str,
    action: str,
    model: str,
    version: int | None,
    detail: str,
    prev_hash: str,
) -> str:
    """sha256 of the canonical JSON of an entry's fields and the previous hash."""
    payload = json.dumps(
        [seq, at, actor, action, model, version, detail, prev_hash],
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def lock_head(session: Session) -> AuditHeadRow:
    """Lock the chain head for this transaction (``SELECT ... FOR UPDATE``; SQLite's
    ``BEGIN IMMEDIATE`` already holds the write lock)."""
    head = session.execute(
        select(AuditHeadRow).where(AuditHeadRow.id == 1).with_for_update()
    ).scalar_one()
    return head


def append(
    session: Session,
    head: AuditHeadRow,
    *,
    at: int,
    actor: str,
    action: str,
    model: str,
    version: int | None,
    before: Any,
    after: Any,
) -> AuditRow:
    """Append one entry after ``head`` (locked by :func:`lock_head`) and advance it."""
    detail = json.dumps({"before": before, "after": after}, sort_keys=True, default=str)
    seq = head.seq + 1
    digest = entry_hash(seq, at, actor, action, model, version, detail, head.hash)
    row = AuditRow(
        seq=seq,
        at=at,
        actor=actor,
        action=action,
        model=model,
        version=version,
        detail=detail,
        prev_hash=head.hash,
        hash=digest,
    )
    session.add(row)
    head.seq = seq
    head.hash = digest
    return row


def to_entry(row: Any) -> AuditEntry:
    """An :class:`AuditEntry` from a row (ORM object or Core row)."""
    try:
        detail = json.loads(row.detail)
    except ValueError:
        detail = {"before": None, "after": None}
    return AuditEntry(
        seq=row.seq,
        at=row.at,
        actor=row.actor,
        action=row.action,
        model=row.model,
        version=row.version,
        before=detail.get("before"),
        after=detail.get("after"),
        prev_hash=row.prev_hash,
        hash=row.hash,
    )


Span = tuple[str, int | None, int | None]


def names_of(session: Any, model: str) -> list[Span]:
    """The names ``model`` had: ``(name, first seq, end seq)`` spans of its entries.

    A rename's entry is recorded under the new name; the entries before it, under the
    old name, belong to the same model. A model that took a name freed by a rename is
    another model: its span starts after that rename. ``None``: no bound.
    """
    table: Table = AuditRow.__table__  # type: ignore[assignment]
    renames: list[tuple[int, str, str]] = []
    for seq, new, detail in session.execute(
        select(table.c.seq, table.c.model, table.c.detail)
        .where(table.c.action == "rename_model")
    ):
        try:
            old = (json.loads(detail).get("before") or {}).get("name")
        except (ValueError, AttributeError):
            continue
        if isinstance(old, str):
            renames.append((seq, new, old))
    spans: list[Span] = []
    current, end = model, None
    while len(spans) <= len(renames):
        before_end = [r for r in renames if end is None or r[0] < end]
        into = max((r for r in before_end if r[1] == current), default=None)
        away = max((r[0] for r in before_end if r[2] == current), default=None)
        if into is None or (away is not None and away > into[0]):
            spans.append((current, None if away is None else away + 1, end))
            break
        spans.append((current, into[0], end))
        current, end = into[2], into[0]
    return spans


def _of_model(table: Table, spans: list[Span]) -> Any:
    from sqlalchemy import and_, or_

    clauses = []
    for name, first, end in spans:
        parts = [table.c.model == name]
        if first is not None:
            parts.append(table.c.seq >= first)
        if end is not None:
            parts.append(table.c.seq < end)
        clauses.append(and_(*parts))
    return or_(*clauses)


def _in_spans(row: Any, spans: list[Span]) -> bool:
    return any(row.model == name and (first is None or row.seq >= first)
               and (end is None or row.seq < end) for name, first, end in spans)


def entries(session: Any, model: str | None, limit: int | None = None) -> list[AuditEntry]:
    """Entries for ``model`` (all when None), oldest first; ``limit`` keeps the newest.
    A renamed model's entries include those written under its earlier names."""
    table: Table = AuditRow.__table__  # type: ignore[assignment]
    query = select(table)
    if model is not None:
        query = query.where(_of_model(table, names_of(session, model)))
    if limit is not None:
        query = query.order_by(table.c.seq.desc()).limit(limit)
        rows = list(session.execute(query))[::-1]
    else:
        rows = list(session.execute(query.order_by(table.c.seq)))
    return [to_entry(r) for r in rows]


def verify(session: Any, model: str | None = None) -> AuditReport:
    """Walk the whole chain; report every edited, removed or reordered entry.

    The chain is global (one order of all changes), so an entry removed anywhere is a
    problem for every model; ``model`` only selects which entries are counted.
    """
    table: Table = AuditRow.__table__  # type: ignore[assignment]
    problems: list[str] = []
    spans = names_of(session, model) if model is not None else []
    prev = GENESIS
    expected_seq = 1
    counted = 0
    for row in session.execute(select(table).order_by(table.c.seq)).all():
        if model is None or _in_spans(row, spans):
            counted += 1
        if row.seq != expected_seq:
            problems.append(
                f"entries {expected_seq}..{row.seq - 1} are missing (removed from the database)"
                if row.seq > expected_seq
                else f"entry {row.seq} is out of order"
            )
        if row.prev_hash != prev:
            problems.append(
                f"entry {row.seq} ({row.action} on {row.model!r}) does not link to the entry "
                "before it: an entry was removed or changed"
            )
        digest = entry_hash(
            row.seq, row.at, row.actor, row.action, row.model, row.version, row.detail,
            row.prev_hash,
        )
        if digest != row.hash:
            problems.append(
                f"entry {row.seq} ({row.action} on {row.model!r}) was changed after it was "
                "written (its hash does not match its contents)"
            )
        prev = row.hash
        expected_seq = row.seq + 1
    head = session.execute(select(AuditHeadRow.__table__).where(
        AuditHeadRow.__table__.c.id == 1)).first()
    if head is None:
        problems.append("the audit head row is missing")
    elif head.seq != expected_seq - 1 or head.hash != prev:
        problems.append(
            f"the chain ends at entry {expected_seq - 1} but its head records entry "
            f"{head.seq}: entries were removed from the end, or the head was edited"
        )
    return AuditReport(ok=not problems, entries=counted, problems=tuple(problems))
