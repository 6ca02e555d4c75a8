"""Measured matmul peak of this machine per precision (the figure of merit's denominator).

A square ``n x n`` matmul per precision, timed after a warm-up, best of the runtimes that
run it here: torch (oneDNN) for float32 / bfloat16, and OpenVINO for all three, int8
through a quantised MatMul (``FakeQuantize`` on both operands, which OpenVINO's CPU
plugin turns into an int8 x int8 kernel: VNNI / AMX where the CPU has them).
The figure is operations per second counting a multiply-add as 2.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # untyped package: the name documents the object, mypy sees Any
    import openvino as ov

PEAK_SIZE = 2048


def _median_seconds(fn: Callable[[], object], reps: int) -> float:
    fn()  # warm-up: kernels chosen, weights packed
    times = []
    for _ in range(reps):
        tick = time.perf_counter()
        fn()
        times.append(time.perf_counter() - tick)
    return float(np.median(times))


def torch_peaks(n: int, threads: int | None, reps: int) -> dict[str, float]:
    """GFLOP/s of torch ``n x n`` matmuls in float32 and bfloat16."""
    import torch

    if threads:
        torch.set_num_threads(threads)
    out: dict[str, float] = {}
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(n, n, generator=gen)
    b = torch.randn(n, n, generator=gen)
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        x, y = a.to(dtype), b.to(dtype)
        with torch.inference_mode():
            seconds = _median_seconds(functools.partial(torch.mm, x, y), reps)
        out[name] = 2.0 * n**3 / seconds / 1e9
    return out


def openvino_peaks(n: int, threads: int | None, reps: int) -> dict[str, float]:
    """GFLOP/s (GOP/s for int8) of OpenVINO ``n x n`` matmuls: fp32, bf16 and int8."""
    import openvino
    import openvino.opset13 as ops

    from rvm_ros.runtime.backends.openvino import compile_config

    rng = np.random.default_rng(0)
    weights = rng.standard_normal((n, n)).astype(np.float32)
    data = rng.standard_normal((n, n)).astype(np.float32)
    core = openvino.Core()
    out: dict[str, float] = {}
    for name in ("fp32", "bf16", "int8"):
        x = ops.parameter([n, n], np.float32, name="x")
        w: ov.Node = ops.constant(weights)
        lhs: ov.Node = x
        if name == "int8":
            lo, hi = ops.constant(np.float32(-4.0)), ops.constant(np.float32(4.0))
            lhs = ops.fake_quantize(x, lo, hi, lo, hi, 256)
            w = ops.fake_quantize(w, lo, hi, lo, hi, 255)
        model = openvino.Model([ops.matmul(lhs, w, False, False)], [x], f"matmul_{name}")
        request = core.compile_model(
            model, "CPU", compile_config(name, "CPU", threads)
        ).create_infer_request()
        request.set_input_tensor(openvino.Tensor(data))
        seconds = _median_seconds(request.infer, reps)
        out[name] = 2.0 * n**3 / seconds / 1e9
    return out


def matmul_peaks(
    n: int = PEAK_SIZE, threads: int | None = None, reps: int = 5
) -> dict[str, dict[str, float]]:
    """Per precision the best GFLOP/s and each runtime's figure.

    Returns:
        ``{"fp32": {"peak": .., "torch": .., "openvino": ..}, "bf16": {...}, "int8": {...}}``
        (a runtime that is not installed is left out).
    """
    per: dict[str, dict[str, float]] = {"fp32": {}, "bf16": {}, "int8": {}}
    for name, fig in torch_peaks(n, threads, reps).items():
        per[name]["torch"] = fig
    try:
        figures = openvino_peaks(n, threads, reps)
    except ImportError:
        figures = {}
    for name, fig in figures.items():
        per[name]["openvino"] = fig
    for figs in per.values():
        if figs:
            figs["peak"] = max(figs.values())
    return per
