#!/usr/bin/env python3
"""Time what ~/scene_tokens adds to a node step: assemble + build + publish one SceneTokens.

Six cameras of RVM-S sized features (C = 384, 256x256 input -> 16x16 grid, float16 by
default), each with CameraInfo and static extrinsics, through the node's own code:
`rvm_ros.node.scene_tokens.SceneTokensIO.publish_step` (`SceneAssembler.assemble`,
`scene_tokens_message` with the rclpy classes, ``publish`` on a real rclpy / Fast DDS
lifecycle publisher with the node's default output QoS, reliable, depth 5), one step
every ``--period-ms``. With ``--subscriber`` a second process subscribes (so the message
really leaves the process) and reports how many arrived. For scale, the same steps time
the six per-camera FeatureMap builds + publishes the node already does.

    scripts/ros-env python examples/bench_scene_tokens.py --steps 300 --subscriber
"""

from __future__ import annotations

import argparse
import atexit
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

import numpy as np

from rvm_ros.imaging.preprocess import fit_geometry
from rvm_ros.pipeline.geometry import CameraIntrinsics
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


def _wait_for_subscriber(publisher: Any, timeout_s: float) -> None:
    """Wait until ``publisher`` has a matched subscription (exit after ``timeout_s``)."""
    end = time.monotonic() + timeout_s
    while publisher.get_subscription_count() == 0:
        if time.monotonic() > end:
            raise SystemExit(f"subscriber not matched within {timeout_s:g} s")
        time.sleep(0.05)


def _stop_subscriber(sub_proc: subprocess.Popen[bytes], count_file: str) -> int | None:
    """Stop the subscriber process; the number of messages it received (None: unknown)."""
    time.sleep(1.0)
    sub_proc.terminate()
    try:
        sub_proc.wait(30)
    except subprocess.TimeoutExpired:
        sub_proc.kill()
    try:
        with open(count_file) as fh:
            received = int(fh.read())
        os.unlink(count_file)
    except OSError:
        return None
    return received


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
    from rclpy.lifecycle import LifecycleNode
    from rvm_ros.msg import FeatureMap
    from std_msgs.msg import Header

    from rvm_ros.node.qos import make_qos
    from rvm_ros.node.scene_tokens import SceneTokensIO
    from rvm_ros.pipeline.params import config_from_params
    from rvm_ros.wire.encode import feature_map_fields, fill_message

    sub_proc = None
    count_file = f"/tmp/bench_scene_tokens_{os.getpid()}.count"
    if args.subscriber:
        sub_proc = subprocess.Popen([sys.executable, __file__, "--subscriber-child", count_file])
        # Never leave the subscriber behind, whatever happens here.
        atexit.register(sub_proc.kill)  # no-op once it has exited
    rclpy.init()
    node = LifecycleNode("bench_scene_tokens_pub")
    qos = make_qos("reliable", 5)
    params: dict[str, Any] = {
        "checkpoint": "random:S",
        "cameras": list(CAMERAS),
        "model_height": 16 * args.grid,
        "model_width": 16 * args.grid,
        "resize_mode": "letterbox",
        "scene_tokens.enabled": True,
        "scene_tokens.tolerance_ms": 20.0,
    }
    for i, cam in enumerate(CAMERAS):
        params[f"cameras.{cam}.translation"] = [i * 0.1, 0.0, 1.6]
        params[f"cameras.{cam}.rotation"] = [-0.5, 0.5, -0.5, 0.5]
    # The node's own scene-token code (node.py creates it the same way in on_configure).
    io = SceneTokensIO(node, config_from_params(params), qos, qos)
    node.trigger_configure()
    node.trigger_activate()  # enables the lifecycle publisher
    k = np.array([[500.0, 0, 319.5], [0, 500.0, 239.5], [0, 0, 1]])
    for cam in CAMERAS:
        io.assembler.set_intrinsics(cam, CameraIntrinsics(k, 640, 480, "plumb_bob", (0.0,) * 5))
    fmap_pubs = [node.create_publisher(FeatureMap, f"/bench_fm/{c}", qos) for c in CAMERAS]
    if sub_proc is not None:
        _wait_for_subscriber(io.publisher, 60.0)
    dtype = np.float16 if args.dtype == "float16" else np.float32
    header = Header(frame_id="cam")
    inputs = [results(s, args.dim, args.grid, dtype) for s in range(8)]  # cycled
    batches = [[SimpleNamespace(camera=r.camera, header=header) for r in outs] for outs in inputs]
    t_total: list[float] = []
    t_fmap: list[float] = []
    n = args.warmup + args.steps
    next_t = time.perf_counter()
    for s in range(n):
        outs = inputs[s % len(inputs)]
        t0 = time.perf_counter()
        assert io.publish_step(outs, batches[s % len(inputs)])
        t_node = time.perf_counter() - t0
        t0 = time.perf_counter()
        for p, r in zip(fmap_pubs, outs, strict=True):
            fields = feature_map_fields(r)  # type: ignore[arg-type]  # read-only protocol
            p.publish(fill_message(FeatureMap, fields, header=header))
        t_f = time.perf_counter() - t0
        if s >= args.warmup:
            t_total.append(t_node)
            t_fmap.append(t_f)
        next_t += args.period_ms / 1000.0
        time.sleep(max(0.0, next_t - time.perf_counter()))
    msg_bytes = len(CAMERAS) * (1 + args.grid**2) * args.dim * np.dtype(dtype).itemsize
    received = _stop_subscriber(sub_proc, count_file) if sub_proc is not None else None
    io.destroy()
    node.destroy_node()
    rclpy.shutdown()

    def ms(v: list[float], q: float) -> float:
        return float(np.percentile(np.asarray(v) * 1e3, q))

    print(
        f"SceneTokens: {len(CAMERAS)} cameras x (1 + {args.grid}x{args.grid}) tokens x "
        f"{args.dim} {args.dtype} = {msg_bytes / 1e6:.2f} MB payload, {args.steps} steps "
        f"every {args.period_ms:g} ms, subscriber: "
        + ("none" if received is None else f"another process, received {received}/{n}")
    )
    for name, v in (
        ("node path (SceneTokensIO.publish_step)", t_total),
        ("(for scale) 6 FeatureMap builds+publishes", t_fmap),
    ):
        print(f"  {name:44s} p50 {ms(v, 50):7.3f} ms   p90 {ms(v, 90):7.3f} ms")
    ratio = np.median(np.asarray(t_total) / np.asarray(t_fmap))
    print(f"  paired median ratio scene tokens / 6 FeatureMaps (same steps): {ratio:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
