"""The RVM perception node: a thin rclpy lifecycle shell around `rvm_ros.pipeline.Processor`.

Lifecycle:
    * ``on_configure``: declared parameters -> frozen `NodeConfig` (invalid values fail the
      transition with ``invalid parameter '<name>': ...``); publishers, subscriptions,
      diagnostics timer.
    * ``on_activate``: the encoder (backend, engine) is loaded, the inference thread starts.
    * ``on_deactivate``: the thread stops, the encoder is released.
    * ``on_cleanup`` / ``on_shutdown``: everything created in ``on_configure`` goes.

Data flow: each camera's subscription callback (executor thread) decodes the message into
an RGB array (with ``raw_subscriptions``, the default, the callback gets the serialized
CDR bytes and `rvm_ros.imaging.cdr` views the pixels in them without rclpy's
deserialisation copy) and puts it into `LatestFrameSlots` (newest frame per camera; a frame that is
replaced before it was processed counts as dropped). One inference thread takes batches
(frames of different cameras arriving within ``max_batch_wait_ms``), runs
``Processor.process`` and publishes the results with each frame's own header
(`rvm_ros.node.outputs.Outputs`: features at once; with ``tracking_thread`` the tracks
and debug image follow from a tracking thread of their own).

This class wires the parts that live beside it: `rvm_ros.node.parameters` (declaration
and the change check), `rvm_ros.node.topics` (subscriptions and publishers),
`rvm_ros.node.intake` (parsing and decoding one message), `rvm_ros.node.inference` (the
active state and the inference thread), `rvm_ros.node.diagnostics`,
`rvm_ros.node.services` and `rvm_ros.node.scene_tokens`.
"""

from __future__ import annotations

import time
from functools import partial
from typing import TYPE_CHECKING, Any

from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import SetParametersResult
from rclpy.event_handler import (
    QoSMessageLostInfo,
    QoSOfferedIncompatibleQoSInfo,
    QoSRequestedIncompatibleQoSInfo,
)
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.parameter import Parameter
from rclpy.publisher import Publisher
from rclpy.qos import QoSProfile
from rclpy.subscription import Subscription
from rclpy.timer import Timer
from sensor_msgs.msg import CompressedImage, Image
from std_srvs.srv import Trigger

from rvm_ros.node.diagnostics import (
    LOSS_HINT,
    OVERWRITE_HINT,
    NodeStats,
    Snapshot,
    summarize,
    to_diagnostic_array,
)
from rvm_ros.node.inference import ActivationError, InferenceRuntime
from rvm_ros.node.intake import decode_image, parse_image, ros_header
from rvm_ros.node.memory import retain_large_buffers
from rvm_ros.node.opencv_threads import apply_opencv_threads
from rvm_ros.node.outputs import CameraIO, Outputs
from rvm_ros.node.parameters import (
    declare_camera_parameters,
    declare_node_parameters,
    refuse_change,
)
from rvm_ros.node.qos import (
    describe_qos,
    incompatible_publisher_message,
    incompatible_subscription_message,
    make_qos,
)
from rvm_ros.node.services import answer_reset, answer_set_query_points
from rvm_ros.node.stamp_gaps import StampGapEstimator
from rvm_ros.node.topics import create_camera_publishers, subscribe_camera
from rvm_ros.pipeline.config import ConfigError
from rvm_ros.pipeline.params import NodeConfig, config_from_params, unknown_parameters
from rvm_ros.pipeline.processor import Processor
from rvm_ros.srv import SetQueryPoints
from rvm_ros.stamps import header_ns

if TYPE_CHECKING:
    from rvm_ros.imaging.image_msg import ImageError
    from rvm_ros.node.scene_tokens import SceneTokensIO

__all__ = ["RvmNode"]

SUCCESS = TransitionCallbackReturn.SUCCESS
FAILURE = TransitionCallbackReturn.FAILURE


