"""The node's scene-token output: CameraInfo and TF in, ``~/scene_tokens`` out.

Everything ROS about SceneTokens lives here; the logic is pure
(`rvm_ros.pipeline.scene.SceneAssembler`, `rvm_ros.wire.scene_tokens`). Per camera the
intrinsics come from its ``cameras.<name>.camera_info_topic`` (latest message) and the
camera-to-base transform from the static ``cameras.<name>.translation`` / ``rotation``
parameters or, where ``tf2_ros`` is installed, from TF (latest transform from the camera
frame to ``scene_tokens.base_frame``). The node runs without tf2_ros: cameras that need
TF are then invalid (``no_transform``) and the log says why once.
"""

from __future__ import annotations

import array
import threading
from collections import Counter
from collections.abc import Sequence
from functools import partial
from typing import TYPE_CHECKING

import numpy as np
from builtin_interfaces.msg import Time
from geometry_msgs.msg import Transform
from rclpy.lifecycle import LifecycleNode
from rclpy.qos import QoSProfile
from sensor_msgs.msg import CameraInfo
from std_msgs.msg import Header

from rvm_ros.msg import CameraGeometry, SceneTokens
from rvm_ros.node.diagnostics import OK, WARN, StatusSummary
from rvm_ros.pipeline.geometry import CameraIntrinsics, GeometryError
from rvm_ros.pipeline.params import NodeConfig, checkpoint_patch_size
from rvm_ros.pipeline.scene import SceneAssembler
from rvm_ros.pipeline.types import FrameInput, FrameResult, FrameSkip
from rvm_ros.wire.scene_tokens import SceneTokensClasses, scene_tokens_message

if TYPE_CHECKING:
    import tf2_ros

__all__ = ["SceneTokensIO"]

_CLASSES = SceneTokensClasses(SceneTokens, CameraGeometry, Header, Time, rclpy=True)


def _transform_matrix(transform: Transform) -> np.ndarray:
    """``geometry_msgs/Transform`` -> ``[4, 4]``."""
    from rvm_ros.pipeline.geometry import pose_matrix

    t, q = transform.translation, transform.rotation
    return pose_matrix((t.x, t.y, t.z), (q.x, q.y, q.z, q.w))


