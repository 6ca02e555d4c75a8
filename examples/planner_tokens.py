#!/usr/bin/env python3
"""Example planner front end: all cameras' RVM features of one time step as one token tensor.

Subscribes to ``<ns>/<camera>/features`` (rvm_ros/FeatureMap) and ``<ns>/<camera>/tracks``
(rvm_ros/TrackedPoints) for a list of cameras, matches the cameras' stamps within a
tolerance, and builds for every complete time step a ``[cameras, tokens, C]`` float32
array: per camera the CLS token, the ``h * w`` grid tokens (row-major) and up to
``max_tracks`` track tokens (the feature of the cell under each visible tracked point),
padded with zeros; ``mask [cameras, tokens]`` says which tokens are real. That is the
input an end-to-end planner consumes. The node only logs the shape; replace
``on_step`` with your planner.

Run (next to a running ``rvm_node`` named ``rvm``)::

    scripts/ros-env python examples/planner_tokens.py --cameras front left --ns /rvm

The matching (:func:`assemble_tokens`) and buffering (:class:`TokenAssembler`) are pure
functions of the received messages, usable without rclpy.
"""

from __future__ import annotations

import argparse
import sys
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from rvm_ros.wire.decode import (
    FeatureMapArrays,
    Tracks,
    feature_map_to_numpy,
    pixel_to_cell,
    tracks_to_numpy,
)


@dataclass(frozen=True, eq=False)
class TokenStep:
    """The tokens of all cameras for one time step.

    Holds arrays, so instances compare by identity (``eq=False``).

    Attributes:
        stamp_ns: Stamp of the reference (first) camera.
        cameras: Camera names, in token-tensor order.
        stamps_ns: ``[cameras]`` stamp of each camera's feature map used.
        tokens: ``[cameras, 1 + h*w + max_tracks, C]`` float32: CLS, grid (row-major),
            track tokens (zeros where ``mask`` is False).
        mask: ``[cameras, tokens]`` bool, True for real tokens.
        track_ids: ``[cameras, max_tracks]`` int32 track id of each track token, -1 for
            padding.
    """

    stamp_ns: int
    cameras: tuple[str, ...]
    stamps_ns: tuple[int, ...]
    tokens: np.ndarray
    mask: np.ndarray
    track_ids: np.ndarray


def _nearest(items: Sequence[Any], stamp_ns: int) -> Any | None:
    """The item whose ``stamp_ns`` is closest to ``stamp_ns`` (None if no items)."""
    if not items:
        return None
    return min(items, key=lambda it: abs(it.stamp_ns - stamp_ns))


def assemble_tokens(
    maps: Mapping[str, Sequence[FeatureMapArrays]],
    tolerance_ns: int,
    tracks: Mapping[str, Sequence[Tracks]] | None = None,
    max_tracks: int = 0,
    cameras: Sequence[str] | None = None,
) -> TokenStep | None:
    """Build the newest complete time step from buffered per-camera messages.

    The reference camera is the first of ``cameras``; starting from its newest feature
    map, every other camera contributes the map nearest in time, and the step is complete
    when all of them lie within ``tolerance_ns`` (and, with ``tracks`` given, every camera
    has a TrackedPoints message for its map's stamp within the tolerance). Older
    reference maps are tried until a step is complete.

    Args:
        maps: Camera name -> received feature maps (any order).
        tolerance_ns: Largest accepted ``|stamp - reference stamp|`` in nanoseconds.
        tracks: Camera name -> received tracks, or None to use no track tokens.
        max_tracks: Track tokens per camera (visible points in ascending id order, the
            first ``max_tracks`` kept).
        cameras: Camera order (default: sorted names of ``maps``).

    Returns:
        The newest complete :class:`TokenStep`, or None when there is none yet.

    Raises:
        ValueError: A negative tolerance or max_tracks, or cameras whose grids / channel
            counts differ (they cannot share one tensor).
    """
    if tolerance_ns < 0 or max_tracks < 0:
        raise ValueError(
            f"assemble_tokens: tolerance_ns and max_tracks must be >= 0, got "
            f"{tolerance_ns} and {max_tracks}"
        )
    order = tuple(cameras) if cameras is not None else tuple(sorted(maps))
    if not order:
        return None
    reference = sorted(maps.get(order[0], ()), key=lambda m: m.stamp_ns, reverse=True)
    for ref in reference:
        chosen: list[FeatureMapArrays] = []
        chosen_tracks: list[Tracks | None] = []
        for cam in order:
            fmap = ref if cam == order[0] else _nearest(maps.get(cam, ()), ref.stamp_ns)
            if fmap is None or abs(fmap.stamp_ns - ref.stamp_ns) > tolerance_ns:
                break
            trk = None
            if tracks is not None:
                trk = _nearest(tracks.get(cam, ()), fmap.stamp_ns)
                if trk is None or abs(trk.stamp_ns - fmap.stamp_ns) > tolerance_ns:
                    break
            chosen.append(fmap)
            chosen_tracks.append(trk)
        else:
            return _stack(order, ref.stamp_ns, chosen, chosen_tracks, max_tracks)
    return None


