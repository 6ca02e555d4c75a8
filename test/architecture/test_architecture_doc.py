"""docs/ARCHITECTURE.md keeps up with the tree: its module table is the generated one."""

from __future__ import annotations

import importlib.machinery
import importlib.util
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _layout_script():  # type: ignore[no-untyped-def]
    path = REPO / "scripts" / "architecture-layout"
    loader = importlib.machinery.SourceFileLoader("architecture_layout", str(path))
    spec = importlib.util.spec_from_loader("architecture_layout", loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def test_module_table_matches_the_tree() -> None:
    layout = _layout_script()
    doc = (REPO / "docs" / "ARCHITECTURE.md").read_text()
    assert layout.BEGIN in doc and layout.END in doc
    embedded = doc.split(layout.BEGIN, 1)[1].split(layout.END, 1)[0].strip()
    assert embedded == layout.table(), (
        "docs/ARCHITECTURE.md's module table is stale: "
        "run python scripts/architecture-layout --write"
    )


def test_layer_table_names_every_package() -> None:
    doc = (REPO / "docs" / "ARCHITECTURE.md").read_text()
    layers = doc.split("## Layers", 1)[1].split("##", 1)[0]
    packages = sorted(
        p.name if p.is_dir() else p.stem
        for p in (REPO / "rvm_ros").iterdir()
        if (p.is_dir() and (p / "__init__.py").exists())
        or (p.suffix == ".py" and p.stem != "__init__")
    )
    missing = [name for name in packages if f"`{name}`" not in layers]
    assert not missing, f"packages missing from the layer table: {missing}"
