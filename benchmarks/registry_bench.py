"""Registry benchmarks (never run as tests): printed tables of medians.

1. ``load_model("models:/NAME@ALIAS")`` against ``load_model(DIR)`` of the same files,
   in one process (registry already opened, version already cached): the registry's
   overhead per load. Local SQLite registry and a registry server (HTTP + local cache).
2. Registry server reads (get version by alias, MLflow's REST route) with wrk: the
   server at --before=COMMIT against the current one (1 worker, and --workers 2), in
   paired rounds with the /health floor; req/s and CPU per request; SQLite, then
   PostgreSQL (a private Debian cluster) beside it.
3. A registry with 10,000 versions (100 models x 100 versions): list and search times on
   SQLite and PostgreSQL, the full listing paired with the bare driver's fetch of the
   same SELECT and with satchel at --before (on a copy of the database at its schema);
   then the registry server's MLflow search of all 10,000, cold (right after a write)
   and warm (the registry unchanged: the reply cache), beside the server at --before.

Usage: python benchmarks/registry_bench.py [--quick] [--only=resolve|server|scale]
       [--before=COMMIT]
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from loadgen import children, cpu_seconds, free_port, table  # noqa: E402

QUICK = "--quick" in sys.argv
ONLY = next((a.split("=", 1)[1] for a in sys.argv if a.startswith("--only=")), "")


def median_ms(fn: Callable[[], Any], n: int) -> float:
    fn()
    times = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def paired(fns: dict[str, Callable[[], Any]], n: int, rounds: int = 5) -> dict[str, float]:
    """Interleaved rounds so drift on a shared machine hits every variant alike."""
    out: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            out[name].append(median_ms(fn, n))
    return {k: statistics.median(v) for k, v in out.items()}


def iris_dir(root: Path) -> Path:
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    import satchel

    X, y = load_iris(return_X_y=True, as_frame=True)
    path = root / "iris"
    satchel.save_model(LogisticRegression(max_iter=500).fit(X, y), path,
                       input_example=X.head(3))
    return path


@contextmanager
def postgres() -> Iterator[str]:
    bindir = sorted(glob.glob("/usr/lib/postgresql/*/bin"))[-1]
    work = Path(tempfile.mkdtemp(prefix="satchel-pg-bench-"))
    pre = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    if os.geteuid() == 0:
        shutil.chown(work, "postgres", "postgres")
    port = free_port()
    subprocess.run([*pre, f"{bindir}/initdb", "-D", str(work / "d"), "-A", "trust", "-U",
                    "satchel", "--no-sync"], check=True, capture_output=True)
    subprocess.run([*pre, f"{bindir}/pg_ctl", "-D", str(work / "d"), "-o",
                    f"-k {work} -h 127.0.0.1 -p {port}", "-l", str(work / "log"), "-w",
                    "start"], check=True, capture_output=True)
    try:
        import psycopg

        with psycopg.connect(f"postgresql://satchel@127.0.0.1:{port}/postgres",
                             autocommit=True) as conn:
            conn.execute("CREATE DATABASE bench")
        yield f"postgresql://satchel@127.0.0.1:{port}/bench"
    finally:
        subprocess.run([*pre, f"{bindir}/pg_ctl", "-D", str(work / "d"), "-m", "immediate",
                        "stop"], capture_output=True)
        shutil.rmtree(work, ignore_errors=True)


def start_registry_server(db: str, root: Path, *extra: str, pythonpath: str | None = None
                          ) -> tuple[subprocess.Popen[bytes], int]:
    import urllib.request

    port = free_port()
    env = dict(os.environ)
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    proc = subprocess.Popen([sys.executable, "-m", "satchel", "registry", "serve",
                             "--registry-uri", db, "--artifact-root", str(root), "--port",
                             str(port), "--log-level", "error", *extra],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    for _ in range(600):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1):
                return proc, port
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("registry server did not start")


def old_tree(work: Path, commit: str) -> str | None:
    """satchel at ``commit`` laid out as an importable package (src/satchel as satchel,
    flavors/ and serving/ inside it), for a before/after pair in one run."""
    repo = Path(__file__).resolve().parent.parent
    dest = work / f"satchel-{commit}"
    try:
        archive = subprocess.run(["git", "-C", str(repo), "archive", commit, "src/satchel",
                                  "flavors", "serving"], capture_output=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    dest.mkdir(parents=True)
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive.stdout, check=True)
    (dest / "src" / "satchel").rename(dest / "satchel")
    for part in ("flavors", "serving"):
        shutil.rmtree(dest / "satchel" / part, ignore_errors=True)
        (dest / part).rename(dest / "satchel" / part)
    return str(dest)


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    proc.wait(20)


def bench_resolve(work: Path) -> list[list[Any]]:
    import satchel
    from satchel.registry import Registry

    model = iris_dir(work)
    db = f"sqlite:///{work / 'resolve.db'}"
    reg = Registry(db, actor="bench", artifact_root=work / "art")
    v = reg.register(model, "iris")
    reg.set_alias("iris", "champion", v.version)
    stored = reg.local_path(v)
    os.environ["SATCHEL_REGISTRY_URI"] = db
    n = 20 if QUICK else 50
    local = paired({
        "plain directory": lambda: satchel.load_model(stored),
        "models:/iris@champion (SQLite)": lambda: satchel.load_model("models:/iris@champion"),
        "resolve only (SQLite)": lambda: Registry().resolve("models:/iris@champion"),
    }, n)
    proc, port = start_registry_server(db, work / "art")
    try:
        os.environ["SATCHEL_REGISTRY_URI"] = f"http://127.0.0.1:{port}"
        os.environ["SATCHEL_CACHE_DIR"] = str(work / "cache")
        satchel.load_model("models:/iris@champion")  # first download fills the cache
        remote = paired({
            "plain directory": lambda: satchel.load_model(stored),
            "models:/iris@champion (server, cached)":
                lambda: satchel.load_model("models:/iris@champion"),
        }, n)
    finally:
        stop(proc)
        os.environ["SATCHEL_REGISTRY_URI"] = db
    base = local["plain directory"]
    rows = [[k, f"{ms:.2f}", f"{ms - base:+.2f}"] for k, ms in local.items()]
    rows += [[k, f"{ms:.2f}", f"{ms - remote['plain directory']:+.2f}"]
             for k, ms in remote.items() if k != "plain directory"]
    return rows


BEFORE = next((a.split("=", 1)[1] for a in sys.argv if a.startswith("--before=")),
              "bb6cd1a")


def bench_server(work: Path) -> list[list[Any]]:
    """Paired rounds on one database: the same server's /health (no store, no auth: the
    floor), the registry at ``--before=COMMIT`` (default: main before the read-path
    work), the current one, and the current one with ``--workers 2``; CPU per request of
    the serving processes from /proc (steadier than req/s on a shared machine)."""
    from satchel.registry import Registry
    from satchel.registry.api import close_all

    model = iris_dir(work / "srv-model")
    seconds = 4 if QUICK else 8
    rounds = 3 if QUICK else 5
    old = old_tree(work, BEFORE)
    rows = []
    backends: list[tuple[str, Any]] = [("SQLite (WAL)", None), ("PostgreSQL 15", postgres)]
    path = "/api/2.0/mlflow/registered-models/alias?name=fraud&alias=champion"
    script = work / "get.lua"
    script.write_text('wrk.method = "GET"\n')
    for label, ctx in backends:
        with (ctx() if ctx else _sqlite(work)) as db:
            art = work / f"art-{label[:3]}"
            reg = Registry(db, actor="bench", artifact_root=art)
            for _ in range(3):
                reg.register(model, "fraud", tags={"team": "risk"})
            reg.set_alias("fraud", "champion", 2)
            close_all()
            old_db = downgraded_copy(db, work, "srv-" + label[:3]) if old else db
            servers: dict[str, tuple[subprocess.Popen[bytes], int, str]] = {}
            try:
                now = start_registry_server(db, art)
                servers["/health (floor, current server)"] = (*now, "/health")
                if old:
                    servers[f"alias GET, before ({BEFORE}), 1 worker"] = (
                        *start_registry_server(old_db, art, pythonpath=old), path)
                servers["alias GET, current, 1 worker"] = (*now, path)
                servers["alias GET, current, --workers 2"] = (
                    *start_registry_server(db, art, "--workers", "2"), path)
                for _proc, port, p in servers.values():
                    wrk_get(port, script, 8, 2, p)  # warm-up
                runs: dict[str, list[tuple[float, float, float, int, int]]] = {}
                for _ in range(rounds):
                    for name, (proc, port, p) in servers.items():
                        pids = [proc.pid, *children(proc.pid)]
                        cpu0 = sum(cpu_seconds(x) for x in pids)
                        load = wrk_get(port, script, 8, seconds, p)
                        cpu = sum(cpu_seconds(x) for x in pids) - cpu0
                        runs.setdefault(name, []).append((
                            load.rps, load.p99_ms, 1000 * cpu / max(1, load.requests),
                            load.non2xx, load.socket_errors))
                for name, got in runs.items():
                    med = [statistics.median(g[i] for g in got) for i in range(3)]
                    rows.append([label, name, f"{med[0]:,.0f}",
                                 f"{min(g[0] for g in got):,.0f}", f"{med[1]:.2f}",
                                 f"{max(g[1] for g in got):.2f}", f"{med[2]:.3f}",
                                 f"{1000 / med[2]:,.0f}",
                                 sum(g[3] for g in got), sum(g[4] for g in got)])
            finally:
                for proc, _, _ in {id(v[0]): v for v in servers.values()}.values():
                    stop(proc)
    return rows


@contextmanager
def _sqlite(work: Path) -> Iterator[str]:
    yield f"sqlite:///{work / ('srv-' + uuid.uuid4().hex[:6] + '.db')}"


def wrk_get(port: int, script: Path, conns: int, seconds: float, path: str) -> Any:
    from loadgen import wrk_finish, wrk_start

    return wrk_finish(wrk_start(port, script, conns, seconds, path=path))


def bench_scale(work: Path) -> list[list[Any]]:
    """100 models x 100 versions, inserted in bulk (same files, so one tree), on SQLite
    and on PostgreSQL; the full listing is paired with a floor: the same SELECT run
    through the bare database driver (cursor.fetchall, no entities) in the same rounds."""
    rows: list[list[Any]] = []
    with postgres() as pg:
        for label, db in (("SQLite", f"sqlite:///{work / 'scale.db'}"), ("PostgreSQL", pg)):
            rows += _scale_one(work, label, db)
    return rows


def _scale_one(work: Path, label: str, db: str) -> list[list[Any]]:
    from sqlalchemy import insert, select

    from satchel.registry import Registry
    from satchel.registry.api import close_all
    from satchel.registry.convert import V
    from satchel.registry.search import _LISTED_COLUMNS, _VERSIONS_JOIN, M
    from satchel.registry.tables import RegisteredModelRow

    model = iris_dir(work / f"scale-model-{label}")
    art = work / f"art-scale-{label}"
    reg = Registry(db, actor="bench", artifact_root=art)
    first = reg.register(model, "fraud-000", tags={"team": "t0"})
    store = reg.store
    with store.write() as s:
        template = s.execute(select(V).where(V.c.version == 1)).one()._asdict()
        for m in range(100):
            name = f"fraud-{m:03d}"
            if m:
                s.add(RegisteredModelRow(name=name, description="", created_at=0,
                                         updated_at=0, next_version=101))
                s.flush()
            mid = s.execute(select(RegisteredModelRow.id)
                            .where(RegisteredModelRow.name == name)).scalar_one()
            batch = []
            for n in range(1 if m == 0 else 0, 100):
                row = dict(template)
                row.pop("id")
                row.update(model_id=mid, version=n + 1,
                           stage="Production" if n == 99 else "None")
                batch.append(row)
            s.execute(insert(V), batch)
    close_all()  # reopen, as a new process would: planner statistics refreshed (both)
    reg = Registry(db, actor="bench", artifact_root=art)
    reg.set_alias("fraud-042", "champion", 77)
    reg.set_version_tag("fraud-042", 77, "validated", "yes")
    assert first.version == 1
    total = len(reg.search_versions(max_results=10000))
    assert total == 10000, total
    query = (select(*_LISTED_COLUMNS).select_from(_VERSIONS_JOIN)
             .order_by(M.c.name, V.c.version.desc()).limit(10000))
    old = old_tree(work / f"old-{label}", BEFORE)
    # (before the floor's connection is opened: PostgreSQL copies an idle database only)
    before_db = downgraded_copy(db, work, label) if old else db
    engine = reg.store.engine
    sql = str(query.compile(engine, compile_kwargs={"literal_binds": True}))
    raw = engine.raw_connection()

    def floor() -> None:
        cur = raw.cursor()
        cur.execute(sql)
        assert len(cur.fetchall()) == 10000
        cur.close()

    def with_details() -> None:
        listed = reg.search_versions(max_results=10000)
        assert all(v.signature is not None for v in listed)

    n = 5 if QUICK else 9
    variants: dict[str, Callable[[], Any]] = {
        "driver floor: the listing's SELECT, cursor.fetchall()": floor,
        "search_versions(max_results=10000): all 10,000":
            lambda: reg.search_versions(max_results=10000),
        "  the same, then every version's signature (details read)": with_details,
    }
    before: list[float] = []
    if old:
        # the same call on a copy of the database at the old schema, by satchel at
        # --before, in a subprocess (its own interpreter), once per round
        script = (
            "import statistics, sys, time\n"
            "from satchel.registry import Registry\n"
            f"reg = Registry({before_db!r}, actor='bench')\n"
            "reg.search_versions(max_results=10000)\n"
            "ts = []\n"
            f"for _ in range({n}):\n"
            "    t = time.perf_counter(); reg.search_versions(max_results=10000)\n"
            "    ts.append((time.perf_counter() - t) * 1000)\n"
            "print(statistics.median(ts))\n")

        def old_run() -> None:
            done = subprocess.run([sys.executable, "-c", script], capture_output=True,
                                  text=True, env={**os.environ, "PYTHONPATH": old},
                                  check=True)
            before.append(float(done.stdout.strip().splitlines()[-1]))

    samples: dict[str, list[float]] = {k: [] for k in variants}
    for _ in range(3 if QUICK else 5):  # interleaved rounds, as in paired()
        for name, fn in variants.items():
            samples[name].append(median_ms(fn, n))
        if old:
            old_run()
    full = {k: statistics.median(v) for k, v in samples.items()}
    if old:
        full[f"before ({BEFORE}): all 10,000 (own process)"] = statistics.median(before)
    raw.close()
    cases = {
        "search_versions() first page (1,000)": lambda: reg.search_versions(),
        "search_versions(max_results=100): a page": lambda: reg.search_versions(
            max_results=100),
        "search_versions(max_results=100, offset=9000)": lambda: reg.search_versions(
            max_results=100, offset=9000),
        "search_versions('fraud-042'): 100": lambda: reg.search_versions("fraud-042"),
        "search_versions(name_like='fraud-04*'): 1,000":
            lambda: reg.search_versions(name_like="fraud-04*"),
        "search_versions(stage='Production'): 100":
            lambda: reg.search_versions(stage="Production"),
        "search_versions(tags={'validated': 'yes'})":
            lambda: reg.search_versions(tags={"validated": "yes"}),
        "search_versions(alias='champion')": lambda: reg.search_versions(alias="champion"),
        "search_models('fraud-04*')": lambda: reg.search_models("fraud-04*"),
        "search_models(): all 100": lambda: reg.search_models(),
        "resolve models:/fraud-042@champion": lambda: reg.resolve("models:/fraud-042@champion"),
        "get_model('fraud-042')": lambda: reg.get_model("fraud-042"),
    }
    out = [[label, k, f"{ms:.2f}"] for k, ms in full.items()]
    out += [[label, k, f"{median_ms(fn, n):.2f}"] for k, fn in cases.items()]
    close_all()
    out += _scale_server(work, label, db, art, old, before_db, n)
    return out


# MLflow's client asks for 10,000 versions per page (SEARCH_MODEL_VERSION_MAX_RESULTS_DEFAULT
# in mlflow 3.17: MlflowClient.search_model_versions' default, and the page size of
# mlflow.search_model_versions), so the full listing is what its users wait for.
SEARCH_ALL = "/api/2.0/mlflow/model-versions/search?max_results=10000"
SEARCH_PAGE = "/api/2.0/mlflow/model-versions/search?max_results=1000"
SEARCH_TAG = ("/api/2.0/mlflow/model-versions/search?filter=tags.validated%3D%27yes%27"
              "&max_results=10000")


def _scale_server(work: Path, label: str, db: str, art: Path, old: str | None,
                  before_db: str, n: int) -> list[list[Any]]:
    """The registry server's MLflow search over the same 10,000 versions: cold (a write
    moved the registry's generation just before: the reply is computed and rendered) and
    warm (unchanged registry: the cached reply), one keep-alive connection; the server
    at --before beside it."""
    import http.client

    import sqlalchemy as sa

    from satchel.registry.api import close_all

    servers = {"current": start_registry_server(db, art)}
    dbs = {"current": db}
    if old:
        servers[f"before ({BEFORE})"] = start_registry_server(before_db, art, pythonpath=old)
        dbs[f"before ({BEFORE})"] = before_db
    engines = {who: sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
               for who, url in dbs.items()}
    flip = [0]

    def write(who: str) -> None:
        # The same change on either database (the server at --before runs on a copy at
        # its own schema, which this satchel would upgrade): one version's description
        # and the generation (the audit head's sequence number) advanced, in one
        # transaction, as a registry write does. Raw SQL, so the audit chain's hashes
        # are not kept: the benchmark never verifies them.
        flip[0] += 1
        with engines[who].begin() as conn:
            conn.execute(sa.text(
                "UPDATE registry_versions SET description = :v WHERE version = 77 AND "
                "model_id = (SELECT id FROM registry_models WHERE name = 'fraud-042')"),
                {"v": f"edit {flip[0]}"})
            conn.execute(sa.text("UPDATE registry_audit_head SET seq = seq + 1"))

    def timed(who: str, port: int, path: str, cold: bool) -> float:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        try:
            conn.request("GET", path)
            conn.getresponse().read()  # warm-up (and a connection)
            times = []
            for _ in range(n):
                if cold:
                    write(who)
                t = time.perf_counter()
                conn.request("GET", path)
                resp = conn.getresponse()
                body = resp.read()
                times.append((time.perf_counter() - t) * 1000)
                assert resp.status == 200 and body, resp.status
            return statistics.median(times)
        finally:
            conn.close()

    rows: list[list[Any]] = []
    try:
        samples: dict[str, list[float]] = {}
        for _ in range(3):
            for who, (_proc, port) in servers.items():
                for path, what in ((SEARCH_ALL, "all 10,000"),
                                   (SEARCH_PAGE, "first page of 1,000"),
                                   (SEARCH_TAG, "by tag")):
                    for cold in (True, False):
                        key = (f"server {who}: GET model-versions/search {what}, "
                               f"{'cold (after a write)' if cold else 'warm (unchanged)'}")
                        samples.setdefault(key, []).append(timed(who, port, path, cold))
        rows = [[label, k, f"{statistics.median(v):.2f}"] for k, v in samples.items()]
    finally:
        for proc, _ in servers.values():
            stop(proc)
        for engine in engines.values():
            engine.dispose()
        close_all()
    return rows


def downgraded_copy(db: str, work: Path, label: str) -> str:
    """A copy of the registry database at schema r0002 (without r0003's indexes), which
    an earlier satchel opens (it refuses a schema it does not know)."""
    import sqlalchemy as sa

    from satchel.registry.api import close_all

    close_all()
    if db.startswith("sqlite:///"):
        copy = f"sqlite:///{work / f'before-{label}.db'}"
        shutil.copy(db[len("sqlite:///"):], copy[len("sqlite:///"):])
    else:
        base, name = db.rsplit("/", 1)
        engine = sa.create_engine(base.replace("postgresql://", "postgresql+psycopg://")
                                  + "/postgres", isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.exec_driver_sql(f"CREATE DATABASE {name}_before TEMPLATE {name}")
        engine.dispose()
        copy = f"{db}_before"
    engine = sa.create_engine(copy.replace("postgresql://", "postgresql+psycopg://"))
    with engine.begin() as conn:
        for index in ("ix_registry_versions_model_stage", "ix_registry_versions_run_id",
                      "ix_registry_aliases_alias"):
            conn.exec_driver_sql(f"DROP INDEX IF EXISTS {index}")
        conn.exec_driver_sql("UPDATE registry_alembic_version SET version_num = 'r0002'")
    engine.dispose()
    return copy


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="satchel-registry-bench-"))
    try:
        if ONLY in ("", "resolve"):
            print("## 1. load_model through the registry vs a plain directory "
                  "(median ms, warm process)\n")
            print(table(bench_resolve(work), ["load", "median ms", "over plain dir"]))
        if ONLY in ("", "server"):
            print("\n## 2. Registry server reads: GET registered-models/alias "
                  "(wrk -c8; medians of paired rounds)\n")
            print(table(bench_server(work), ["store", "server", "req/s (median)",
                                              "worst round", "p99 ms", "worst p99",
                                              "CPU ms/req", "req per CPU-s", "non-2xx",
                                              "socket errors (wrk: incl. >2 s timeouts)"]))
        if ONLY in ("", "scale"):
            print("\n## 3. 10,000 versions (100 models x 100): median ms\n")
            print(table(bench_scale(work), ["store", "query", "median ms"]))
        print(json.dumps({"python": sys.version.split()[0], "cpus": os.cpu_count()}))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