class SceneTokensIO:
    """Subscriptions, TF and the publisher of ``~/scene_tokens`` for one configured node.

    Args:
        node: The lifecycle node.
        cfg: Its configuration (``cfg.scene_tokens.enabled``).
        qos_in: Profile of the CameraInfo subscriptions (the image profile).
        qos_out: Profile of the publisher.
    """

    def __init__(
        self, node: LifecycleNode, cfg: NodeConfig, qos_in: QoSProfile, qos_out: QoSProfile
    ) -> None:
        sc = cfg.scene_tokens
        self._node = node
        self._cfg = sc
        self.assembler = SceneAssembler.for_config(cfg, checkpoint_patch_size(cfg.checkpoint))
        self._lock = threading.Lock()
        self._info_keys: dict[str, tuple[object, ...]] = {}
        self._logged: set[tuple[str, str]] = set()
        self._bad_info: Counter[str] = Counter()
        self._prev: tuple[int, int, int] = (0, 0, 0)
        self._buffer: array.array[int] = array.array("B")
        self._geometry_msgs: dict[str, CameraGeometry] = {}  # per camera, reused
        log = node.get_logger()
        self._tf_cams = [c for c in cfg.cameras if sc.extrinsics_source(c) == "tf"]
        for cam in cfg.cameras:
            if sc.extrinsics_source(cam) == "static":
                self.assembler.set_extrinsics(cam, sc.static_extrinsics[cam], "static")
        self._tf_buffer: tf2_ros.Buffer | None = None
        self._tf_listener: tf2_ros.TransformListener | None = None
        self.tf_status = "not needed"
        if self._tf_cams:
            try:
                import tf2_ros  # optional: not on PyPI; present in ROS installs
            except ImportError:
                self.tf_status = "tf2_ros not installed"
                log.warning(
                    f"scene tokens: tf2_ros is not installed, so camera(s) "
                    f"{', '.join(self._tf_cams)} have no transform (no_transform); give "
                    "cameras.<name>.translation and .rotation to use static extrinsics"
                )
                self._tf_cams = []
            else:
                self._tf_buffer = tf2_ros.Buffer()
                self._tf_listener = tf2_ros.TransformListener(self._tf_buffer, node)
                self.tf_status = "tf2_ros"
        self._subs = [
            node.create_subscription(
                CameraInfo, sc.camera_info_topics[cam], partial(self._on_camera_info, cam), qos_in
            )
            for cam in cfg.cameras
        ]
        self.publisher = node.create_lifecycle_publisher(SceneTokens, "~/scene_tokens", qos_out)
        log.info(
            f"scene tokens: ~/scene_tokens in frame {sc.base_frame!r}, cameras "
            f"{', '.join(cfg.cameras)} (CameraInfo from "
            f"{', '.join(sc.camera_info_topics[c] for c in cfg.cameras)}; extrinsics "
            + ", ".join(f"{c}: {sc.extrinsics_source(c) or 'none'}" for c in cfg.cameras)
            + f"), policy {sc.sync_policy}, tolerance {sc.tolerance_ms:g} ms"
        )

    # -- inputs ----------------------------------------------------------------------

    def _on_camera_info(self, cam: str, msg: CameraInfo) -> None:
        key = (
            tuple(msg.k),
            int(msg.width),
            int(msg.height),
            int(msg.binning_x),
            int(msg.binning_y),
            (msg.roi.x_offset, msg.roi.y_offset, msg.roi.width, msg.roi.height),
            str(msg.distortion_model),
            tuple(msg.d),
            str(msg.header.frame_id),
        )
        with self._lock:
            if self._info_keys.get(cam) == key:
                return  # unchanged: keep the cached geometry
            self._info_keys[cam] = key
        try:
            intr = CameraIntrinsics.from_camera_info(msg)
        except GeometryError as exc:
            self._bad_info[cam] += 1
            self._log_once(cam, "bad_camera_info", f"camera {cam}: unusable CameraInfo: {exc}")
            self.assembler.set_intrinsics(cam, None)
            return
        self.assembler.set_intrinsics(cam, intr)

    def _update_tf(self, frame_ids: dict[str, str]) -> None:
        buf = self._tf_buffer
        if buf is None:
            return
        from rclpy.time import Time as RclpyTime

        for cam in self._tf_cams:
            intr = self.assembler.intrinsics(cam)
            frame = (intr.frame_id if intr is not None else "") or frame_ids.get(cam, "")
            try:
                tf = buf.lookup_transform(self._cfg.base_frame, frame, RclpyTime())
                self.assembler.set_extrinsics(cam, _transform_matrix(tf.transform), "tf")
            except Exception as exc:  # tf2 lookup / connectivity / extrapolation errors
                self.assembler.set_extrinsics(cam, None)
                self._log_once(
                    cam,
                    "tf",
                    f"camera {cam}: no transform {self._cfg.base_frame} <- {frame!r}: {exc}",
                )

    def _log_once(self, cam: str, reason: str, text: str) -> None:
        if (cam, reason) in self._logged:
            return
        self._logged.add((cam, reason))
        self._node.get_logger().warning(
            text + " [logged once; scene-token validity counted in /diagnostics]"
        )

    # -- per step --------------------------------------------------------------------

    def _payload(self, nbytes: int) -> array.array[int]:
        """The token buffer, reused step after step: ``publish`` copies the message before
        it returns, and the message is dropped then (one inference thread)."""
        if len(self._buffer) != nbytes:
            self._buffer = array.array("B", [0]) * nbytes
        return self._buffer

    def publish_step(
        self, results: Sequence[FrameResult | FrameSkip], batch: Sequence[FrameInput]
    ) -> bool:
        """Assemble and publish the step of one processed batch.

        Returns:
            Whether a message was published (the ``complete`` policy drops partial steps).
        """
        frame_ids = {f.camera: str(getattr(f.header, "frame_id", "")) for f in batch}
        self._update_tf(frame_ids)
        step = self.assembler.assemble(results, frame_ids, self._payload)
        if step is None:
            return False
        for cam in step.cameras:
            if cam.reason and cam.reason not in ("missing", "out_of_sync"):
                self._log_once(cam.camera, cam.reason, f"camera {cam.camera}: scene tokens "
                               f"invalid ({cam.reason})")  # fmt: skip
        msg = scene_tokens_message(_CLASSES, step, self._cfg.base_frame, self._geometry_msgs)
        self.publisher.publish(msg)
        return True

    def status(self, node_name: str) -> StatusSummary:
        """The ``<node>: scene_tokens`` diagnostics status."""
        s = self.assembler.stats()
        now = (s.complete, s.partial, s.dropped_partial)
        new_partial = (now[1] - self._prev[1]) + (now[2] - self._prev[2])
        self._prev = now
        level, message = OK, "ok"
        if new_partial:
            level, message = WARN, f"{new_partial} partial step(s) in the last period"
        values: list[tuple[str, str]] = [
            ("complete_steps", str(s.complete)),
            ("partial_steps", str(s.partial)),
            ("dropped_partial_steps", str(s.dropped_partial)),
            ("sync_policy", self._cfg.sync_policy),
            ("tf", self.tf_status),
        ]
        for cam, reasons in s.invalid.items():
            text = ", ".join(f"{k}={v}" for k, v in sorted(reasons.items())) or "none"
            values.append((f"invalid_{cam}", text))
        return StatusSummary(f"{node_name}: scene_tokens", level, message, tuple(values))

    def destroy(self) -> None:
        """Destroy the subscriptions, the publisher and the TF listener."""
        for sub in self._subs:
            self._node.destroy_subscription(sub)
        self._subs = []
        self._node.destroy_lifecycle_publisher(self.publisher)
        if self._tf_listener is not None:
            self._tf_listener.unregister()
            self._tf_listener = None