def _stack(
    cameras: tuple[str, ...],
    stamp_ns: int,
    maps: list[FeatureMapArrays],
    tracks: list[Tracks | None],
    max_tracks: int,
) -> TokenStep:
    first = maps[0]
    for cam, m in zip(cameras, maps, strict=True):
        if m.features.shape != first.features.shape:
            raise ValueError(
                f"assemble_tokens: camera {cam!r} has a feature grid {m.features.shape}, "
                f"camera {cameras[0]!r} {first.features.shape}; they cannot be stacked"
            )
    h, w, c = first.features.shape
    n_cams, n_grid = len(maps), 1 + h * w
    tokens = np.zeros((n_cams, n_grid + max_tracks, c), dtype=np.float32)
    mask = np.zeros((n_cams, n_grid + max_tracks), dtype=bool)
    track_ids = np.full((n_cams, max_tracks), -1, dtype=np.int32)
    for i, (m, trk) in enumerate(zip(maps, tracks, strict=True)):
        tokens[i, 0] = m.cls
        tokens[i, 1:n_grid] = m.features.reshape(h * w, c)  # [h*w, C], row-major
        mask[i, :n_grid] = True
        if trk is None or max_tracks == 0 or trk.ids.size == 0:
            continue
        row, col, valid = pixel_to_cell(m, trk.xs, trk.ys)
        keep = np.flatnonzero(valid & trk.visible)
        keep = keep[np.argsort(trk.ids[keep], kind="stable")][:max_tracks]
        n = keep.size
        tokens[i, n_grid : n_grid + n] = m.features[row[keep], col[keep]]  # [n, C]
        mask[i, n_grid : n_grid + n] = True
        track_ids[i, :n] = trk.ids[keep]
    return TokenStep(
        stamp_ns=stamp_ns,
        cameras=cameras,
        stamps_ns=tuple(m.stamp_ns for m in maps),
        tokens=tokens,
        mask=mask,
        track_ids=track_ids,
    )


class TokenAssembler:
    """Buffers the latest messages per camera and emits each complete time step once.

    Args:
        cameras: Camera names (token order).
        tolerance_ns: Stamp matching tolerance.
        max_tracks: Track tokens per camera (0: ignore tracks).
        history: Messages kept per camera and topic.
    """

    def __init__(
        self,
        cameras: Sequence[str],
        tolerance_ns: int,
        max_tracks: int = 0,
        history: int = 30,
    ) -> None:
        if not cameras:
            raise ValueError("TokenAssembler: at least one camera is needed")
        self.cameras = tuple(cameras)
        self.tolerance_ns = int(tolerance_ns)
        self.max_tracks = int(max_tracks)
        self._maps: dict[str, deque[FeatureMapArrays]] = {
            c: deque(maxlen=history) for c in self.cameras
        }
        self._tracks: dict[str, deque[Tracks]] = {c: deque(maxlen=history) for c in self.cameras}
        self._last_stamp: int | None = None

    def add_features(self, arrays: FeatureMapArrays) -> TokenStep | None:
        """Add a feature map; returns a newly completed step, if any."""
        if arrays.camera in self._maps:
            self._maps[arrays.camera].append(arrays)
        return self.poll()

    def add_tracks(self, tracks: Tracks) -> TokenStep | None:
        """Add tracks; returns a newly completed step, if any."""
        if tracks.camera in self._tracks:
            self._tracks[tracks.camera].append(tracks)
        return self.poll()

    def poll(self) -> TokenStep | None:
        """The newest complete step if it is newer than the last one returned."""
        step = assemble_tokens(
            self._maps,
            self.tolerance_ns,
            self._tracks if self.max_tracks > 0 else None,
            self.max_tracks,
            self.cameras,
        )
        if step is None or (self._last_stamp is not None and step.stamp_ns <= self._last_stamp):
            return None
        self._last_stamp = step.stamp_ns
        return step


