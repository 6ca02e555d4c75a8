"""rvm_node over real rclpy: the input size defaults to the checkpoint's model card, and
another size is logged once through the node's ROS logger, naming both (issue 25)."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("rclpy")
pytest.importorskip("rvm_ros.msg")

import rclpy
from node_harness import pick_domain_id
from rclpy.context import Context
from rclpy.parameter import Parameter

from rvm_ros.checkpoint.card import ModelCard
from rvm_ros.checkpoint.random import random_model
from rvm_ros.checkpoint.safetensors import save_safetensors
from rvm_ros.node.node import RvmNode
from rvm_ros.pipeline.config import NodeConfig

pytestmark = pytest.mark.ros


def _configure(ckpt: Path, configures: int = 1, **params: int) -> list[NodeConfig | None]:
    """Configure an in-process node ``configures`` times (cleanup between); the configs."""
    ctx = Context()
    rclpy.init(context=ctx, domain_id=pick_domain_id(__name__))
    overrides = [Parameter("checkpoint", value=str(ckpt)), Parameter("backend", value="torch")]
    overrides += [Parameter(k, value=v) for k, v in params.items()]
    configs: list[NodeConfig | None] = []
    try:
        node = RvmNode(context=ctx, parameter_overrides=overrides)
        for _ in range(configures):
            node.trigger_configure()
            configs.append(node.cfg)
            node.trigger_cleanup()
        node.destroy_node()
    finally:
        rclpy.shutdown(context=ctx)
    return configs


@pytest.fixture
def carded(tmp_path: Path) -> Path:
    model = random_model("tiny", seed=4)
    path = tmp_path / "carded.safetensors"
    return save_safetensors(
        model.state_dict(), model.config, path, card=ModelCard(input_size=(32, 48))
    )


def test_node_input_size_follows_the_model_card(
    carded: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    (cfg,) = _configure(carded)
    assert cfg is not None
    assert (cfg.processing.model_height, cfg.processing.model_width) == (32, 48)
    assert "trained at" not in capfd.readouterr().err


def test_node_warns_once_through_its_logger_at_another_size(
    carded: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    configs = _configure(carded, 2, model_height=64, model_width=64)
    assert [(c.processing.model_height, c.processing.model_width) for c in configs if c] == [
        (64, 64),
        (64, 64),
    ]
    err = capfd.readouterr().err
    lines = [line for line in err.splitlines() if "trained at 32x48" in line]
    assert len(lines) == 1, err
    assert "runs at 64x64" in lines[0] and "[WARN]" in lines[0] and "[rvm]" in lines[0]
