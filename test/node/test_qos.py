"""QoS profiles from parameters and the mismatch messages."""

from __future__ import annotations

import pytest

pytest.importorskip("rclpy")

from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSPolicyKind, ReliabilityPolicy

from rvm_ros.node.qos import (
    describe_qos,
    incompatible_publisher_message,
    incompatible_subscription_message,
    make_qos,
)


def test_make_qos_and_describe() -> None:
    q = make_qos("best_effort", 3)
    assert q.reliability == ReliabilityPolicy.BEST_EFFORT
    assert q.history == HistoryPolicy.KEEP_LAST and q.depth == 3
    assert q.durability == DurabilityPolicy.VOLATILE
    assert describe_qos(q) == (
        "reliability=best_effort durability=volatile history=keep_last depth=3"
    )
    assert make_qos("reliable", 1).reliability == ReliabilityPolicy.RELIABLE


@pytest.mark.parametrize(
    ("rel", "depth", "words"), [("fast", 1, "reliability"), ("reliable", 0, "depth")]
)
def test_make_qos_rejects_bad_values(rel: str, depth: int, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        make_qos(rel, depth)


def test_mismatch_messages_name_topic_policy_and_remedy() -> None:
    msg = incompatible_publisher_message(
        "/front/image_raw", QoSPolicyKind.RELIABILITY, make_qos("reliable", 1)
    )
    assert "'/front/image_raw'" in msg and "policy: reliability" in msg
    assert "input_reliability:=best_effort" in msg
    msg = incompatible_subscription_message(
        "/rvm/front/features", QoSPolicyKind.DURABILITY, make_qos("reliable", 5)
    )
    assert "'/rvm/front/features'" in msg and "policy: durability" in msg
    assert "transient_local" in msg
    msg = incompatible_subscription_message(
        "/rvm/front/features", QoSPolicyKind.RELIABILITY, make_qos("best_effort", 5)
    )
    assert "output_reliability:=reliable" in msg
