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
"""

from __future__ import annotations

import threading
import time
from functools import partial
from typing import Any

from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import ParameterDescriptor, SetParametersResult
from rclpy.event_handler import (
    PublisherEventCallbacks,
    QoSMessageLostInfo,
    QoSRequestedIncompatibleQoSInfo,
    SubscriptionEventCallbacks,
    UnsupportedEventTypeError,
)
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.parameter import Parameter
from rclpy.publisher import Publisher
from rclpy.qos import QoSProfile
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header
from std_srvs.srv import Trigger

from rvm_ros.msg import FeatureMap, TrackedPoints
from rvm_ros.node.diagnostics import (
    LOSS_HINT,
    NodeStats,
    StampGapEstimator,
    summarize,
    to_diagnostic_array,
)
from rvm_ros.node.memory import retain_large_buffers
from rvm_ros.node.outputs import CameraIO, Outputs
from rvm_ros.node.parameters import RUNTIME_FREE, parameter_descriptor
from rvm_ros.node.qos import (
    describe_qos,
    incompatible_publisher_message,
    incompatible_subscription_message,
    make_qos,
)
from rvm_ros.node.services import answer_reset, answer_set_query_points
from rvm_ros.pipeline.config import ConfigError
from rvm_ros.pipeline.params import (
    CAMERA_NAME,
    PARAMS,
    NodeConfig,
    camera_param_defaults,
    check_parameter,
    config_from_params,
    unknown_parameters,
)
from rvm_ros.srv import SetQueryPoints
from rvm_ros.stamps import header_ns

__all__ = ["RvmNode"]

SUCCESS = TransitionCallbackReturn.SUCCESS
FAILURE = TransitionCallbackReturn.FAILURE


class RvmNode(LifecycleNode):
    """The ``rvm`` lifecycle node (see the module docstring).

    Args:
        node_name: Node name (``rvm``).
        **kwargs: Passed to `rclpy.lifecycle.LifecycleNode` (namespace, context, ...).
    """

    def __init__(self, node_name: str = "rvm", **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        overrides = getattr(self, "_parameter_overrides", {}) or {}
        for spec in PARAMS:
            given = overrides.get(spec.name)
            self.declare_parameter(
                spec.name,
                spec.default,
                parameter_descriptor(spec, None if given is None else given.value),
            )
        self._declaring = False
        self._declare_camera_parameters()
        # Every later change is checked (and refused while configured: the values are
        # read at configure). Registered after the declarations, so that a bad value
        # given at start fails the configure transition with its name.
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.cfg: NodeConfig | None = None
        self.stats: NodeStats | None = None
        self._io: dict[str, CameraIO] = {}
        self._subs: list[Any] = []
        # Cameras whose RMW reports no lost samples: loss estimated from stamp gaps.
        self._gap_estimators: dict[str, StampGapEstimator] = {}
        self._qos_in: QoSProfile | None = None
        self._qos_out: QoSProfile | None = None
        self._diag_pub: Publisher[DiagnosticArray] | None = None
        self._diag_timer: Any = None
        self._diag_prev: tuple[float, dict[str, Any]] | None = None
        # Active state (set in on_activate, cleared in on_deactivate).
        self._encoder: Any = None
        self._processor: Any = None
        self._slots: Any = None
        self._stop = threading.Event()
        self._worker: threading.Thread | None = None
        self._outputs: Outputs | None = None
        self._active = False
        self._runtime_text = "not loaded"
        self._scene: Any = None  # rvm_ros.node.scene_tokens.SceneTokensIO when enabled
        self.create_service(Trigger, "~/reset", self._on_reset)
        self.create_service(SetQueryPoints, "~/set_query_points", self._on_set_query_points)

    # -- parameters ------------------------------------------------------------------

    def _on_set_parameters(self, params: list[Parameter[Any]]) -> SetParametersResult:
        if self._declaring:  # our own declarations (configure reports their values)
            return SetParametersResult(successful=True)
        state = self.lifecycle_state
        for param in params:
            if param.name in RUNTIME_FREE:
                continue
            if state not in ("unconfigured",):
                return SetParametersResult(
                    successful=False,
                    reason=f"parameter '{param.name}' is read when the node is configured "
                    f"and cannot change while it is {state}: deactivate and clean up the "
                    "node (ros2 lifecycle set <node> cleanup), set it, configure again",
                )
            value = param.value
            value = list(value) if isinstance(value, (list, tuple)) else value
            try:
                check_parameter(param.name, value)
            except ConfigError as exc:
                return SetParametersResult(
                    successful=False, reason=f"invalid parameter '{exc.param}': {exc.message}"
                )
        return SetParametersResult(successful=True)

    def _declare_camera_parameters(self) -> None:
        self._declaring = True
        try:
            self._declare_camera_parameters_now()
        finally:
            self._declaring = False

    def _declare_camera_parameters_now(self) -> None:
        cams = self.get_parameter("cameras").value
        if not isinstance(cams, (list, tuple)):
            return  # on_configure reports it
        for cam in cams:
            if not isinstance(cam, str) or not CAMERA_NAME.match(cam):
                continue  # on_configure names the bad camera name
            tname = f"cameras.{cam}.transport"
            if not self.has_parameter(tname):
                self.declare_parameter(
                    tname,
                    "raw",
                    ParameterDescriptor(
                        description=f"Transport of camera {cam}: raw | compressed",
                        dynamic_typing=True,
                    ),
                )
            transport = self.get_parameter(tname).value
            name = f"cameras.{cam}.topic"
            if not self.has_parameter(name):
                default = camera_param_defaults(cam, str(transport))["topic"]
                self.declare_parameter(
                    name,
                    default,
                    ParameterDescriptor(
                        description=f"Input image topic of camera {cam}", dynamic_typing=True
                    ),
                )
            scene_params: tuple[tuple[str, str | None, str], ...] = (
                ("camera_info_topic", f"/{cam}/camera_info", "CameraInfo topic"),
                ("translation", None, "static camera-to-base translation [x, y, z] (m)"),
                ("rotation", None, "static camera-to-base quaternion [x, y, z, w]"),
            )
            for suffix, scene_default, text in scene_params:
                if not self.has_parameter(f"cameras.{cam}.{suffix}"):
                    self.declare_parameter(
                        f"cameras.{cam}.{suffix}",
                        scene_default,
                        ParameterDescriptor(
                            description=f"Scene tokens: {text} of camera {cam}",
                            dynamic_typing=True,
                        ),
                    )

    def _parameter_values(self) -> dict[str, Any]:
        self._declare_camera_parameters()
        out: dict[str, Any] = {}
        for name, param in self._parameters.items():
            value = param.value
            out[name] = list(value) if isinstance(value, (list, tuple)) else value
        return out

    # -- lifecycle -------------------------------------------------------------------

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Validate parameters, create publishers, subscriptions and the diagnostics timer."""
        given = {
            k: getattr(v, "value", v)
            for k, v in (getattr(self, "_parameter_overrides", {}) or {}).items()
        }
        given.setdefault("cameras", self.get_parameter("cameras").value)
        unknown = [n for n in unknown_parameters(given) if n != "start_type_description_service"]
        if unknown:
            self.get_logger().warning(
                f"ignoring unknown parameter(s): {', '.join(unknown)} (typo? see config/rvm.yaml)"
            )
        try:
            cfg = config_from_params(self._parameter_values())
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
        self._qos_in = make_qos(cfg.input_reliability, cfg.input_depth)
        self._qos_out = make_qos(cfg.output_reliability, cfg.output_depth)
        log = self.get_logger()
        for cam in cfg.cameras:
            self._io[cam] = self._make_publishers(cam, cfg)
            topic = cfg.camera_topics[cam]
            transport = cfg.camera_transports[cam]
            msg_type = CompressedImage if transport == "compressed" else Image
            sub, loss = self._subscribe(cam, msg_type, topic, cfg.raw_subscriptions)
            self._subs.append(sub)
            log.info(
                f"camera {cam}: subscribing {sub.topic_name} ({msg_type.__name__}, "
                f"{describe_qos(self._qos_in)}) as "
                f"{'serialized CDR (zero-copy)' if cfg.raw_subscriptions else 'messages'}; "
                f"lost frames: {loss}"
            )
        log.info(
            f"outputs: ~/<camera>/features|tracks|debug_image with {describe_qos(self._qos_out)}"
        )
        if cfg.scene_tokens.enabled:
            from rvm_ros.node.scene_tokens import SceneTokensIO

            self._scene = SceneTokensIO(self, cfg, self._qos_in, self._qos_out)
        self._diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._diag_prev = None
        self._diag_timer = self.create_timer(cfg.diagnostics_period_s, self._publish_diagnostics)
        return super().on_configure(state)

    def _subscribe(self, cam: str, msg_type: Any, topic: str, raw: bool) -> tuple[Any, str]:
        """One camera's subscription, with the message-lost event where the RMW has it
        (else a stamp-gap estimator); returns it and how loss is counted."""
        incompatible = partial(self._on_incompatible_publisher, self.resolve_topic_name(topic))
        callback = partial(self._on_image, cam)
        qos = self._qos_in
        assert qos is not None
        try:
            sub = self.create_subscription(
                msg_type,
                topic,
                callback,
                qos,
                event_callbacks=SubscriptionEventCallbacks(
                    incompatible_qos=incompatible, message_lost=partial(self._on_lost, cam)
                ),
                raw=raw,
            )
            return sub, "RMW message-lost event"
        except UnsupportedEventTypeError:
            pass
        sub = self.create_subscription(
            msg_type,
            topic,
            callback,
            qos,
            event_callbacks=SubscriptionEventCallbacks(incompatible_qos=incompatible),
            raw=raw,
        )
        self._gap_estimators[cam] = StampGapEstimator()
        assert self.stats is not None
        self.stats.estimate_loss(cam)
        return sub, "estimated from stamp gaps (the RMW reports no lost samples)"

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

    def _make_publishers(self, cam: str, cfg: NodeConfig) -> CameraIO:
        assert self._qos_out is not None
        qos = self._qos_out

        def events(topic: str) -> PublisherEventCallbacks:
            return PublisherEventCallbacks(
                incompatible_qos=partial(
                    self._on_incompatible_subscription, self.resolve_topic_name(topic)
                )
            )

        features = self.create_lifecycle_publisher(
            FeatureMap, f"~/{cam}/features", qos, event_callbacks=events(f"~/{cam}/features")
        )
        tracks = None
        if cfg.processing.tracking:
            tracks = self.create_lifecycle_publisher(
                TrackedPoints, f"~/{cam}/tracks", qos, event_callbacks=events(f"~/{cam}/tracks")
            )
        debug = None
        if cfg.publish_debug_image:
            debug = self.create_lifecycle_publisher(
                Image, f"~/{cam}/debug_image", qos, event_callbacks=events(f"~/{cam}/debug_image")
            )
        return CameraIO(features, tracks, debug)

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Load the encoder and start the inference thread."""
        from rvm_ros.pipeline import LatestFrameSlots, Processor
        from rvm_ros.runtime import create_encoder

        cfg = self.cfg
        assert cfg is not None
        pc = cfg.processing
        try:
            encoder = create_encoder(
                cfg.checkpoint,
                backend=cfg.backend,
                precision=cfg.precision,
                device=cfg.device or None,
                height=pc.model_height,
                width=pc.model_width,
                max_batch=len(cfg.cameras),
                tensorrt_options={"accept_build_error": cfg.tensorrt_accept_build_error},
            )
        except Exception as exc:  # the message names the checkpoint / backend problem
            self.get_logger().error(f"cannot load the runtime: {type(exc).__name__}: {exc}")
            return FAILURE
        try:
            processor = Processor(pc, encoder, defer_tracking=cfg.tracking_thread)
        except Exception as exc:
            encoder.close()
            self.get_logger().error(f"cannot create the processor: {type(exc).__name__}: {exc}")
            return FAILURE
        info = encoder.info
        self._runtime_text = (
            f"{info.backend} {info.precision} on {info.device}, model {info.model_id}, "
            f"input {info.height}x{info.width} ({info.reason})"
        )
        self.get_logger().info(f"runtime: {self._runtime_text}")
        self._encoder = encoder
        self._processor = processor
        self._slots = LatestFrameSlots(cfg.cameras)
        self._stop.clear()
        assert self.stats is not None
        self._outputs = Outputs(self._io, self.stats, self.get_logger())
        if processor.defer_tracking:
            self._outputs.start_tracking(processor)
        self._worker = threading.Thread(target=self._run_worker, name="rvm-inference", daemon=True)
        self._active = True
        self._worker.start()
        return super().on_activate(state)

    def release(self) -> None:
        """Stop the inference thread and release the runtime (safe to call repeatedly)."""
        self._release_runtime()

    def _release_runtime(self) -> None:
        self._active = False
        self._stop.set()
        if self._slots is not None:
            self._slots.wake()
        if self._worker is not None:
            self._worker.join(timeout=30.0)
            if self._worker.is_alive():
                self.get_logger().error("inference thread did not stop within 30 s")
        self._worker = None
        if self._outputs is not None:
            self._outputs.stop()
        self._outputs = None
        if self._slots is not None and self.stats is not None:
            # Frames still waiting are never processed: they count as drops.
            for cam, c in self._slots.counters().items():
                pending = c.received - c.taken - c.dropped
                if pending > 0 and cam in self.stats.cameras:
                    self.stats.dropped(cam, pending)
        self._processor = None
        self._slots = None
        if self._encoder is not None:
            self._encoder.close()
        self._encoder = None
        self._runtime_text = "not loaded"

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Stop the inference thread and release the encoder."""
        self._release_runtime()
        return super().on_deactivate(state)

    def _destroy_entities(self) -> None:
        for sub in self._subs:
            self.destroy_subscription(sub)
        self._subs = []
        self._gap_estimators = {}
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

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
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

    # -- input -----------------------------------------------------------------------

    def _on_image(self, cam: str, msg: Any) -> None:
        """One image of ``cam``: a message, or its serialized bytes (raw subscriptions)."""
        from rvm_ros.imaging.cdr import parse_compressed_image_cdr, parse_image_cdr
        from rvm_ros.imaging.compressed import compressed_to_array
        from rvm_ros.imaging.image_msg import ImageError, image_to_array
        from rvm_ros.pipeline import FrameInput

        stats, cfg, slots = self.stats, self.cfg, self._slots
        if stats is None or cfg is None:
            return
        stats.received(cam)
        if not self._active or slots is None:
            stats.ignored(cam)
            return
        compressed = cfg.camera_transports[cam] == "compressed"
        try:
            if isinstance(msg, bytes):
                msg = parse_compressed_image_cdr(msg) if compressed else parse_image_cdr(msg)
            estimator = self._gap_estimators.get(cam)
            if estimator is not None:
                self._count_lost(cam, estimator.update(header_ns(msg.header)), estimated=True)
            if compressed:
                image = compressed_to_array(msg, cfg.processing.max_image_pixels)
            else:
                image = image_to_array(msg, cfg.processing.max_image_pixels)
        except ImageError as exc:
            if stats.rejected(cam, exc.cause, str(exc)):
                self.get_logger().warning(
                    f"camera {cam}: rejected an image from {cfg.camera_topics[cam]} "
                    f"({exc.cause}): {exc} [each distinct message logged once per "
                    "diagnostics period; counted in /diagnostics]"
                )
            return
        header = msg.header
        if not isinstance(header, Header):  # parsed from CDR: the publishers need a Header
            header = Header(frame_id=header.frame_id)
            header.stamp.sec, header.stamp.nanosec = msg.header.stamp.sec, msg.header.stamp.nanosec
        frame = FrameInput(cam, header_ns(header), header, image)
        dropped = slots.put(frame)
        if dropped:
            stats.dropped(cam, int(dropped))

    def _on_incompatible_publisher(
        self, topic: str, event: QoSRequestedIncompatibleQoSInfo
    ) -> None:
        if self.stats is not None:
            self.stats.qos_incompatible(topic)
        if self._qos_in is not None:
            self.get_logger().warning(
                incompatible_publisher_message(topic, event.last_policy_kind, self._qos_in)
            )

    def _on_incompatible_subscription(self, topic: str, event: Any) -> None:
        if self.stats is not None:
            self.stats.qos_incompatible(topic)
        if self._qos_out is not None:
            self.get_logger().warning(
                incompatible_subscription_message(topic, event.last_policy_kind, self._qos_out)
            )

    # -- inference thread ------------------------------------------------------------

    def _run_worker(self) -> None:
        try:
            self._worker_loop()
        except Exception as exc:  # never die silently: say so in the log and diagnostics
            if self.stats is not None:
                self.stats.error("inference_thread_died")
            self.get_logger().error(
                f"the inference thread stopped: {type(exc).__name__}: {exc}; no frames will be "
                "processed until the node is deactivated and activated again"
            )

    def _worker_loop(self) -> None:
        cfg, slots, stats, processor = self.cfg, self._slots, self.stats, self._processor
        outputs = self._outputs
        assert cfg is not None and slots is not None and stats is not None
        assert processor is not None and outputs is not None
        wait_s = cfg.processing.max_batch_wait_ms / 1000.0
        errors_logged = 0
        while not self._stop.is_set():
            batch = slots.wait_batch(wait_s, self._stop)
            if not batch or self._stop.is_set():
                continue
            t0 = time.perf_counter()
            try:
                results = processor.process(batch)
            except Exception as exc:
                errors_logged += 1
                if errors_logged <= 5:
                    self.get_logger().error(
                        f"processing step failed for cameras "
                        f"{[f.camera for f in batch]}: {type(exc).__name__}: {exc}"
                        + (" [further failures are only counted]" if errors_logged == 5 else "")
                    )
                for f in batch:
                    stats.skipped(f.camera, "step_error")
                continue
            stats.step(time.perf_counter() - t0, len(batch))
            frames = {f.camera: f for f in batch}
            for res in results:
                try:
                    outputs.publish_result(res, frames.get(res.camera))
                except Exception as exc:  # keep the thread alive; say what failed, once
                    if stats.error("publish_error"):
                        self.get_logger().error(
                            f"camera {res.camera}: publishing the result failed: "
                            f"{type(exc).__name__}: {exc} [logged once; counted in /diagnostics]"
                        )
            if self._scene is not None:
                try:
                    self._scene.publish_step(results, batch)
                except Exception as exc:
                    if stats.error("scene_tokens_error"):
                        self.get_logger().error(
                            f"publishing scene tokens failed: {type(exc).__name__}: {exc} "
                            "[logged once; counted in /diagnostics]"
                        )

    # -- services --------------------------------------------------------------------

    def _on_reset(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        cameras = self.cfg.cameras if self.cfg else ()
        out: Trigger.Response = answer_reset(self._processor, cameras, self.get_logger(), response)
        return out

    def _on_set_query_points(
        self, request: SetQueryPoints.Request, response: SetQueryPoints.Response
    ) -> SetQueryPoints.Response:
        out: SetQueryPoints.Response = answer_set_query_points(self._processor, request, response)
        return out

    # -- diagnostics -----------------------------------------------------------------

    def _publish_diagnostics(self) -> None:
        stats, pub = self.stats, self._diag_pub
        if stats is None or pub is None:
            return
        now = time.monotonic()
        snap = stats.snapshot()
        if self._outputs is not None:
            snap["tracking_busy"] = self._outputs.tracking_busy()
        stats.new_period()
        prev_t, prev = self._diag_prev if self._diag_prev else (now, None)
        period = now - prev_t if prev is not None else 0.0
        statuses = summarize(
            snap,
            prev,
            period,
            self.get_fully_qualified_name(),
            self._runtime_text,
            self._active,
        )
        self._diag_prev = (now, snap)
        if self._scene is not None:
            statuses.append(self._scene.status(self.get_fully_qualified_name()))
        pub.publish(to_diagnostic_array(statuses, self.get_clock().now().to_msg()))
