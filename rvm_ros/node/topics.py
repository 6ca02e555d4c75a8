"""One camera's image subscription and output publishers, with their QoS event callbacks.

The subscription takes the RMW's message-lost event where the RMW has it; where it has
none, the caller estimates loss from stamp gaps (`rvm_ros.node.stamp_gaps.StampGapEstimator`).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TypeAlias, Union

from rclpy.event_handler import (
    PublisherEventCallbacks,
    QoSMessageLostInfo,
    QoSOfferedIncompatibleQoSInfo,
    QoSRequestedIncompatibleQoSInfo,
    SubscriptionEventCallbacks,
    UnsupportedEventTypeError,
)
from rclpy.lifecycle import LifecycleNode
from rclpy.qos import QoSProfile
from rclpy.subscription import Subscription
from sensor_msgs.msg import CompressedImage, Image

from rvm_ros.msg import FeatureMap, TrackedPoints
from rvm_ros.node.outputs import CameraIO
from rvm_ros.pipeline.params import NodeConfig

__all__ = ["ImageCallback", "create_camera_publishers", "subscribe_camera"]

#: A camera's image callback: the message, or its serialized CDR bytes (raw subscriptions).
ImageCallback: TypeAlias = Callable[[Union[Image, CompressedImage, bytes]], None]  # noqa: UP007


def subscribe_camera(
    node: LifecycleNode,
    msg_type: type[Image] | type[CompressedImage],
    topic: str,
    callback: ImageCallback,
    qos: QoSProfile,
    raw: bool,
    on_incompatible: Callable[[QoSRequestedIncompatibleQoSInfo], None],
    on_lost: Callable[[QoSMessageLostInfo], None],
) -> tuple[Subscription[Image | CompressedImage], bool]:
    """Subscribe one camera's image topic.

    Args:
        node: The node.
        msg_type: ``Image`` or ``CompressedImage``.
        topic: The image topic.
        callback: Called with each message (its CDR bytes when ``raw``).
        qos: The input profile.
        raw: Take serialized messages.
        on_incompatible: Called for a publisher whose QoS cannot be matched.
        on_lost: Called with the RMW's message-lost event (where the RMW has it).

    Returns:
        The subscription, and whether the RMW reports lost messages (else: estimate them).
    """
    try:
        events = SubscriptionEventCallbacks(incompatible_qos=on_incompatible, message_lost=on_lost)
        sub = node.create_subscription(
            msg_type, topic, callback, qos, event_callbacks=events, raw=raw
        )
        return sub, True
    except UnsupportedEventTypeError:
        pass
    events = SubscriptionEventCallbacks(incompatible_qos=on_incompatible)
    sub = node.create_subscription(msg_type, topic, callback, qos, event_callbacks=events, raw=raw)
    return sub, False


def create_camera_publishers(
    node: LifecycleNode,
    cam: str,
    cfg: NodeConfig,
    qos: QoSProfile,
    on_incompatible: Callable[[str, QoSOfferedIncompatibleQoSInfo], None],
) -> CameraIO:
    """The lifecycle publishers of one camera: features, and tracks / debug image when on.

    Args:
        node: The node.
        cam: Camera name (topics ``~/<cam>/features|tracks|debug_image``).
        cfg: The node's configuration (``processing.tracking``, ``publish_debug_image``).
        qos: The output profile.
        on_incompatible: Called with the resolved topic and the event for a subscriber
            this publisher cannot serve.
    """

    def events(topic: str) -> PublisherEventCallbacks:
        return PublisherEventCallbacks(
            incompatible_qos=partial(on_incompatible, node.resolve_topic_name(topic))
        )

    features, tracks, debug = (f"~/{cam}/{name}" for name in ("features", "tracks", "debug_image"))
    return CameraIO(
        features=node.create_lifecycle_publisher(
            FeatureMap, features, qos, event_callbacks=events(features)
        ),
        tracks=node.create_lifecycle_publisher(
            TrackedPoints, tracks, qos, event_callbacks=events(tracks)
        )
        if cfg.processing.tracking
        else None,
        debug=node.create_lifecycle_publisher(Image, debug, qos, event_callbacks=events(debug))
        if cfg.publish_debug_image
        else None,
    )
