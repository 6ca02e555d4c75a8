#!/usr/bin/env python3
"""Time what ~/scene_tokens adds to a node step: assemble + build + publish one SceneTokens.

Six cameras of RVM-S sized features (C = 384, 256x256 input -> 16x16 grid, float16 by
default), each with CameraInfo and static extrinsics, exactly the node's code path
(`SceneAssembler.assemble`, `scene_tokens_message` with the rclpy classes,
``Publisher.publish`` on a real rclpy / Fast DDS publisher). The publisher's QoS is the
node's default output profile (reliable, depth 5). With ``--subscriber`` a second
process subscribes (so the message really leaves the process) and reports how many
arrived. For scale, the same run times the six per-camera FeatureMap publishes the node
already does per step.

    scripts/ros-env python examples/bench_scene_tokens.py --steps 300 --subscriber
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from rvm_ros.imaging.preprocess import fit_geometry
from rvm_ros.pipeline.geometry import CameraIntrinsics, pose_matrix
from rvm_ros.pipeline.scene import SceneAssembler
from rvm_ros.pipeline.types import FrameResult

CAMERAS = ("front", "front_left", "front_right", "rear", "rear_left", "rear_right")
TOPIC = "/bench_scene_tokens"


def results(step: int, dim: int, grid: int, dtype: Any) -> list[FrameResult]:
    """Six processed frames (random features) of one step."""
    rng = np.random.default_rng(step)
    geometry = fit_geometry(480, 640, 16 * grid, 16 * grid, "letterbox")
    return [
        FrameResult(
            camera=cam,
            header=None,
            stamp_ns=10**18 + step * 50_000_000 + i * 1_000_000,
            seq=step,
            features=rng.standard_normal((grid, grid, dim)).astype(dtype),
            cls=rng.standard_normal(dim).astype(dtype),
            grid_height=grid,
            grid_width=grid,
            frames_since_reset=step,
            state_reset=step == 0,
            reset_reason="first_frame" if step == 0 else "",
            reset_count=1,
            geometry=geometry,
            cell_size=16,
            pool=1,
            model_id="S-random0",
            step_ms=100.0,
        )
        for i, cam in enumerate(CAMERAS)
    ]


def subscriber(count_file: str) -> int:
    """Subscriber process: count SceneTokens until interrupted, write the count."""
    import signal

    import rclpy
    from rvm_ros.msg import SceneTokens

    from rvm_ros.node.qos import make_qos

    rclpy.init()
    node = rclpy.create_node("bench_scene_tokens_sub")
    got = [0]

    def on_msg(_msg: Any) -> None:
        got[0] += 1

    node.create_subscription(SceneTokens, TOPIC, on_msg, make_qos("reliable", 5))
    stop = [False]
    signal.signal(signal.SIGTERM, lambda *_: stop.__setitem__(0, True))
    while not stop[0]:
        rclpy.spin_once(node, timeout_sec=0.1)
    with open(count_file, "w") as fh:
        fh.write(str(got[0]))
    node.destroy_node()
    rclpy.shutdown()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--dim", type=int, default=384, help="channels (RVM-S: 384)")
    parser.add_argument("--grid", type=int, default=16, help="grid side (256 px / 16)")
    parser.add_argument("--dtype", choices=("float16", "float32"), default="float16")
    parser.add_argument("--period-ms", type=float, default=50.0, help="step period")
    parser.add_argument("--subscriber", action="store_true", help="subscribe in a 2nd process")
    parser.add_argument("--subscriber-child", default="", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.subscriber_child:
        return subscriber(args.subscriber_child)

    import rclpy
    from rvm_ros.msg import FeatureMap

    from rvm_ros.node.qos import make_qos
    from rvm_ros.node.scene_tokens import _CLASSES
    from rvm_ros.wire.encode import feature_map_fields, fill_message
    from rvm_ros.wire.scene_tokens import scene_tokens_message

    sub_proc = None
    count_file = f"/tmp/bench_scene_tokens_{os.getpid()}.count"
    if args.subscriber:
        sub_proc = subprocess.Popen(
            [sys.executable, __file__, "--subscriber-child", count_file],
        )
    rclpy.init()
    node = rclpy.create_node("bench_scene_tokens_pub")
    qos = make_qos("reliable", 5)
    from rvm_ros.msg import SceneTokens

    pub = node.create_publisher(SceneTokens, TOPIC, qos)
    fmap_pubs = [node.create_publisher(FeatureMap, f"/bench_fm/{c}", qos) for c in CAMERAS]
    if sub_proc is not None:
        end = time.monotonic() + 60
        while pub.get_subscription_count() == 0:
            if time.monotonic() > end:
                raise SystemExit("subscriber not matched within 60 s")
            time.sleep(0.05)
    dtype = np.float16 if args.dtype == "float16" else np.float32
    asm = SceneAssembler(CAMERAS, 16 * args.grid, 16 * args.grid, 16, "partial", 20.0, "letterbox")
    k = np.array([[500.0, 0, 319.5], [0, 500.0, 239.5], [0, 0, 1]])
    for i, cam in enumerate(CAMERAS):
        asm.set_intrinsics(cam, CameraIntrinsics(k, 640, 480, "plumb_bob", (0.0,) * 5))
        asm.set_extrinsics(cam, pose_matrix([i * 0.1, 0, 1.6], [-0.5, 0.5, -0.5, 0.5]))
    frame_ids = {c: f"{c}_optical" for c in CAMERAS}
    from std_msgs.msg import Header

    header = Header(frame_id="cam")
    import array

    buffer = array.array("B")
    geometry_msgs: dict[str, Any] = {}  # as SceneTokensIO: CameraGeometry messages reused

    def scene_io_payload(nbytes: int) -> array.array[int]:
        # What rvm_ros.node.scene_tokens.SceneTokensIO does: one buffer, reused per step.
        nonlocal buffer
        if len(buffer) != nbytes:
            buffer = array.array("B", [0]) * nbytes
        return buffer

    inputs = [results(s, args.dim, args.grid, dtype) for s in range(8)]  # cycled
    t_asm, t_build, t_pub, t_total, t_fmap = [], [], [], [], []
    n = args.warmup + args.steps
    next_t = time.perf_counter()
    for s in range(n):
        outs = inputs[s % len(inputs)]
        t0 = time.perf_counter()
        step = asm.assemble(outs, frame_ids, scene_io_payload)
        t1 = time.perf_counter()
        msg = scene_tokens_message(_CLASSES, step, "base_link", geometry_msgs)  # type: ignore[arg-type]
        t2 = time.perf_counter()
        pub.publish(msg)
        t3 = time.perf_counter()
        for p, r in zip(fmap_pubs, outs, strict=True):
            p.publish(fill_message(FeatureMap, feature_map_fields(r), header=header))
        t4 = time.perf_counter()
        if s >= args.warmup:
            t_asm.append(t1 - t0)
            t_build.append(t2 - t1)
            t_pub.append(t3 - t2)
            t_total.append(t3 - t0)
            t_fmap.append(t4 - t3)
        next_t += args.period_ms / 1000.0
        time.sleep(max(0.0, next_t - time.perf_counter()))
    received = None
    if sub_proc is not None:
        time.sleep(1.0)
        sub_proc.terminate()
        sub_proc.wait(30)
        try:
            with open(count_file) as fh:
                received = int(fh.read())
            os.unlink(count_file)
        except OSError:
            received = None
    node.destroy_node()
    rclpy.shutdown()

    def ms(v: list[float], q: float) -> float:
        return float(np.percentile(np.asarray(v) * 1e3, q))

    size = len(msg.tokens)
    print(
        f"SceneTokens: {len(CAMERAS)} cameras x (1 + {args.grid}x{args.grid}) tokens x "
        f"{args.dim} {args.dtype} = {size / 1e6:.2f} MB payload, {args.steps} steps "
        f"every {args.period_ms:g} ms, subscriber: "
        + ("none" if received is None else f"another process, received {received}/{n}")
    )
    for name, v in (
        ("assemble", t_asm),
        ("build message", t_build),
        ("publish", t_pub),
        ("total added per step", t_total),
        ("(for scale) 6 FeatureMap builds+publishes", t_fmap),
    ):
        print(f"  {name:44s} p50 {ms(v, 50):7.3f} ms   p90 {ms(v, 90):7.3f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
