"""The audit trail: every change recorded once, hash-chained, tampering detected by
editing the database behind the registry's back."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa


def _changes(registry: Any, model_dir: Path) -> None:
    registry.register(model_dir, "m", tags={"k": "v"})
    registry.register(model_dir, "m")
    registry.set_alias("m", "champion", 1)
    registry.set_alias("m", "champion", 2)
    registry.set_alias("m", "champion", 2)  # no change: not recorded
    registry.set_stage("m", 1, "Production")
    registry.set_model_tag("m", "team", "risk")
    registry.set_version_tag("m", 1, "q", "ok")
    registry.set_model_description("m", "desc")
    registry.set_version_description("m", 2, "v2")
    registry.delete_alias("m", "champion")
    registry.delete_version("m", 1)


def test_every_change_is_recorded_with_before_and_after(registry: Any,
                                                        iris_model_dir: Path) -> None:
    _changes(registry, iris_model_dir)
    entries = registry.audit("m")
    assert [e.action for e in entries] == [
        "create_model", "register", "register", "set_alias", "set_alias", "set_stage",
        "set_model_tag", "set_version_tag", "set_model_description",
        "set_version_description", "delete_alias", "delete_version",
    ]
    assert all(e.actor == "alice" for e in entries)
    moved = entries[4]
    assert (moved.before, moved.after, moved.version) == ({"champion": 1}, {"champion": 2}, 2)
    assert (entries[5].before, entries[5].after) == ("None", "Production")
    assert entries[-1].before["digest"] and entries[-1].after is None
    assert [e.seq for e in entries] == list(range(1, 13))
    assert all(b.prev_hash == a.hash for a, b in zip(entries, entries[1:]))
    assert registry.with_actor("bob").verify_audit("m").ok
    registry.with_actor("bob").set_alias("m", "champion", 2)
    assert registry.audit("m", limit=1)[0].actor == "bob"


def _engine(db_url: str) -> Any:
    if db_url.startswith("postgresql://"):
        db_url = "postgresql+psycopg://" + db_url.split("://", 1)[1]
    return sa.create_engine(db_url)


@pytest.mark.parametrize("tamper", ["edit_after", "edit_actor", "delete_middle",
                                    "delete_last", "rehash_one"])
def test_verify_detects_database_edits(registry: Any, iris_model_dir: Path, db_url: str,
                                       tamper: str) -> None:
    _changes(registry, iris_model_dir)
    assert registry.verify_audit("m").ok
    engine = _engine(db_url)
    with engine.begin() as conn:
        if tamper == "edit_after":
            conn.execute(sa.text(
                "UPDATE registry_audit SET detail = replace(detail, '\"champion\": 2', "
                "'\"champion\": 1') WHERE seq = 5"))
        elif tamper == "edit_actor":
            conn.execute(sa.text("UPDATE registry_audit SET actor = 'mallory' WHERE seq = 4"))
        elif tamper == "delete_middle":
            conn.execute(sa.text("DELETE FROM registry_audit WHERE seq = 6"))
        elif tamper == "delete_last":
            conn.execute(sa.text("DELETE FROM registry_audit WHERE seq = 12"))
        else:
            # Recompute the edited entry's own hash: the next entry's link still breaks.
            from satchel.registry.audit import entry_hash

            row = conn.execute(sa.text("SELECT * FROM registry_audit WHERE seq = 3")).one()
            new = entry_hash(row.seq, row.at, "mallory", row.action, row.model, row.version,
                             row.detail, row.prev_hash)
            conn.execute(sa.text("UPDATE registry_audit SET actor='mallory', hash=:h "
                                 "WHERE seq = 3"), {"h": new})
    engine.dispose()
    report = registry.verify_audit("m")
    assert not report.ok
    text = " ".join(report.problems)
    expected = {"edit_after": "entry 5", "edit_actor": "entry 4",
                "delete_middle": "entries 6..6 are missing", "delete_last": "head records",
                "rehash_one": "entry 4"}[tamper]
    assert expected in text, report.problems


def test_cli_audit_verify_exit_code(registry: Any, iris_model_dir: Path, db_url: str) -> None:
    _changes(registry, iris_model_dir)
    cmd = [sys.executable, "-m", "satchel", "registry", "audit", "m", "--verify",
           "--registry-uri", db_url]
    ok = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0 and "audit chain ok (12 entries)" in ok.stdout
    engine = _engine(db_url)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE registry_audit SET actor = 'mallory' WHERE seq = 2"))
    engine.dispose()
    bad = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 1 and "BROKEN" in bad.stdout and "entry 2" in bad.stdout


def test_concurrent_alias_moves_end_consistent_and_all_audited(
    db_url: str, tmp_path: Path, iris_model_dir: Path
) -> None:
    from satchel.registry import Registry

    reg = Registry(db_url, actor="setup", artifact_root=tmp_path / "art")
    for _ in range(2):
        reg.register(iris_model_dir, "m")
    reg.set_alias("m", "champion", 1)
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def mover(actor: str, target: int) -> None:
        r = reg.with_actor(actor)
        try:
            barrier.wait()
            for i in range(10):
                r.set_alias("m", "champion", target if i % 2 == 0 else 3 - target)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=mover, args=("ed1", 2)),
               threading.Thread(target=mover, args=("ed2", 1))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    entries = [e for e in reg.audit("m") if e.action == "set_alias"][1:]
    assert {e.actor for e in entries} == {"ed1", "ed2"}
    # Each recorded move starts from where the previous one left the alias.
    state = 1
    for e in entries:
        assert e.before == {"champion": state}
        state = e.after["champion"]
    assert reg.get_model("m").aliases["champion"] == state
    assert reg.verify_audit().ok
