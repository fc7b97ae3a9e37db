"""The layers of the package (docs/architecture.md): the science in plain modules, Dagster only in the orchestration.

- ``defs/``, ``definitions.py`` and ``pipeline.py`` (the orchestration) may import ``dagster``;
- ``__main__.py`` and ``cli/`` (the command line) may import the orchestration, inside the
  commands that need it, but not ``dagster`` itself;
- every other module is plain Python: it imports neither ``dagster`` nor the orchestration nor the
  command line, so it can be used and tested without Dagster;
- among the plain modules, ``tools/`` (review, report, napari, snapshots) sits above the science and the
  store packages, which never import it, and below the command line, its only importer.
"""

import ast
import subprocess
import sys
from pathlib import Path

import synapflow_assets

PACKAGE = Path(synapflow_assets.__file__).resolve().parent
ORCHESTRATION = ("synapflow_assets.defs", "synapflow_assets.definitions", "synapflow_assets.pipeline")
COMMAND_LINE = ("synapflow_assets.__main__", "synapflow_assets.cli")
TOOLS = ("synapflow_assets.tools",)


def modules() -> dict[str, Path]:
    """``{dotted name: file}`` for every module of the package."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = ("synapflow_assets", *path.relative_to(PACKAGE).with_suffix("").parts)
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imports(name: str, path: Path) -> set[str]:
    """The absolute names of everything the module imports, anywhere in it (functions too)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


def within(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == prefix or name.startswith(prefix + ".") for prefix in prefixes)


def is_dagster(name: str) -> bool:
    root = name.split(".")[0]
    return root == "dagster" or root.startswith("dagster_")


def test_the_parse_sees_the_imports():
    found = modules()
    assert "synapflow_assets.defs.resources" in found and "synapflow_assets.imaging.keys" in found
    assert "dagster" in imports("synapflow_assets.definitions", found["synapflow_assets.definitions"])
    assert "synapflow_assets.errors" in imports("synapflow_assets.imaging.keys", found["synapflow_assets.imaging.keys"])


def test_only_the_orchestration_imports_dagster():
    offenders = {
        name: sorted(filter(is_dagster, imports(name, path)))
        for name, path in modules().items()
        if not within(name, ORCHESTRATION)
    }
    assert {name: found for name, found in offenders.items() if found} == {}, (
        "only defs/, definitions.py and pipeline.py may import dagster"
    )


def test_plain_modules_import_neither_the_orchestration_nor_the_command_line():
    offenders = {}
    for name, path in modules().items():
        if within(name, ORCHESTRATION + COMMAND_LINE):
            continue
        found = sorted(m for m in imports(name, path) if within(m, ORCHESTRATION + COMMAND_LINE))
        if found:
            offenders[name] = found
    assert offenders == {}, "move the code these need out of the orchestration, or the module into defs/"


def test_only_the_command_line_imports_the_tools():
    """The end-user tools read what the science and the store make; nothing below them (nor the orchestration)
    imports them."""
    found = {
        name: sorted(m for m in imports(name, path) if within(m, TOOLS))
        for name, path in modules().items()
        if not within(name, TOOLS + COMMAND_LINE)
    }
    assert {name: names for name, names in found.items() if names} == {}


def test_importing_every_plain_module_does_not_load_dagster():
    """The same rule at run time: nothing a plain module imports (a third-party package included) brings Dagster in."""
    plain = [name for name in modules() if not within(name, ORCHESTRATION + COMMAND_LINE)]
    code = (
        "import importlib, sys\n"
        f"for name in {plain!r}:\n"
        "    importlib.import_module(name)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'dagster' or m.startswith('dagster_')))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=PACKAGE.parent
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "[]", result.stdout[-2000:]


def private_imports(name: str, path: Path) -> list[str]:
    """`module._name` for every private name (one leading underscore) the module imports from another module."""
    return sorted(
        f"{imported} in {name}"
        for imported in imports(name, path)
        if imported.startswith("synapflow_assets.")
        and imported.rpartition(".")[2].startswith("_")
        and not imported.rpartition(".")[2].startswith("__")
        and imported.rpartition(".")[0] != name
    )


def test_no_module_imports_another_modules_private_names():
    found = [line for name, path in modules().items() for line in private_imports(name, path)]
    assert found == [], found


def test_the_private_name_check_finds_one(tmp_path):
    planted = tmp_path / "planted.py"
    planted.write_text("from synapflow_assets.tracking.depth import _secret\nfrom .keys import _pattern\n")
    assert private_imports("synapflow_assets.imaging.planted", planted) == [
        "synapflow_assets.imaging.keys._pattern in synapflow_assets.imaging.planted",
        "synapflow_assets.tracking.depth._secret in synapflow_assets.imaging.planted",
    ]


def test_defs_never_import_the_pipeline():
    """`pipeline` (ingest) builds on `defs/`; a sensor needing ingest's code means that code belongs in `defs/`."""
    found = {
        name: sorted(m for m in imports(name, path) if within(m, ("synapflow_assets.pipeline",)))
        for name, path in modules().items()
        if within(name, ("synapflow_assets.defs",))
    }
    assert {name: names for name, names in found.items() if names} == {}


def test_only_two_modules_use_dagsters_private_modules():
    """Dagster's stale-status resolver and its step-execution API have no public import: the staleness decision
    and the Dask executor hold them, so a Dagster upgrade touches those two files."""
    found = {
        name
        for name, path in modules().items()
        if any(
            m.split(".")[0] == "dagster" and m.split(".")[1:2] and m.split(".")[1].startswith("_")
            for m in imports(name, path)
        )
    }
    assert found == {"synapflow_assets.defs.staleness", "synapflow_assets.defs.dask_executor"}


LIFECYCLE = tuple(
    f"synapflow_assets.detection.{name}" for name in ("registry", "champion", "gate", "train_register", "shipping")
)


def test_the_model_lifecycle_is_used_through_its_one_module():
    """Outside the lifecycle's own modules, the package and the benchmarks import `detection.lifecycle` only."""
    bench = {f"bench.{p.stem}": p for p in sorted((PACKAGE.parent / "bench").glob("*.py"))}
    found = {
        name: sorted(m for m in imports(name, path) if within(m, LIFECYCLE))
        for name, path in {**modules(), **bench}.items()
        if not within(name, (*LIFECYCLE, "synapflow_assets.detection.lifecycle"))
    }
    assert {name: names for name, names in found.items() if names} == {}


def import_graph() -> dict[str, set[str]]:
    """``{module: the package's modules it imports}``, anywhere in it (``TYPE_CHECKING`` blocks and functions too);
    a package's own ``__init__`` is not counted as imported by its submodules."""
    found = modules()
    graph = {}
    for name, path in found.items():
        targets = set()
        for imported in imports(name, path):
            parts = imported.split(".")
            known = next((".".join(parts[:k]) for k in range(len(parts), 0, -1) if ".".join(parts[:k]) in found), None)
            if known and known != name and not name.startswith(known + "."):
                targets.add(known)
        graph[name] = targets
    return graph


def import_circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The groups of two or more modules that import each other, directly or through others (strongly connected
    components, iterative Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == node:
                        break
                if len(group) > 1:
                    circles.append(sorted(group))
    return circles


def test_no_import_circles():
    assert import_circles(import_graph()) == []


def test_the_circle_check_finds_one():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert import_circles(graph) == [["a", "b", "c"]]