class RvmNode(LifecycleNode):
    """The ``rvm`` lifecycle node (see the module docstring).

    Args:
        node_name: Node name (``rvm``).
        **kwargs: Passed to `rclpy.lifecycle.LifecycleNode` (namespace, context, ...;
            Any: rclpy's own keyword arguments).
    """

    def __init__(self, node_name: str = "rvm", **kwargs: Any) -> None:  # Any: rclpy's kwargs
        super().__init__(node_name, **kwargs)
        declare_node_parameters(self, self._overrides())
        self._declaring = False
        self._declare_camera_parameters()
        # Every later change is checked (and refused while configured: the values are
        # read at configure). Registered after the declarations, so that a bad value
        # given at start fails the configure transition with its name.
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.cfg: NodeConfig | None = None
        self.stats: NodeStats | None = None
        self._io: dict[str, CameraIO] = {}
        self._subs: list[Subscription[Image | CompressedImage]] = []
        # Cameras whose RMW reports no lost samples: loss estimated from stamp gaps.
        self._gap_estimators: dict[str, StampGapEstimator] = {}
        # Cameras whose RMW reports lost messages, and per camera the frames it had
        # reported lost when the camera's last frame arrived.
        self._rmw_loss: set[str] = set()
        self._lost_seen: dict[str, int] = {}
        self._qos_in: QoSProfile | None = None
        self._qos_out: QoSProfile | None = None
        self._diag_pub: Publisher[DiagnosticArray] | None = None
        self._diag_timer: Timer | None = None
        self._diag_prev: tuple[float, Snapshot] | None = None
        # Active state (set in on_activate, cleared in on_deactivate).
        self._runtime: InferenceRuntime | None = None
        self._active = False
        self._scene: SceneTokensIO | None = None  # when scene tokens are enabled
        self.create_service(Trigger, "~/reset", self._on_reset)
        self.create_service(SetQueryPoints, "~/set_query_points", self._on_set_query_points)

    # -- parameters ------------------------------------------------------------------

    def _overrides(self) -> dict[str, object]:
        """Parameter name -> value given at start (rclpy's overrides)."""
        given = getattr(self, "_parameter_overrides", {}) or {}
        return {k: getattr(v, "value", v) for k, v in given.items()}

    def _on_set_parameters(
        self,
        params: list[Parameter[Any]],  # Any: rclpy's own typing of parameter values
    ) -> SetParametersResult:
        if self._declaring:  # our own declarations (configure reports their values)
            return SetParametersResult(successful=True)
        reason = refuse_change(self.lifecycle_state, params)
        if reason is not None:
            return SetParametersResult(successful=False, reason=reason)
        return SetParametersResult(successful=True)

    def _declare_camera_parameters(self) -> None:
        self._declaring = True
        try:
            declare_camera_parameters(self)
        finally:
            self._declaring = False

    def _parameter_values(self) -> dict[str, object]:
        self._declare_camera_parameters()
        out: dict[str, object] = {}
        for name, param in self._parameters.items():
            value = param.value
            out[name] = list(value) if isinstance(value, (list, tuple)) else value
        return out

    # -- lifecycle -------------------------------------------------------------------

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Validate parameters, create publishers, subscriptions and the diagnostics timer."""
        given = self._overrides()
        given.setdefault("cameras", self.get_parameter("cameras").value)
        unknown = [n for n in unknown_parameters(given) if n != "start_type_description_service"]
        if unknown:
            self.get_logger().warning(
                f"ignoring unknown parameter(s): {', '.join(unknown)} (typo? see config/rvm.yaml)"
            )
        try:
            cfg = config_from_params(self._parameter_values(), self.get_logger().warning)
        except ConfigError as exc:
            self.get_logger().error(f"invalid parameter '{exc.param}': {exc.message}")
            return FAILURE
        self.cfg = cfg
        self.stats = NodeStats(cfg.cameras)
        if cfg.retain_large_buffers and not retain_large_buffers():
            self.get_logger().warning(
                "retain_large_buffers: the C library has no glibc mallopt; image buffers "
                "are mapped afresh per frame (more CPU per frame)"
            )
        apply_opencv_threads(cfg.opencv_threads)  # process-wide, like retain_large_buffers
        self._qos_in = make_qos(cfg.input_reliability, cfg.input_depth)
        self._qos_out = make_qos(cfg.output_reliability, cfg.output_depth)
        for cam in cfg.cameras:
            self._io[cam] = create_camera_publishers(
                self, cam, cfg, self._qos_out, self._on_incompatible_subscription
            )
            self._subscribe(cam, cfg, self._qos_in)
        self.get_logger().info(
            f"outputs: ~/<camera>/features|tracks|debug_image with {describe_qos(self._qos_out)}"
        )
        if cfg.scene_tokens.enabled:
            from rvm_ros.node.scene_tokens import SceneTokensIO

            self._scene = SceneTokensIO(self, cfg, self._qos_in, self._qos_out)
        self._diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._diag_prev = None
        self._diag_timer = self.create_timer(cfg.diagnostics_period_s, self._publish_diagnostics)
        return super().on_configure(state)

    def _subscribe(self, cam: str, cfg: NodeConfig, qos: QoSProfile) -> None:
        """One camera's subscription, with the message-lost event where the RMW has it
        (else a stamp-gap estimator); the log says how it is taken."""
        topic = cfg.camera_topics[cam]
        msg_type = CompressedImage if cfg.camera_transports[cam] == "compressed" else Image
        sub, rmw_loss = subscribe_camera(
            self,
            msg_type,
            topic,
            partial(self.on_image, cam),
            qos,
            cfg.raw_subscriptions,
            partial(self._on_incompatible_publisher, self.resolve_topic_name(topic)),
            partial(self._on_lost, cam),
        )
        # Stamp gaps at the camera rate count every frame that never reached the callback;
        # the message-lost event says which of them transport lost, the rest were
        # overwritten in the subscription queue (rmw exposes no queue-overwrite status).
        self._gap_estimators[cam] = StampGapEstimator()
        loss = "RMW message-lost event; queue overwrites from stamp gaps"
        if rmw_loss:
            self._rmw_loss.add(cam)
        else:
            assert self.stats is not None
            self.stats.estimate_loss(cam)
            loss = "estimated from stamp gaps (the RMW reports no lost samples)"
        self._subs.append(sub)
        self.get_logger().info(
            f"camera {cam}: subscribing {sub.topic_name} ({msg_type.__name__}, "
            f"{describe_qos(qos)}) as "
            f"{'serialized CDR (zero-copy)' if cfg.raw_subscriptions else 'messages'}; "
            f"lost frames: {loss}"
        )

    def _transport_loss_since_last_frame(self, cam: str) -> bool:
        """Whether the RMW's message-lost event reported frames of ``cam`` since its last
        frame arrived (a long stamp gap is then a stalled transport, not a pause)."""
        stats = self.stats
        if stats is None or cam not in self._rmw_loss:
            return False
        lost = stats.lost_count(cam)
        before, self._lost_seen[cam] = self._lost_seen.get(cam, 0), lost
        return lost > before

    def _count_gap(self, cam: str, count: int) -> None:
        """``count`` frames missing before this one in ``cam``'s stamp sequence."""
        stats, cfg = self.stats, self.cfg
        if stats is None or cfg is None or count <= 0:
            return
        if cam in stats.estimated_cameras():
            self._count_lost(cam, count, estimated=True)
        elif stats.gap(cam, count):
            self.get_logger().warning(
                f"camera {cam}: frame(s) from {cfg.camera_topics[cam]} overwritten in the "
                f"subscription queue before the node read them: {OVERWRITE_HINT} "
                "[logged once; counted in /diagnostics as overwritten_in_queue]"
            )

    def _on_lost(self, cam: str, info: QoSMessageLostInfo) -> None:
        self._count_lost(cam, int(info.total_count_change), estimated=False)

    def _count_lost(self, cam: str, count: int, estimated: bool) -> None:
        stats, cfg = self.stats, self.cfg
        if stats is None or cfg is None or count <= 0:
            return
        if stats.lost(cam, count, estimated):
            how = " (estimated from stamp gaps)" if estimated else ""
            self.get_logger().warning(
                f"camera {cam}: {count} frame(s) from {cfg.camera_topics[cam]} lost in "
                f"transport{how}: {LOSS_HINT} [logged once; counted in /diagnostics]"
            )

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Load the encoder and start the inference thread."""
        cfg, stats = self.cfg, self.stats
        assert cfg is not None and stats is not None
        try:
            runtime = InferenceRuntime.load(cfg, self._io, stats, self._scene, self.get_logger())
        except ActivationError as exc:
            self.get_logger().error(str(exc))
            return FAILURE
        self.get_logger().info(f"runtime: {runtime.description}")
        self._runtime = runtime
        self._active = True
        runtime.start()
        return super().on_activate(state)

    def release(self) -> None:
        """Stop the inference thread and release the runtime (safe to call repeatedly)."""
        self._release_runtime()

    def _release_runtime(self) -> None:
        self._active = False
        runtime, self._runtime = self._runtime, None
        if runtime is not None:
            runtime.stop()

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Stop the inference thread and release the encoder."""
        self._release_runtime()
        return super().on_deactivate(state)

    def _destroy_entities(self) -> None:
        for sub in self._subs:
            self.destroy_subscription(sub)
        self._subs = []
        self._gap_estimators = {}
        self._rmw_loss = set()
        self._lost_seen = {}
        for io in self._io.values():
            for pub in (io.features, io.tracks, io.debug):
                if pub is not None:
                    self.destroy_lifecycle_publisher(pub)
        self._io = {}
        if self._scene is not None:
            self._scene.destroy()
            self._scene = None
        if self._diag_timer is not None:
            self.destroy_timer(self._diag_timer)
            self._diag_timer = None
        if self._diag_pub is not None:
            self.destroy_publisher(self._diag_pub)
            self._diag_pub = None
        self.cfg = None
        self.stats = None

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Destroy what ``on_configure`` created."""
        self._destroy_entities()
        return super().on_cleanup(state)

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Release everything, from whatever state."""
        self._release_runtime()
        self._destroy_entities()
        return super().on_shutdown(state)

    def on_error(self, _state: LifecycleState) -> TransitionCallbackReturn:
        """Release everything after an error in a transition."""
        self._release_runtime()
        self._destroy_entities()
        return SUCCESS

    @property
    def lifecycle_state(self) -> str:
        """Label of the current lifecycle state (``unconfigured``, ``active``, ...)."""
        return str(self._state_machine.current_state[1])

    @property
    def is_active(self) -> bool:
        """Whether the runtime is loaded and frames are processed."""
        return self._active

    @property
    def runtime(self) -> InferenceRuntime | None:
        """The active state (runtime, processor, slots, outputs, threads); None when inactive."""
        return self._runtime

    @property
    def processor(self) -> Processor | None:
        """The processing core while active, else None."""
        return self._runtime.processor if self._runtime is not None else None

    @property
    def outputs(self) -> Outputs | None:
        """The publishing of results while active, else None."""
        return self._runtime.outputs if self._runtime is not None else None

    @property
    def runtime_text(self) -> str:
        """What runs the model (backend, precision, device, model, input), or ``not loaded``."""
        return self._runtime.description if self._runtime is not None else "not loaded"

    # -- input -----------------------------------------------------------------------

    def on_image(self, cam: str, msg: Image | CompressedImage | bytes) -> None:
        """One image of ``cam`` (its subscription's callback, on the executor thread).

        Args:
            cam: The camera.
            msg: The message, or its serialized CDR bytes (raw subscriptions).
        """
        from rvm_ros.imaging.image_msg import ImageError
        from rvm_ros.pipeline.types import FrameInput

        stats, cfg, runtime = self.stats, self.cfg, self._runtime
        if stats is None or cfg is None:
            return
        stats.received(cam)
        estimator = self._gap_estimators.get(cam)
        if not self._active or runtime is None:
            stats.ignored(cam)
            if estimator is not None:
                estimator.restart()
            return
        compressed = cfg.camera_transports[cam] == "compressed"
        try:
            parsed = parse_image(msg, compressed)
        except ImageError as exc:  # no stamp: the next gap must not count this frame
            if estimator is not None:
                estimator.restart()
            self._reject(cam, exc)
            return
        if estimator is not None:
            if not estimator.started:
                stats.first_frame(cam)
            stalled = self._transport_loss_since_last_frame(cam)
            self._count_gap(cam, estimator.update(header_ns(parsed.header), stalled))
        try:
            image = decode_image(parsed, compressed, cfg.processing.max_image_pixels)
        except ImageError as exc:
            self._reject(cam, exc)
            return
        header = ros_header(parsed.header)  # parsed from CDR: the publishers need a Header
        dropped = runtime.slots.put(FrameInput(cam, header_ns(header), header, image))
        if dropped:
            stats.dropped(cam, int(dropped))

    def _reject(self, cam: str, exc: ImageError) -> None:
        """Count a refused image of ``cam`` (logged once per distinct message and period)."""
        stats, cfg = self.stats, self.cfg
        if stats is None or cfg is None:
            return
        if stats.rejected(cam, exc.cause, str(exc)):
            self.get_logger().warning(
                f"camera {cam}: rejected an image from {cfg.camera_topics[cam]} "
                f"({exc.cause}): {exc} [each distinct message logged once per "
                "diagnostics period; counted in /diagnostics]"
            )

    def _on_incompatible_publisher(
        self, topic: str, event: QoSRequestedIncompatibleQoSInfo
    ) -> None:
        if self.stats is not None:
            self.stats.qos_incompatible(topic)
        if self._qos_in is not None:
            self.get_logger().warning(
                incompatible_publisher_message(topic, event.last_policy_kind, self._qos_in)
            )

    def _on_incompatible_subscription(
        self, topic: str, event: QoSOfferedIncompatibleQoSInfo
    ) -> None:
        if self.stats is not None:
            self.stats.qos_incompatible(topic)
        if self._qos_out is not None:
            self.get_logger().warning(
                incompatible_subscription_message(topic, event.last_policy_kind, self._qos_out)
            )

    # -- services --------------------------------------------------------------------

    def _on_reset(self, _request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        cameras = self.cfg.cameras if self.cfg else ()
        out: Trigger.Response = answer_reset(self.processor, cameras, self.get_logger(), response)
        return out

    def _on_set_query_points(
        self, request: SetQueryPoints.Request, response: SetQueryPoints.Response
    ) -> SetQueryPoints.Response:
        out: SetQueryPoints.Response = answer_set_query_points(self.processor, request, response)
        return out

    # -- diagnostics -----------------------------------------------------------------

    def _publish_diagnostics(self) -> None:
        stats, pub = self.stats, self._diag_pub
        if stats is None or pub is None:
            return
        now = time.monotonic()
        snap = stats.snapshot()
        outputs = self.outputs
        if outputs is not None:
            snap["tracking_busy"] = outputs.tracking_busy()
        stats.new_period()
        prev_t, prev = self._diag_prev if self._diag_prev else (now, None)
        period = now - prev_t if prev is not None else 0.0
        name = self.get_fully_qualified_name()
        statuses = summarize(snap, prev, period, name, self.runtime_text, self._active)
        self._diag_prev = (now, snap)
        if self._scene is not None:
            statuses.append(self._scene.status(name))
        pub.publish(to_diagnostic_array(statuses, self.get_clock().now().to_msg()))
