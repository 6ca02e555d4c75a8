"""SceneTokens in a replay: the same assembler as the node, geometry from the bag.

With ``scene_tokens.enabled`` in the replayed configuration, every batch becomes one
``/<node>/scene_tokens`` message (``rvm_ros/msg/SceneTokens``) in the features bag, written
at the log time of the batch's newest frame. Intrinsics come from each camera's
``cameras.<name>.camera_info_topic`` in the bag: the latest CameraInfo logged at or
before the frame, else the bag's first one (CameraInfo is normally constant).
Extrinsics come from the static ``cameras.<name>.translation`` / ``rotation``
parameters; TF recorded in a bag is not read, so cameras that need TF are
``no_transform``.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from rvm_ros.bags import rosbag2 as bags
from rvm_ros.pipeline.geometry import CameraIntrinsics, GeometryError
from rvm_ros.pipeline.params import checkpoint_patch_size
from rvm_ros.pipeline.scene import SceneAssembler
from rvm_ros.replay.topics import resolve_topic
from rvm_ros.wire.scene_tokens import SceneTokensClasses, scene_tokens_message

if TYPE_CHECKING:
    from rosbags.typesys.store import Typestore

    from rvm_ros.pipeline import FrameInput, FrameResult, FrameSkip
    from rvm_ros.pipeline.node_config import NodeConfig

__all__ = ["CAMERA_INFO_TYPE", "SceneTokensWriter"]

CAMERA_INFO_TYPE = "sensor_msgs/msg/CameraInfo"


class SceneTokensWriter:
    """Builds the SceneTokens message of each replayed batch.

    Args:
        reader: The open input bag (CameraInfo is read here, once).
        cfg: The replay's `NodeConfig` (``cfg.scene_tokens.enabled``).
        node_name: Node name of the output topic.
        store: The typestore of the output bag.
    """

    def __init__(
        self, reader: bags.BagReader, cfg: NodeConfig, node_name: str, store: Typestore
    ) -> None:
        sc = cfg.scene_tokens
        self.topic = f"/{node_name}/scene_tokens"
        self.base_frame = sc.base_frame
        self.assembler = SceneAssembler.for_config(cfg, checkpoint_patch_size(cfg.checkpoint))
        for cam in cfg.cameras:
            if sc.extrinsics_source(cam) == "static":
                self.assembler.set_extrinsics(cam, sc.static_extrinsics[cam], "static")
        t = store.types
        self.classes = SceneTokensClasses(
            t[bags.SCENE_TOKENS_TYPE],
            t["rvm_ros/msg/CameraGeometry"],
            t["std_msgs/msg/Header"],
            t["builtin_interfaces/msg/Time"],
            rclpy=False,
        )
        self.errors: list[str] = []
        self.camera_info_topics = {
            cam: resolve_topic(sc.camera_info_topics[cam], node_name) for cam in cfg.cameras
        }
        self._infos = self._read_camera_infos(reader, self.camera_info_topics)
        self.tf_cameras = sorted(c for c in cfg.cameras if sc.extrinsics_source(c) == "tf")

    def _read_camera_infos(
        self, reader: bags.BagReader, topics: Mapping[str, str]
    ) -> dict[str, tuple[list[int], list[CameraIntrinsics | None]]]:
        by_topic = {t: c for c, t in topics.items() if reader.topics.get(t) == CAMERA_INFO_TYPE}
        out: dict[str, tuple[list[int], list[CameraIntrinsics | None]]] = {}
        if not by_topic:
            return out
        for m in reader.messages(list(by_topic)):
            if m.msg is None:
                continue
            cam = by_topic[m.topic]
            try:
                intr: CameraIntrinsics | None = CameraIntrinsics.from_camera_info(m.msg)
            except GeometryError as exc:
                intr = None
                msg = f"{m.topic}: {exc}"
                if msg not in self.errors:
                    self.errors.append(msg)
            times, values = out.setdefault(cam, ([], []))
            times.append(m.timestamp_ns)
            values.append(intr)
        return out

    def _intrinsics_at(self, cam: str, log_time_ns: int) -> CameraIntrinsics | None:
        found = self._infos.get(cam)
        if not found:
            return None
        times, values = found
        i = bisect.bisect_right(times, log_time_ns) - 1
        return values[max(i, 0)]

    def step_message(
        self, batch: Sequence[FrameInput], outputs: Sequence[FrameResult | FrameSkip]
    ) -> tuple[object, int] | None:
        """The SceneTokens message of one batch and its log time (None: policy dropped it).

        Args:
            batch: The replay's frames (``header`` = ``(header, index, bag_time)``).
            outputs: ``Processor.process(batch)``.
        """
        log_times = {f.camera: int(f.header[2]) for f in batch}
        for cam in self.assembler.cameras:
            if cam in log_times:
                self.assembler.set_intrinsics(cam, self._intrinsics_at(cam, log_times[cam]))
        frame_ids = {f.camera: str(getattr(f.header[0], "frame_id", "")) for f in batch}
        step = self.assembler.assemble(outputs, frame_ids)
        if step is None:
            return None
        msg = scene_tokens_message(self.classes, step, self.base_frame)
        return msg, max(log_times.values())

    def summary(self) -> dict[str, object]:
        """The report section: topic, step counts, invalid cameras by reason."""
        s = self.assembler.stats()
        return {
            "topic": self.topic,
            "complete_steps": s.complete,
            "partial_steps": s.partial,
            "dropped_partial_steps": s.dropped_partial,
            "invalid": {c: dict(v) for c, v in s.invalid.items() if v},
            "camera_info_topics": self.camera_info_topics,
            "cameras_without_camera_info": sorted(
                c for c in self.assembler.cameras if c not in self._infos
            ),
            "cameras_needing_tf": self.tf_cameras,
            "errors": self.errors,
        }
