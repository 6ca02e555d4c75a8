"""The package's dependency rule, checked on the source: no cycles, no upward imports.

Layers (a package may import its own modules and packages of lower layers only)::

    cli
    bench
    replay   node   evaluation
    pipeline   training   datasets
    runtime   tracking   wire   bags   viz
    imaging
    checkpoint
    model   fsutil
    errors   stamps   rotations   signals

rclpy (and the generated ``rvm_ros.msg`` / ``rvm_ros.srv``, which need it) is imported
only by ``node``, ``cli`` and the node-overhead benchmark; ``replay`` never imports
``node``. Every import counts, including imports inside functions and under
``TYPE_CHECKING``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2] / "rvm_ros"

LAYER = {
    "errors": 0,
    "fsutil": 1,  # imports errors (its OutputError)
    "stamps": 0,  # ROS time <-> integer nanoseconds
    "rotations": 0,  # quaternions <-> rotation matrices
    "signals": 0,  # SIGTERM handled like Ctrl-C
    "model": 1,
    "heads": 1,  # planning heads on scene tokens (pure torch)
    "checkpoint": 2,
    "imaging": 3,
    "street": 3,  # generated street drives (numpy / OpenCV)
    "runtime": 4,
    "tracking": 4,
    "wire": 4,
    "bags": 4,
    "viz": 4,
    "pipeline": 5,
    "training": 5,
    "datasets": 5,  # reads replay outputs through bags / wire
    "replay": 6,
    "node": 6,
    "evaluation": 6,  # held-out evaluation tools (eval-reconstruction, -features, -distill)
    "bench": 7,
    "cli": 8,
}
# Modules outside node/ and cli/ allowed to import rclpy, with the reason.
RCLPY_ALLOWED = {
    "rvm_ros.bench.node_overhead": "benchmarks the node over real DDS",
    "rvm_ros.bench.node_overhead_peer": "the benchmark's camera / consumer process",
}
ROS_MODULES = ("rclpy", "rvm_ros.msg", "rvm_ros.srv", "launch", "launch_ros")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path, module: str) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            found.add(target)
            # `from rvm_ros import imaging` imports the subpackage rvm_ros.imaging
            for alias in node.names:
                found.add(f"{target}.{alias.name}")
    return found


def _graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in ROOT.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        deps = set()
        for target in _imports(path, name):
            # resolve to the longest existing module prefix
            parts = target.split(".")
            while parts and ".".join(parts) not in modules:
                parts.pop()
            if parts and ".".join(parts) != name:
                deps.add(".".join(parts))
            if target.split(".")[0] in ("rclpy", "launch", "launch_ros") or target.startswith(
                ("rvm_ros.msg", "rvm_ros.srv")
            ):
                deps.add(target)
        graph[name] = deps
    return graph


GRAPH = _graph()


def _package(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def test_every_package_has_a_layer() -> None:
    packages = {_package(m) for m in GRAPH if _package(m)}
    missing = sorted(p for p in packages if p not in LAYER)
    assert not missing, f"packages without a layer in this test: {missing}"


def test_no_import_points_upward_or_sideways() -> None:
    bad = []
    for module, deps in GRAPH.items():
        src = _package(module)
        if src is None:
            continue
        for dep in deps:
            if not dep.startswith("rvm_ros.") or dep.startswith(("rvm_ros.msg", "rvm_ros.srv")):
                continue
            dst = _package(dep)
            if dst is None or dst == src:
                continue
            if LAYER[dst] >= LAYER[src]:
                bad.append(f"{module} -> {dep} ({src}: layer {LAYER[src]}, {dst}: {LAYER[dst]})")
    assert not bad, "imports against the dependency rule:\n" + "\n".join(sorted(bad))


def test_rclpy_only_in_node_and_cli() -> None:
    bad = []
    for module, deps in GRAPH.items():
        if _package(module) in ("node", "cli") or module in RCLPY_ALLOWED:
            continue
        ros = sorted(d for d in deps if d.split(".")[0] in ("rclpy", "launch", "launch_ros"))
        ros += sorted(d for d in deps if d.startswith(("rvm_ros.msg", "rvm_ros.srv")))
        if ros:
            bad.append(f"{module} imports {ros}")
    assert not bad, "\n".join(bad)


def test_replay_does_not_import_node() -> None:
    bad = [
        f"{m} -> {d}"
        for m, deps in GRAPH.items()
        if _package(m) == "replay"
        for d in deps
        if _package(d) == "node"
    ]
    assert not bad, bad


def _find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    colour: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        colour[node] = 1
        stack.append(node)
        for dep in sorted(graph.get(node, ())):
            if dep not in graph:
                continue
            if colour.get(dep) == 1:
                return [*stack[stack.index(dep) :], dep]
            if colour.get(dep, 0) == 0:
                found = visit(dep)
                if found:
                    return found
        stack.pop()
        colour[node] = 2
        return None

    for node in sorted(graph):
        if colour.get(node, 0) == 0:
            found = visit(node)
            if found:
                return found
    return None


def test_no_import_cycle_between_modules() -> None:
    # A package's __init__ re-exports its modules; an import of the package from one of its
    # own modules is the only way back, and it is a cycle too.
    cycle = _find_cycle(GRAPH)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


@pytest.mark.parametrize(
    ("graph", "expected"),
    [
        ({"a": {"b"}, "b": {"c"}, "c": set()}, None),
        ({"a": {"b"}, "b": {"a"}}, ["a", "b", "a"]),
        ({"a": {"b"}, "b": {"c"}, "c": {"b"}}, ["b", "c", "b"]),
    ],
)
def test_cycle_finder(graph: dict[str, set[str]], expected: list[str] | None) -> None:
    assert _find_cycle(graph) == expected
