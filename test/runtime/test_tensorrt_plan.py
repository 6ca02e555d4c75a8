"""TensorRT plan sidecars: written with the plan, read back, refused when they do not match."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from rvm_ros.runtime.backends.tensorrt.plan import (
    PlanError,
    PlanMismatch,
    PlanSidecar,
    check_compatible,
    is_plan_path,
    read_sidecar,
    sidecar_path,
    write_plan,
)

PLAN = b"serialized engine bytes"


def _sidecar(**changes: Any) -> PlanSidecar:
    base = PlanSidecar(
        model_id="tiny-0123456789ab",
        model_config='{"dim": 64}',
        dim=64,
        patch_size=16,
        height=256,
        width=256,
        tokens=257,
        precision="fp16",
        min_batch=1,
        opt_batch=4,
        max_batch=4,
        inputs=("frames", "state"),
        outputs=("features", "new_state"),
        onnx_sha256="ab" * 32,
        plan_sha256=hashlib.sha256(PLAN).hexdigest(),
        tensorrt_version="10.3.0",
        gpu_name="Orin",
        compute_capability="8.7",
        build_flags={"version_compatible": False, "hardware_compatibility": "none"},
        build_check={"passed": True, "min_cosine": 0.9999},
    )
    return replace(base, **changes)


def test_plan_and_sidecar_round_trip(tmp_path: Path) -> None:
    plan = tmp_path / "m.plan"
    write_plan(plan, PLAN, _sidecar())
    assert plan.read_bytes() == PLAN
    assert sidecar_path(plan) == tmp_path / "m.plan.json"
    assert read_sidecar(plan) == _sidecar()
    assert read_sidecar(plan).check_passed
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.plan", "m.plan.json"]  # no temps


def test_replaced_plan_is_refused(tmp_path: Path) -> None:
    plan = tmp_path / "m.plan"
    write_plan(plan, PLAN, _sidecar())
    plan.write_bytes(b"another engine")
    with pytest.raises(PlanError, match="does not match its sidecar"):
        read_sidecar(plan)


def test_plan_without_sidecar_is_refused(tmp_path: Path) -> None:
    plan = tmp_path / "m.engine"
    plan.write_bytes(PLAN)
    with pytest.raises(PlanError, match=r"no sidecar m\.engine\.json.*export --format engine"):
        read_sidecar(plan)
    with pytest.raises(PlanError, match="not found"):
        read_sidecar(tmp_path / "missing.plan")


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda d: "{not json", "not JSON"),
        (lambda d: json.dumps([1]), "JSON object"),
        (lambda d: json.dumps({**d, "format": 99}), "format 99"),
        (lambda d: json.dumps({k: v for k, v in d.items() if k != "gpu_name"}), "gpu_name"),
        (lambda d: json.dumps({**d, "inputs": "frames"}), "inputs must be a list"),
        (lambda d: json.dumps({**d, "max_batch": "4"}), "max_batch must be an integer"),
        (lambda d: json.dumps({**d, "tensorrt_version": 10}), "tensorrt_version must be"),
    ],
)
def test_damaged_sidecar_is_a_clear_error(tmp_path: Path, edit: Any, match: str) -> None:
    plan = tmp_path / "m.plan"
    write_plan(plan, PLAN, _sidecar())
    side = sidecar_path(plan)
    side.write_text(edit(json.loads(side.read_text())))
    with pytest.raises(PlanError, match=match):
        read_sidecar(plan)


HERE = {"tensorrt_version": "10.3.0", "gpu_name": "Orin", "compute_capability": "8.7"}


@pytest.mark.parametrize(
    ("flags", "here", "match"),
    [
        ({}, {}, None),
        ({}, {"tensorrt_version": "10.4.0"}, "built with TensorRT 10.3.0"),
        ({"version_compatible": True}, {"tensorrt_version": "10.4.0"}, None),
        ({"version_compatible": True}, {"tensorrt_version": "10.2.0"}, "TensorRT 10.3.0"),
        ({"version_compatible": True}, {"tensorrt_version": "11.0.0"}, "TensorRT 10.3.0"),
        ({}, {"gpu_name": "RTX 4090", "compute_capability": "8.9"}, "built for Orin"),
        (
            {"hardware_compatibility": "ampere_plus"},
            {"gpu_name": "RTX 4090", "compute_capability": "8.9"},
            None,
        ),
        (
            {"hardware_compatibility": "ampere_plus"},
            {"gpu_name": "T4", "compute_capability": "7.5"},
            "built for Orin",
        ),
        (
            {"hardware_compatibility": "same_compute_capability"},
            {"gpu_name": "Orin NX"},
            None,
        ),
        (
            {"hardware_compatibility": "same_compute_capability"},
            {"gpu_name": "H100", "compute_capability": "9.0"},
            "built for Orin",
        ),
    ],
)
def test_compatibility_with_this_machine(
    flags: dict[str, Any], here: dict[str, str], match: str | None
) -> None:
    sidecar = _sidecar(build_flags={"version_compatible": False, **flags})
    args = {**HERE, **here}
    if match is None:
        check_compatible(sidecar, "m.plan", **args)
        return
    with pytest.raises(PlanMismatch, match=match) as info:
        check_compatible(sidecar, "m.plan", **args)
    assert "rebuild it on this machine with `rvm-ros export --format engine`" in str(info.value)


def test_size_mismatch_is_refused() -> None:
    with pytest.raises(PlanMismatch, match="takes 256x256 frames, not 480x640"):
        check_compatible(_sidecar(), "m.plan", **HERE, height=480, width=640)


@pytest.mark.parametrize(
    ("path", "is_plan"),
    [
        ("a.plan", True),
        (Path("b.engine"), True),
        ("c.onnx", False),
        ("random:S", False),
        (3, False),
    ],
)
def test_plan_paths(path: object, is_plan: bool) -> None:
    assert is_plan_path(path) is is_plan
