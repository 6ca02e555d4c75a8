"""launch/rvm.launch.py: checked statically here (no `launch` / `launch_ros` on PyPI)."""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import pytest


def _tree(repo_root: Path) -> ast.Module:
    return ast.parse((repo_root / "launch" / "rvm.launch.py").read_text())


def _calls(tree: ast.Module, name: str) -> list[ast.Call]:
    return [
        n
        for n in ast.walk(tree)
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == name
    ]


def _str_arg(call: ast.Call) -> str:
    first = call.args[0]
    assert isinstance(first, ast.Constant)
    return str(first.value)


def test_launch_file_declares_its_arguments_and_the_lifecycle_node(repo_root: Path) -> None:
    tree = _tree(repo_root)
    funcs = [n.name for n in tree.body if isinstance(n, ast.FunctionDef)]
    assert "generate_launch_description" in funcs
    declared = {_str_arg(c) for c in _calls(tree, "DeclareLaunchArgument")}
    assert {"config_file", "namespace", "checkpoint", "backend"} <= declared
    used = {_str_arg(c) for c in _calls(tree, "LaunchConfiguration")}
    assert declared == used, "every declared argument is used, and only declared ones"
    (node,) = _calls(tree, "LifecycleNode")
    kw = {k.arg: k.value for k in node.keywords}
    assert ast.literal_eval(kw["package"]) == "rvm_ros"
    assert ast.literal_eval(kw["executable"]) == "rvm_node"
    assert ast.literal_eval(kw["name"]) == "rvm"
    assert {"parameters", "remappings", "namespace"} <= set(kw)


def test_launch_config_files_exist_in_the_package(repo_root: Path) -> None:
    text = (repo_root / "launch" / "rvm.launch.py").read_text()
    assert '"config", "rvm.yaml"' in text
    assert (repo_root / "config" / "rvm.yaml").is_file()
    cmake = (repo_root / "CMakeLists.txt").read_text()
    assert "install(DIRECTORY launch config" in cmake


@pytest.mark.skipif(
    importlib.util.find_spec("launch_ros") is None,
    reason="launch / launch_ros are not installable from PyPI here (ROS 2 install needed)",
)
def test_launch_description_builds(repo_root: Path) -> None:  # pragma: no cover - needs ROS
    spec = importlib.util.spec_from_file_location(
        "rvm_launch", repo_root / "launch" / "rvm.launch.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    desc = module.generate_launch_description()
    names = {a.name for a in desc.get_launch_arguments()}
    assert {"config_file", "namespace", "checkpoint", "backend"} <= names


def _argument_defaults(tree: ast.Module) -> dict[str, ast.expr | None]:
    out: dict[str, ast.expr | None] = {}
    for call in _calls(tree, "DeclareLaunchArgument"):
        kw = {k.arg: k.value for k in call.keywords}
        out[_str_arg(call)] = kw.get("default_value")
    return out


def _resolve(tree: ast.Module, node: ast.expr | None) -> ast.expr | None:
    """A Name bound once in generate_launch_description -> its assigned expression."""
    if isinstance(node, ast.Name):
        for n in ast.walk(tree):
            if isinstance(n, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == node.id for t in n.targets
            ):
                return n.value
    return node


def test_launch_applies_the_shm_profile_by_default_with_an_argument_to_turn_it_off(
    repo_root: Path,
) -> None:
    tree = _tree(repo_root)
    defaults = _argument_defaults(tree)
    # fastdds_profile defaults to the package's config/fastdds_large_images.xml ...
    default = _resolve(tree, defaults["fastdds_profile"])
    assert isinstance(default, ast.Call) and ast.unparse(default.func) == "PathJoinSubstitution"
    parts = [ast.literal_eval(e) for e in default.args[0].elts[1:]]  # type: ignore[attr-defined]
    assert parts == ["config", "fastdds_large_images.xml"]
    assert (repo_root / "config" / "fastdds_large_images.xml").is_file()
    # ... applied unless use_fastdds_profile:=false.
    switch = defaults["use_fastdds_profile"]
    assert switch is not None and ast.literal_eval(switch) == "true"
    (env,) = _calls(tree, "SetEnvironmentVariable")
    assert ast.literal_eval(env.args[0]) == "FASTDDS_DEFAULT_PROFILES_FILE"
    condition = ast.unparse({k.arg: k.value for k in env.keywords}["condition"])
    assert "use_profile" in condition and "== 'true'" in condition
    # The action comes before the node in the description, so the node's process gets it.
    (ret,) = [n for n in ast.walk(tree) if isinstance(n, ast.Return)]
    order = [ast.unparse(e) for e in ret.value.args[0].elts]  # type: ignore[union-attr]
    assert order.index("set_profile") < order.index("node")
