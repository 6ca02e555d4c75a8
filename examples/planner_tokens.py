#!/usr/bin/env python3
"""Example planner front end: one SceneTokens message per step -> what a planner consumes.

Subscribes to ``<ns>/scene_tokens`` (rvm_ros/SceneTokens: every camera of one
synchronised step with its geometry; the node does the stamp matching) and turns each
message into the planner's input with :func:`rvm_ros.wire.scene_tokens_to_torch`:
``img_feats [N_cam, C, h, w]``, ``cls [N_cam, C]``, ``projection_mat [N_cam, 4, 4]``
(base frame -> network pixels), ``image_wh``, ``timestamp``, ``valid``. Optionally it
adds per camera up to ``max_tracks`` track tokens: the feature of the cell under each
visible tracked point of ``<ns>/<camera>/tracks`` (rvm_ros/TrackedPoints) with that
camera's stamp in the step, padded with zeros (``track_mask`` says which are real). The
node only logs the shapes; replace ``on_step`` with your planner.

Run (next to a running ``rvm_node`` named ``rvm`` with ``scene_tokens.enabled:=true``)::

    scripts/ros-env python examples/planner_tokens.py --ns /rvm --max-tracks 32

The track-token gathering (:func:`track_tokens`) and the pairing of steps with tracks
(:class:`StepAssembler`) are pure functions of the received messages, usable without
rclpy.
"""

from __future__ import annotations

import argparse
import sys
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from rvm_ros.imaging.preprocess import Geometry
from rvm_ros.wire.scene_tokens import (
    SceneTokensArrays,
    SceneTokensError,
    arrays_to_torch,
    scene_tokens_to_numpy,
)
from rvm_ros.wire.tracks_decode import Tracks, tracks_to_numpy


@dataclass(frozen=True, eq=False)
class PlannerStep:
    """One step's planner input.

    Attributes:
        stamp_ns: Step stamp.
        cameras: Camera names (tensor order).
        inputs: :func:`rvm_ros.wire.scene_tokens_to_torch`'s dict.
        track_tokens: ``[N_cam, max_tracks, C]`` features under tracked points (zeros
            where ``track_mask`` is False).
        track_mask: ``[N_cam, max_tracks]`` bool.
        track_ids: ``[N_cam, max_tracks]`` int32 track ids, -1 for padding.
    """

    stamp_ns: int
    cameras: tuple[str, ...]
    inputs: dict[str, Any]
    track_tokens: torch.Tensor
    track_mask: torch.Tensor
    track_ids: np.ndarray


