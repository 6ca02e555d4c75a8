"""QoS profiles from node parameters, and plain-words messages for QoS mismatches."""

from __future__ import annotations

from rclpy.qos import (
    DurabilityPolicy,
    HistoryPolicy,
    QoSPolicyKind,
    QoSProfile,
    ReliabilityPolicy,
)

__all__ = [
    "describe_qos",
    "incompatible_publisher_message",
    "incompatible_qos_message",
    "incompatible_subscription_message",
    "make_qos",
    "policy_name",
]

_RELIABILITY = {
    "best_effort": ReliabilityPolicy.BEST_EFFORT,
    "reliable": ReliabilityPolicy.RELIABLE,
}


def make_qos(reliability: str, depth: int) -> QoSProfile:
    """A keep-last, volatile profile.

    Args:
        reliability: ``best_effort`` or ``reliable``.
        depth: History depth (>= 1).

    Raises:
        ValueError: Unknown reliability or depth < 1.
    """
    if reliability not in _RELIABILITY:
        raise ValueError(f"reliability must be best_effort or reliable, got {reliability!r}")
    if depth < 1:
        raise ValueError(f"QoS depth must be >= 1, got {depth}")
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST,
        depth=depth,
        reliability=_RELIABILITY[reliability],
        durability=DurabilityPolicy.VOLATILE,
    )


def describe_qos(profile: QoSProfile) -> str:
    """One line: ``reliability=best_effort durability=volatile history=keep_last depth=1``."""
    return (
        f"reliability={profile.reliability.name.lower()} "
        f"durability={profile.durability.name.lower()} "
        f"history={profile.history.name.lower()} depth={profile.depth}"
    )


def policy_name(kind: int) -> str:
    """Lower-case policy name of a ``QoSPolicyKind`` value (``reliability``, ...)."""
    try:
        return QoSPolicyKind(kind).name.lower()
    except ValueError:
        return f"policy {kind}"


# Remedy per direction and policy kind (other kinds: align the policy on both sides).
_REMEDIES: dict[str, dict[int, str]] = {
    "input": {
        int(QoSPolicyKind.RELIABILITY): (
            "the publisher is best_effort while this node subscribes reliable: set "
            "input_reliability:=best_effort (the default)"
        ),
        int(QoSPolicyKind.DURABILITY): (
            "the publisher is volatile while this subscription asks transient_local"
        ),
    },
    "output": {
        int(QoSPolicyKind.RELIABILITY): (
            "a subscriber asks reliable while this node publishes best_effort: set "
            "output_reliability:=reliable, or subscribe best_effort"
        ),
        int(QoSPolicyKind.DURABILITY): "a subscriber asks transient_local; subscribe volatile",
    },
}
_SIDES = {
    "input": ("a publisher", "subscribes", "No images from it will arrive."),
    "output": ("a subscriber", "publishes", "It will receive nothing."),
}


def incompatible_qos_message(direction: str, topic: str, kind: int, own: QoSProfile) -> str:
    """The one QoS-incompatibility warning, for an input or an output topic.

    Args:
        direction: ``input`` (a publisher our subscription cannot match) or ``output`` (a
            subscriber our publisher cannot serve).
        topic: Our topic.
        kind: ``last_policy_kind`` of the incompatibility event.
        own: Our subscription's / publisher's profile.
    """
    name = policy_name(kind)
    remedy = _REMEDIES[direction].get(
        kind, f"align the {name} policy of publisher and subscription"
    )
    peer, ours, effect = _SIDES[direction]
    return (
        f"incompatible QoS on {direction} topic '{topic}': {peer} cannot be matched "
        f"(policy: {name}; this node {ours} with {describe_qos(own)}). "
        f"{effect} Remedy: {remedy}."
    )


def incompatible_publisher_message(topic: str, kind: int, own: QoSProfile) -> str:
    """Warning for a publisher whose QoS our subscription cannot match."""
    return incompatible_qos_message("input", topic, kind, own)


def incompatible_subscription_message(topic: str, kind: int, own: QoSProfile) -> str:
    """Warning for a subscriber that our publisher cannot serve."""
    return incompatible_qos_message("output", topic, kind, own)
