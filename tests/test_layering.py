"""The import rules of DESIGN.md, checked from the AST of every module."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CORE = sorted((ROOT / "src" / "satchel").rglob("*.py"))
FLAVORS = sorted((ROOT / "flavors").glob("*.py"))
SERVING = sorted((ROOT / "serving").rglob("*.py"))
# serving/ is grouped by purpose; each folder is a package in pyproject.toml
SERVING_PACKAGES = ("server", "protocols", "offline", "images", "registry", "monitoring")
HEAVY = (
    "sklearn",
    "onnx",
    "onnxruntime",
    "skl2onnx",
    "skops",
    "starlette",
    "uvicorn",
    "pyspark",
    "pyarrow",
    "docker",
    "mlflow",
    "xgboost",
    "lightgbm",
    "catboost",
    "statsmodels",
    "torch",
    "keras",
    "jax",
    "tensorflow",
    "transformers",
    "grpc",
    "google.protobuf",
)


def imports(path: Path) -> list[tuple[str, bool]]:
    """(module, at_top_level) for every import in a file; top level = not inside a function."""
    tree = ast.parse(path.read_text(), str(path))
    out: list[tuple[str, bool]] = []

    def visit(node: ast.AST, top: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inner = top and not isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef))
            if isinstance(child, ast.Import):
                out.extend((a.name, top) for a in child.names)
            elif isinstance(child, ast.ImportFrom) and child.module and child.level == 0:
                out.extend(
                    [(child.module, top)] + [(f"{child.module}.{a.name}", top) for a in child.names]
                )
            elif isinstance(child, ast.If) and _is_type_checking(child):
                continue  # imports for type checkers only never run
            visit(child, inner)

    visit(tree, True)
    return out


def _is_type_checking(node: ast.If) -> bool:
    return isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"


def _rel(p: Path) -> str:
    return str(p.relative_to(ROOT))


def test_the_three_trees_exist() -> None:
    assert CORE and FLAVORS and SERVING


@pytest.mark.parametrize("path", CORE + FLAVORS + SERVING, ids=_rel)
def test_no_bare_top_level_package_imports(path: Path) -> None:
    bad = [m for m, _ in imports(path) if m.split(".")[0] in ("flavors", "serving", "src")]
    assert not bad, f"{_rel(path)} imports {bad}; write satchel.flavors / satchel.serving"


@pytest.mark.parametrize("path", CORE, ids=_rel)
def test_core_never_imports_flavors_or_serving_except_cli_lazily(path: Path) -> None:
    is_cli = "cli" in path.parts
    for mod, top in imports(path):
        if mod.startswith(("satchel.flavors", "satchel.serving")):
            assert is_cli and not top, f"{_rel(path)} imports {mod}" + (
                " at module level (the CLI imports serving lazily)" if is_cli else ""
            )


@pytest.mark.parametrize("path", CORE + FLAVORS, ids=_rel)
def test_heavy_libraries_only_imported_inside_functions(path: Path) -> None:
    bad = [m for m, top in imports(path) if top and m.split(".")[0] in HEAVY]
    assert not bad, f"{_rel(path)} imports {bad} at module level"


@pytest.mark.parametrize("path", FLAVORS, ids=_rel)
def test_flavors_import_core_only(path: Path) -> None:
    for mod, _ in imports(path):
        assert not mod.startswith("satchel.serving"), f"{_rel(path)} imports {mod}"
        if mod.startswith("satchel.flavors"):
            # A flavor's private helpers (flavors/_<flavor>*.py) are its own.
            own = f"satchel.flavors._{path.stem.lstrip('_')}"
            assert mod == "satchel.flavors" or mod.startswith(own), (
                f"{_rel(path)} imports another flavor: {mod}"
            )


def _in(path: Path, folder: str) -> bool:
    return path.parent == ROOT / "serving" / folder


@pytest.mark.parametrize("path", SERVING, ids=_rel)
def test_serving_never_imports_a_flavor(path: Path) -> None:
    for mod, top in imports(path):
        assert not mod.startswith("satchel.flavors"), f"{_rel(path)} imports {mod}"
        root = mod.split(".")[0]
        if root in ("starlette", "uvicorn"):
            # the HTTP transports (scoring server, registry server) and what serves them;
            # never the data plane or a protocol
            assert (_in(path, "server") or _in(path, "registry")) and path.name not in (
                "dataplane.py", "repository.py", "batching.py", "options.py", "metrics.py",
            ), f"{_rel(path)} imports {root}: only the HTTP transport may"
        if root == "pyspark":
            # only the Spark modules of offline scoring, and lazily (inside functions)
            assert path.name.startswith("spark") and _in(path, "offline") and not top, (
                f"{_rel(path)} imports pyspark")
        if root == "docker":
            assert path.name == "docker.py" and _in(path, "images") and not top, (
                f"{_rel(path)} imports docker")


@pytest.mark.parametrize("path", [p for p in SERVING if _in(p, "protocols")], ids=_rel)
def test_protocols_know_no_transport(path: Path) -> None:
    """A protocol is a codec: no server module, no HTTP library (type hints excepted)."""
    for mod, _ in imports(path):
        assert mod.split(".")[0] not in ("starlette", "uvicorn", "grpc", "anyio"), (
            f"{_rel(path)} imports {mod}")
        assert not mod.startswith("satchel.serving.server"), f"{_rel(path)} imports {mod}"


def test_every_serving_folder_is_a_packaged_package() -> None:
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    folders = {p.parent for p in SERVING} - {ROOT / "serving"}
    for folder in folders:
        package = "satchel.serving." + folder.name
        assert (folder / "__init__.py").exists(), f"{_rel(folder)} has no __init__.py"
        assert package in config["packages"], f"{package} is missing from pyproject packages"
        assert config["package-dir"][package] == _rel(folder)
    assert {f.name for f in folders} >= set(SERVING_PACKAGES)


# the gRPC transport: its rules, and the server that carries its calls
GRPCIO_MODULES = frozenset({"grpc.py", "grpc_server.py"})


@pytest.mark.parametrize("path", sorted((ROOT / "serving").rglob("*.py")), ids=_rel)
def test_grpcio_only_in_the_grpc_transport(path: Path) -> None:
    """grpcio in the gRPC transport only; protobuf in it, the gRPC codec and the generated
    module; so no other serving module (and never core) loads them."""
    for mod, _ in imports(path):
        if mod.split(".")[0] == "grpc":
            assert path.parent.name == "server" and path.name in GRPCIO_MODULES, (
                f"{_rel(path)} imports {mod}: only serving/server/"
                f"{{{','.join(sorted(GRPCIO_MODULES))}}} may")
        if mod.startswith("google.protobuf") or mod.endswith("_pb2"):
            assert path.name.startswith("grpc") or path.name.endswith("_pb2.py"), (
                f"{_rel(path)} imports {mod}: only the gRPC modules may")


def test_import_satchel_is_light() -> None:
    heavy = HEAVY + ("numpy", "pandas", "yaml", "cloudpickle")
    code = f"import sys, satchel; print(','.join(m for m in {heavy!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"import satchel loaded {out.stdout.strip()}"


def test_load_model_does_not_import_serving_libraries(iris_model_dir: Path) -> None:
    code = (
        f"import sys, satchel; m = satchel.load_model({str(iris_model_dir)!r}); "
        "print(','.join(x for x in ('starlette', 'uvicorn', 'pyspark', 'onnxruntime', "
        "'satchel.serving') if x in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_module_names_say_what_they_hold() -> None:
    """Issue 12: no ``codecs.py`` (it shadows the stdlib module and said nothing of which
    protocol), and no ``X.py`` beside ``Xing.py`` in one folder (``batch.py`` next to
    ``batching.py``), anywhere in the three trees."""
    every = CORE + FLAVORS + SERVING
    assert not [p for p in every if p.name == "codecs.py"]
    for folder in {p.parent for p in every}:
        stems = {p.stem for p in folder.glob("*.py")}
        clashes = sorted(s for s in stems if f"{s}ing" in stems or f"{s[:-1]}ing" in stems)
        assert not clashes, f"{folder}: {clashes} beside their -ing namesakes"


# what a second copy of core's pandas probe or row count would be called (issue 12: five
# copies were folded into satchel._normalize)
_PROBES = {"num_rows", "n_rows", "row_count", "count_rows", "rows_of", "pandas_kind",
           "is_pandas", "is_dataframe", "is_frame", "is_series", "pandas"}


def test_one_pandas_probe_and_one_row_count() -> None:
    home = ROOT / "src" / "satchel" / "_normalize.py"
    copies = []
    for path in CORE + FLAVORS + SERVING:
        if path == home:
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if (isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
                    and node.name.lstrip("_") in _PROBES):
                copies.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name}")
    assert not copies, f"use satchel._normalize instead of: {copies}"