class PlannerTokensNode:
    """The rclpy side: subscriptions feeding a :class:`TokenAssembler`.

    Args:
        cameras: Camera names.
        ns: Namespace of the RVM node's outputs (e.g. ``/rvm``).
        tolerance_ns: Stamp matching tolerance.
        max_tracks: Track tokens per camera (0: do not subscribe to tracks).
        context: rclpy context (default: the global one).
        reliable: Subscribe reliably (default best effort, which matches any publisher).
        on_step: Called with every completed :class:`TokenStep` (default: log its shape).
    """

    def __init__(
        self,
        cameras: Sequence[str],
        ns: str = "/rvm",
        tolerance_ns: int = 10_000_000,
        max_tracks: int = 32,
        context: Any = None,
        reliable: bool = False,
        on_step: Callable[[TokenStep], None] | None = None,
    ) -> None:
        from rclpy.node import Node
        from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
        from rvm_ros.msg import FeatureMap, TrackedPoints

        self.node = Node("planner_tokens", context=context)
        self.assembler = TokenAssembler(cameras, tolerance_ns, max_tracks)
        self.steps = 0
        self.latest: TokenStep | None = None
        self._on_step = on_step
        self.rejected = 0
        qos = QoSProfile(
            history=HistoryPolicy.KEEP_LAST,
            depth=10,
            reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT,
        )
        prefix = ns.rstrip("/")
        for cam in cameras:
            self.node.create_subscription(
                FeatureMap, f"{prefix}/{cam}/features", self._on_features, qos
            )
            if max_tracks > 0:
                self.node.create_subscription(
                    TrackedPoints, f"{prefix}/{cam}/tracks", self._on_tracks, qos
                )

    def _on_features(self, msg: Any) -> None:
        try:
            arrays = feature_map_to_numpy(msg)
        except ValueError as exc:
            self.rejected += 1
            self.node.get_logger().warning(f"dropping FeatureMap: {exc}")
            return
        self._emit(self.assembler.add_features(arrays))

    def _on_tracks(self, msg: Any) -> None:
        self._emit(self.assembler.add_tracks(tracks_to_numpy(msg)))

    def _emit(self, step: TokenStep | None) -> None:
        if step is None:
            return
        self.steps += 1
        self.latest = step
        if self._on_step is not None:
            self._on_step(step)
        else:
            n_real = int(step.mask.sum())
            self.node.get_logger().info(
                f"step {step.stamp_ns}: tokens {list(step.tokens.shape)} "
                f"({n_real} real) from {', '.join(step.cameras)}"
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
    parser.add_argument("--cameras", nargs="+", required=True, help="camera names")
    parser.add_argument("--ns", default="/rvm", help="namespace of the RVM node's outputs")
    parser.add_argument("--tolerance-ms", type=float, default=10.0, help="stamp tolerance")
    parser.add_argument("--max-tracks", type=int, default=32, help="track tokens per camera")
    parser.add_argument("--reliable", action="store_true", help="subscribe reliably")
    args = parser.parse_args(remove_ros_args(args_in)[1:])
    rclpy.init(args=args_in)
    planner = PlannerTokensNode(
        args.cameras,
        args.ns,
        round(args.tolerance_ms * 1e6),
        args.max_tracks,
        reliable=args.reliable,
    )
    planner.node.get_logger().info(
        f"gathering {', '.join(args.cameras)} from {args.ns}/<camera>/features"
        + (" and /tracks" if args.max_tracks > 0 else "")
    )
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