def track_tokens(
    arrays: SceneTokensArrays, tracks: Mapping[str, Tracks], max_tracks: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Features of the cells under tracked points, per camera.

    Args:
        arrays: The step (``scene_tokens_to_numpy``).
        tracks: Camera -> its tracks of this step (cameras without are padded).
        max_tracks: Tokens per camera (visible points inside the grid, lowest ids first).

    Returns:
        ``(tokens [N_cam, max_tracks, C] float32, mask [N_cam, max_tracks],
        ids [N_cam, max_tracks] int32)``.
    """
    n, c = len(arrays.cameras), int(arrays.tokens.shape[2])
    h, w = arrays.grid_height, arrays.grid_width
    out = np.zeros((n, max_tracks, c), dtype=np.float32)
    mask = np.zeros((n, max_tracks), dtype=bool)
    ids = np.full((n, max_tracks), -1, dtype=np.int32)
    for i, cam in enumerate(arrays.cameras):
        trk = tracks.get(cam)
        if trk is None or max_tracks == 0 or trk.ids.size == 0 or not arrays.has_tokens[i]:
            continue
        (iw, ih), (sx, sy), (ox, oy) = arrays.image_size[i], arrays.scale[i], arrays.offset[i]
        geometry = Geometry(
            int(ih), int(iw), arrays.model_height, arrays.model_width, "", sx, sy, ox, oy
        )
        row, col, valid = geometry.image_to_cell(trk.xs, trk.ys, arrays.cell_size)
        keep = np.flatnonzero(valid & trk.visible & (row < h) & (col < w))
        keep = keep[np.argsort(trk.ids[keep], kind="stable")][:max_tracks]
        grid = arrays.tokens[i, 1:].reshape(h, w, c)  # [h, w, C] view
        out[i, : keep.size] = grid[row[keep], col[keep]]
        mask[i, : keep.size] = True
        ids[i, : keep.size] = trk.ids[keep]
    return out, mask, ids


class StepAssembler:
    """Pairs SceneTokens steps with each camera's tracks of the same stamp.

    A step is emitted once every camera that has tokens in it has its tracks (or at once
    when ``max_tracks`` is 0); a step still waiting when a newer one arrives is emitted
    with the tracks it has (the others padded), so nothing queues without bound.

    Args:
        max_tracks: Track tokens per camera (0: ignore tracks).
        history: Tracks messages kept per camera.
    """

    def __init__(self, max_tracks: int = 0, history: int = 30) -> None:
        if max_tracks < 0:
            raise ValueError(f"StepAssembler: max_tracks must be >= 0, got {max_tracks}")
        self.max_tracks = int(max_tracks)
        self._tracks: dict[str, deque[Tracks]] = {}
        self._history = history
        self._pending: SceneTokensArrays | None = None

    def _tracks_of(self, arrays: SceneTokensArrays) -> dict[str, Tracks]:
        found: dict[str, Tracks] = {}
        for i, cam in enumerate(arrays.cameras):
            stamp = int(arrays.camera_stamps_ns[i])
            for trk in self._tracks.get(cam, ()):
                if trk.stamp_ns == stamp:
                    found[cam] = trk
        return found

    def _ready(self, arrays: SceneTokensArrays) -> bool:
        have = self._tracks_of(arrays)
        return all(c in have for c, t in zip(arrays.cameras, arrays.has_tokens, strict=True) if t)

    def _emit(self, arrays: SceneTokensArrays) -> PlannerStep:
        tokens, mask, ids = track_tokens(arrays, self._tracks_of(arrays), self.max_tracks)
        return PlannerStep(
            stamp_ns=arrays.stamp_ns,
            cameras=arrays.cameras,
            inputs=arrays_to_torch(arrays),
            track_tokens=torch.from_numpy(tokens),
            track_mask=torch.from_numpy(mask),
            track_ids=ids,
        )

    def add_scene(self, arrays: SceneTokensArrays) -> list[PlannerStep]:
        """Add a step; returns the steps completed by it (at most two)."""
        out = []
        if self._pending is not None:
            out.append(self._emit(self._pending))  # superseded: emit with what it has
            self._pending = None
        if self.max_tracks == 0 or self._ready(arrays):
            out.append(self._emit(arrays))
        else:
            self._pending = arrays
        return out

    def add_tracks(self, tracks: Tracks) -> list[PlannerStep]:
        """Add one camera's tracks; returns the pending step if they completed it."""
        self._tracks.setdefault(tracks.camera, deque(maxlen=self._history)).append(tracks)
        if self._pending is not None and self._ready(self._pending):
            step, self._pending = self._emit(self._pending), None
            return [step]
        return []


class PlannerTokensNode:
    """The rclpy side: ``<ns>/scene_tokens`` (and tracks) feeding a :class:`StepAssembler`.

    Args:
        ns: Namespace of the RVM node's outputs (e.g. ``/rvm``).
        cameras: Cameras whose tracks to subscribe to (needed when ``max_tracks`` > 0).
        max_tracks: Track tokens per camera (0: do not subscribe to tracks).
        context: rclpy context (default: the global one).
        reliable: Subscribe reliably (default best effort, which matches any publisher).
        on_step: Called with every :class:`PlannerStep` (default: log its shapes).
    """

    def __init__(
        self,
        ns: str = "/rvm",
        cameras: Sequence[str] = (),
        max_tracks: int = 0,
        context: Any = None,
        reliable: bool = False,
        on_step: Callable[[PlannerStep], None] | None = None,
    ) -> None:
        from rclpy.node import Node
        from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
        from rvm_ros.msg import SceneTokens, TrackedPoints

        if max_tracks > 0 and not cameras:
            raise ValueError("PlannerTokensNode: track tokens need the camera names")
        self.node = Node("planner_tokens", context=context)
        self.assembler = StepAssembler(max_tracks)
        self.steps = 0
        self.rejected = 0
        self.latest: PlannerStep | None = None
        self._on_step = on_step
        qos = QoSProfile(
            history=HistoryPolicy.KEEP_LAST,
            depth=10,
            reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT,
        )
        prefix = ns.rstrip("/")
        self.node.create_subscription(SceneTokens, f"{prefix}/scene_tokens", self._on_scene, qos)
        if max_tracks > 0:
            for cam in cameras:
                self.node.create_subscription(
                    TrackedPoints, f"{prefix}/{cam}/tracks", self._on_tracks, qos
                )

    def _on_scene(self, msg: Any) -> None:
        try:
            arrays = scene_tokens_to_numpy(msg)
        except SceneTokensError as exc:
            self.rejected += 1
            self.node.get_logger().warning(f"dropping SceneTokens: {exc}")
            return
        self._emit(self.assembler.add_scene(arrays))

    def _on_tracks(self, msg: Any) -> None:
        self._emit(self.assembler.add_tracks(tracks_to_numpy(msg)))

    def _emit(self, steps: list[PlannerStep]) -> None:
        for step in steps:
            self.steps += 1
            self.latest = step
            if self._on_step is not None:
                self._on_step(step)
            else:
                x = step.inputs
                self.node.get_logger().info(
                    f"step {step.stamp_ns}: img_feats {list(x['img_feats'].shape)}, "
                    f"valid {x['valid'].tolist()}, track tokens {int(step.track_mask.sum())} "
                    f"from {', '.join(step.cameras)}"
                )

    def destroy(self) -> None:
        """Destroy the rclpy node."""
        self.node.destroy_node()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the example node until interrupted."""
    import rclpy
    from rclpy.executors import ExternalShutdownException
    from rclpy.utilities import remove_ros_args

    args_in = list(sys.argv if argv is None else argv)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ns", default="/rvm", help="namespace of the RVM node's outputs")
    parser.add_argument("--cameras", nargs="*", default=[], help="cameras (for track tokens)")
    parser.add_argument("--max-tracks", type=int, default=0, help="track tokens per camera")
    parser.add_argument("--reliable", action="store_true", help="subscribe reliably")
    args = parser.parse_args(remove_ros_args(args_in)[1:])
    if args.max_tracks > 0 and not args.cameras:
        parser.error("--max-tracks needs --cameras (whose tracks to subscribe to)")
    rclpy.init(args=args_in)
    planner = PlannerTokensNode(args.ns, args.cameras, args.max_tracks, reliable=args.reliable)
    planner.node.get_logger().info(f"planner input from {args.ns}/scene_tokens")
    try:
        rclpy.spin(planner.node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        planner.destroy()
        if rclpy.ok():
            rclpy.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
