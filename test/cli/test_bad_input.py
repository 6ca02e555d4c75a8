"""Every command x bad input: one-line error, exit code 1 or 2, no input changed (issue 12).

Categories: missing, unreadable (own test, run as an unprivileged user), damaged,
wrong type, absurd size, output equal to / containing / inside an input. Each case runs
the real CLI in-process on tiny inputs (a 40-frame 64x48 video, 4-frame bags,
``random:tiny``) and checks the exit code, the message, that stderr is one line with no
traceback, that no output (or temporary sibling) is left behind, and that every input
file — the shared ones and those a case prepares — hashes the same before and after.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest

from rvm_ros.cli import main
from rvm_ros.fsutil import file_sha256

# ----------------------------------------------------------------------------- inputs


def _tiny_video(path: Path, frames: int = 40, w: int = 64, h: int = 48) -> None:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, (w, h))
    rng = np.random.default_rng(0)
    for i in range(frames):
        f = np.zeros((h, w, 3), np.uint8)
        f[:, (i * 5) % w :] = 200
        f[8:20, 8:20] = rng.integers(0, 255, (12, 12, 3))
        writer.write(f)
    writer.release()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, fixtures_dir: Path) -> dict[str, Path]:
    """The shared inputs (never written by any case: checked by hash after each)."""
    from rvm_ros.bags.make_bag import make_bag

    root = tmp_path_factory.mktemp("inputs")
    w: dict[str, Path] = {"root": root}
    w["video"] = root / "clip.mp4"
    _tiny_video(w["video"])
    data = bytearray(w["video"].read_bytes())
    at = int(len(data) * 0.4)  # 300 random bytes in the middle: decoding stops there
    data[at : at + 300] = random.Random(1).randbytes(300)
    w["damaged_video"] = root / "damaged.mp4"
    w["damaged_video"].write_bytes(bytes(data))
    w["npz"] = root / "tiny.npz"
    shutil.copy(fixtures_dir / "rvm_tiny_params.npz", w["npz"])
    params = dict(np.load(w["npz"]))
    key = "encoder/layers_1/mlp/dense_out/kernel"
    nan = dict(params)
    nan[key] = nan[key].copy()
    nan[key][0, 0] = np.nan
    w["nan_npz"] = root / "nan.npz"
    np.savez(w["nan_npz"], **nan)  # type: ignore[arg-type]
    transposed = dict(params)
    transposed[key] = np.ascontiguousarray(transposed[key].T)
    w["transposed_npz"] = root / "transposed.npz"
    np.savez(w["transposed_npz"], **transposed)  # type: ignore[arg-type]
    w["cut_npz"] = root / "cut.npz"
    w["cut_npz"].write_bytes(w["npz"].read_bytes()[:50_000])
    w["frames"] = root / "frames.npy"
    np.save(w["frames"], np.zeros((2, 32, 32, 3), np.uint8))
    w["float_frames"] = root / "float_frames.npy"
    np.save(w["float_frames"], np.zeros((2, 32, 32, 3), np.float32))
    w["text"] = root / "notes.txt"
    w["text"].write_text("not data\n")
    w["folder"] = root / "folder"
    w["folder"].mkdir()
    w["bag"] = root / "bag"
    make_bag([w["video"]], w["bag"], max_frames=4, width=32)
    w["rnd_bag"] = root / "rnd_bag"
    shutil.copytree(w["bag"], w["rnd_bag"])
    mcap = w["rnd_bag"] / "bag.mcap"
    mcap.write_bytes(random.Random(2).randbytes(mcap.stat().st_size))
    w["bad_topic_bag"] = root / "bad_topic_bag"
    _bad_topic_bag(w["bad_topic_bag"])
    return w


def _bad_topic_bag(path: Path) -> None:
    from rvm_ros.bags import rosbag2 as bags
    from rvm_ros.bags.make_bag import image_message

    store = bags.typestore()
    with bags.BagWriter(path, "mcap", store) as writer:
        msgtype, msg = image_message(store, np.zeros((16, 16, 3), np.uint8), 1, "cam")
        writer.write("/bad topic!!", msgtype, msg, 1)


def _hashes(*roots: Path) -> dict[str, str]:
    out = {}
    for root in roots:
        for p in sorted(root.rglob("*")):
            if p.is_file() and not p.is_symlink():
                out[str(p)] = file_sha256(p)
    return out


# ----------------------------------------------------------------------------- cases


@dataclass(frozen=True)
class Case:
    """One bad invocation.

    Attributes:
        argv: ``(inputs, tmp) -> argv``.
        code: Expected exit code.
        message: Expected in the error line.
        setup: Prepares ``tmp`` (files it creates count as inputs: hashed before/after).
        absent: Paths under ``tmp`` that must not exist afterwards.
        forbidden: Text the message must not hold (e.g. unrelated keys).
        low_memory: Pretend only 64 MiB are available (memory estimates).
        chdir: Run from ``tmp``.
    """

    argv: Callable[[dict[str, Path], Path], list[str]]
    code: int
    message: str
    setup: Callable[[dict[str, Path], Path], None] | None = None
    absent: tuple[str, ...] = ()
    forbidden: tuple[str, ...] = ()
    low_memory: bool = False
    chdir: bool = False


def _s(p: Path) -> str:
    return str(p)


def _existing(name: str, content: bytes = b"previous output") -> Callable[..., None]:
    def setup(w: dict[str, Path], tmp: Path) -> None:
        (tmp / name).write_bytes(content)

    return setup


def _copy_into(names: dict[str, str]) -> Callable[..., None]:
    """Copy shared inputs into tmp (``{key of world: relative destination}``)."""

    def setup(w: dict[str, Path], tmp: Path) -> None:
        for key, dest in names.items():
            target = tmp / dest
            target.parent.mkdir(parents=True, exist_ok=True)
            if w[key].is_dir():
                shutil.copytree(w[key], target)
            else:
                shutil.copy(w[key], target)
        (tmp / next(iter(names.values()))).parent.joinpath("unrelated.txt").write_text("mine")

    return setup


def _old_bag(w: dict[str, Path], tmp: Path) -> None:
    shutil.copytree(w["bag"], tmp / "b")


def _link_to_npz(w: dict[str, Path], tmp: Path) -> None:
    os.symlink(w["npz"], tmp / "link.safetensors")


RANDOM = ["--checkpoint", "random:tiny"]
REPLAY_FAST = ["--checkpoint", "random:tiny", "--backend", "torch", "--no-visuals"]

CASES: dict[str, Case] = {
    # ---------------------------------------------------------------- convert
    "convert-missing": Case(
        lambda w, t: ["convert", _s(w["root"] / "nope.npz"), _s(t / "o.safetensors")],
        2,
        "nope.npz not found",
        absent=("o.safetensors",),
    ),
    "convert-damaged-truncated": Case(
        lambda w, t: ["convert", _s(w["cut_npz"]), _s(t / "o.safetensors")],
        2,
        "not a readable .npz archive",
        absent=("o.safetensors",),
    ),
    "convert-damaged-nan": Case(
        lambda w, t: ["convert", _s(w["nan_npz"]), _s(t / "o.safetensors")],
        2,
        "non-finite weights in encoder.layers.1.mlp.dense_out.weight (1 of 16384",
        absent=("o.safetensors",),
    ),
    "convert-damaged-transposed": Case(
        lambda w, t: ["convert", _s(w["transposed_npz"]), _s(t / "o.safetensors")],
        2,
        "shape mismatch: encoder/layers_1/mlp/dense_out/kernel (64, 256) "
        "(expected (256, 64); transposed?)",
        absent=("o.safetensors",),
        forbidden=("dense_in", "layers_0", "bias"),
    ),
    "convert-wrong-type-folder": Case(
        lambda w, t: ["convert", _s(w["folder"]), _s(t / "o.safetensors")], 2, "is not a file"
    ),
    "convert-wrong-type-text": Case(
        lambda w, t: ["convert", _s(w["text"]), _s(t / "o.safetensors")],
        2,
        "not a readable .npz archive",
    ),
    "convert-output-under-a-file": Case(
        lambda w, t: ["convert", _s(w["npz"]), _s(w["text"] / "o.safetensors")],
        1,
        "notes.txt is not a folder",
    ),
    "convert-output-exists": Case(
        lambda w, t: ["convert", _s(w["npz"]), _s(t / "o.safetensors")],
        2,
        "exists; pass --force",
        setup=_existing("o.safetensors"),
    ),
    "convert-output-is-input": Case(
        lambda w, t: ["convert", _s(t / "m.safetensors"), _s(t / "m.safetensors"), "--force"],
        2,
        "is the input",
        setup=lambda w, t: shutil.copy(w["npz"], t / "m.safetensors"),
    ),
    "convert-output-symlink-to-input": Case(
        lambda w, t: ["convert", _s(w["npz"]), _s(t / "link.safetensors"), "--force"],
        2,
        "is the input",
        setup=_link_to_npz,
    ),
    # ---------------------------------------------------------------- encode
    "encode-missing-input": Case(
        lambda w, t: ["encode", *RANDOM, "--input", _s(t / "no.mp4"), "--output", _s(t / "e.npy")],
        2,
        "no.mp4: no such file",
        absent=("e.npy",),
    ),
    "encode-missing-checkpoint": Case(
        lambda w, t: [
            "encode",
            "--checkpoint",
            _s(t / "none.safetensors"),
            "--input",
            _s(w["frames"]),
            "--output",
            _s(t / "e.npy"),
        ],
        2,
        "cannot",
        absent=("e.npy",),
    ),
    "encode-damaged-video-strict": Case(
        lambda w, t: [
            "encode",
            *RANDOM,
            "--input",
            _s(w["damaged_video"]),
            "--output",
            _s(t / "e.npy"),
            "--height",
            "32",
            "--width",
            "32",
            "--strict",
        ],
        1,
        "decoded 17 of the 40 frames its container lists",
        absent=("e.npy",),
    ),
    "encode-damaged-checkpoint": Case(
        lambda w, t: [
            "encode",
            "--checkpoint",
            _s(w["nan_npz"]),
            "--input",
            _s(w["frames"]),
            "--output",
            _s(t / "e.npy"),
        ],
        2,
        "non-finite weights in encoder.layers.1.mlp.dense_out.weight",
        absent=("e.npy",),
    ),
    "encode-wrong-type-text": Case(
        lambda w, t: ["encode", *RANDOM, "--input", _s(w["text"]), "--output", _s(t / "e.npy")],
        2,
        "OpenCV cannot open this video",
    ),
    "encode-wrong-type-folder": Case(
        lambda w, t: ["encode", *RANDOM, "--input", _s(w["folder"]), "--output", _s(t / "e.npy")],
        2,
        "not a file",
    ),
    "encode-wrong-type-float-frames": Case(
        lambda w, t: [
            "encode",
            *RANDOM,
            "--input",
            _s(w["float_frames"]),
            "--output",
            _s(t / "e.npy"),
        ],
        2,
        "frames must be uint8, got float32",
    ),
    "encode-absurd-size": Case(
        lambda w, t: [
            "encode",
            *RANDOM,
            "--input",
            _s(w["video"]),
            "--output",
            _s(t / "e.npy"),
            "--height",
            "100000",
            "--width",
            "64",
        ],
        2,
        "--height must be a positive multiple of 16 up to 8192, got 100000",
    ),
    "encode-absurd-memory": Case(
        lambda w, t: [
            "encode",
            *RANDOM,
            "--input",
            _s(w["video"]),
            "--output",
            _s(t / "e.npy"),
            "--height",
            "4096",
            "--width",
            "4096",
        ],
        2,
        "GiB, more than half of the",
        low_memory=True,
        absent=("e.npy",),
    ),
    "encode-output-exists": Case(
        lambda w, t: ["encode", *RANDOM, "--input", _s(w["frames"]), "--output", _s(t / "e.npy")],
        2,
        "exists; pass --force",
        setup=_existing("e.npy"),
    ),
    "encode-output-is-input": Case(
        lambda w, t: [
            "encode",
            *RANDOM,
            "--input",
            _s(w["frames"]),
            "--output",
            _s(w["frames"]),
            "--force",
        ],
        2,
        "is the input",
    ),
    "encode-output-under-a-file": Case(
        lambda w, t: [
            "encode",
            *RANDOM,
            "--input",
            _s(w["frames"]),
            "--output",
            _s(w["text"] / "e.npy"),
        ],
        1,
        "notes.txt is not a folder",
    ),
    # ---------------------------------------------------------------- export
    "export-missing-checkpoint": Case(
        lambda w, t: [
            "export",
            "--checkpoint",
            _s(t / "none.npz"),
            "--out",
            _s(t / "x.onnx"),
        ],
        2,
        "none.npz",
        absent=("x.onnx",),
    ),
    "export-wrong-type-checkpoint": Case(
        lambda w, t: ["export", "--checkpoint", _s(w["text"]), "--out", _s(t / "x.onnx")],
        2,
        "notes.txt",
        absent=("x.onnx",),
    ),
    "export-damaged-checkpoint": Case(
        lambda w, t: ["export", "--checkpoint", _s(w["nan_npz"]), "--out", _s(t / "x.onnx")],
        2,
        "non-finite weights",
        absent=("x.onnx",),
    ),
    "export-absurd-size": Case(
        lambda w, t: [
            "export",
            *RANDOM,
            "--out",
            _s(t / "x.onnx"),
            "--height",
            "100000",
        ],
        2,
        "--height must be a positive multiple of 16 up to 4096, got 100000",
    ),
    "export-output-exists": Case(
        lambda w, t: ["export", *RANDOM, "--out", _s(t / "x.onnx")],
        2,
        "exists; pass --force",
        setup=_existing("x.onnx"),
    ),
    "export-output-is-checkpoint": Case(
        lambda w, t: ["export", "--checkpoint", _s(w["npz"]), "--out", _s(w["npz"]), "--force"],
        2,
        "is the input",
    ),
    "export-output-under-a-file": Case(
        lambda w, t: ["export", *RANDOM, "--out", _s(w["text"] / "x.onnx")],
        1,
        "notes.txt is not a folder",
    ),
    # ---------------------------------------------------------------- make-bag
    "make-bag-missing": Case(
        lambda w, t: ["make-bag", _s(t / "no.mp4"), "--out", _s(t / "b")],
        1,
        "no.mp4: no such file",
        absent=("b",),
    ),
    "make-bag-missing-with-force-keeps-the-old-bag": Case(
        lambda w, t: ["make-bag", _s(t / "no.mp4"), "--out", _s(t / "b"), "--force"],
        1,
        "no.mp4: no such file",
        setup=_old_bag,
    ),
    "make-bag-damaged-strict": Case(
        lambda w, t: ["make-bag", _s(w["damaged_video"]), "--out", _s(t / "b"), "--strict"],
        1,
        "decoded 17 of the 40 frames its container lists",
        absent=("b",),
    ),
    "make-bag-wrong-type-text": Case(
        lambda w, t: ["make-bag", _s(w["text"]), "--out", _s(t / "b")],
        1,
        "OpenCV cannot open this video",
        absent=("b",),
    ),
    "make-bag-wrong-type-folder": Case(
        lambda w, t: ["make-bag", _s(w["folder"]), "--out", _s(t / "b")],
        1,
        "not a file",
        absent=("b",),
    ),
    "make-bag-absurd-width": Case(
        lambda w, t: ["make-bag", _s(w["video"]), "--out", _s(t / "b"), "--width", "100000"],
        2,
        "--width must be between 16 and 8192, got 100000",
        absent=("b",),
    ),
    "make-bag-absurd-memory": Case(
        lambda w, t: ["make-bag", _s(w["video"]), "--out", _s(t / "b"), "--width", "8192"],
        2,
        "GiB of memory at once",
        low_memory=True,
        absent=("b",),
    ),
    "make-bag-bad-topic-prefix": Case(
        lambda w, t: [
            "make-bag",
            _s(w["video"]),
            "--out",
            _s(t / "b"),
            "--topic-prefix",
            "bad topic!!",
        ],
        2,
        "is not a valid ROS topic prefix",
        absent=("b",),
    ),
    "make-bag-output-contains-input": Case(
        lambda w, t: ["make-bag", _s(t / "data" / "clip.mp4"), "--out", _s(t / "data"), "--force"],
        2,
        "contains the input",
        setup=_copy_into({"video": "data/clip.mp4"}),
    ),
    "make-bag-output-is-input": Case(
        lambda w, t: ["make-bag", _s(w["video"]), "--out", _s(w["video"]), "--force"],
        2,
        "is the input",
    ),
    "make-bag-output-under-a-file": Case(
        lambda w, t: ["make-bag", _s(w["video"]), "--out", _s(w["text"] / "b")],
        1,
        "notes.txt is not a folder",
    ),
    # ---------------------------------------------------------------- replay
    "replay-missing": Case(
        lambda w, t: ["replay", _s(t / "nobag"), "--out", _s(t / "r"), *REPLAY_FAST],
        2,
        "nobag does not exist",
        absent=("r", "r.partial"),
    ),
    "replay-damaged-random-bytes": Case(
        lambda w, t: ["replay", _s(w["rnd_bag"]), "--out", _s(t / "r"), *REPLAY_FAST],
        2,
        "is damaged and nothing in it can be read",
        absent=("r", "r.partial"),
    ),
    "replay-damaged-checkpoint": Case(
        lambda w, t: [
            "replay",
            _s(w["bag"]),
            "--out",
            _s(t / "r"),
            "--checkpoint",
            _s(w["nan_npz"]),
            "--backend",
            "torch",
            "--no-visuals",
        ],
        2,
        "non-finite weights in encoder.layers.1.mlp.dense_out.weight",
        absent=("r", "r.partial"),
    ),
    "replay-wrong-type-text": Case(
        lambda w, t: ["replay", _s(w["text"]), "--out", _s(t / "r"), *REPLAY_FAST],
        2,
        "cannot read bag",
        absent=("r", "r.partial"),
    ),
    "replay-wrong-type-folder": Case(
        lambda w, t: ["replay", _s(w["folder"]), "--out", _s(t / "r"), *REPLAY_FAST],
        2,
        "cannot read bag",
        absent=("r", "r.partial"),
    ),
    "replay-typo-parameter": Case(
        lambda w, t: [
            "replay",
            _s(w["bag"]),
            "--out",
            _s(t / "r"),
            *REPLAY_FAST,
            "-p",
            "typo_param:=3",
        ],
        2,
        "unknown parameter(s) typo_param",
        absent=("r", "r.partial"),
    ),
    "replay-camera-parameter-without-config": Case(
        lambda w, t: [
            "replay",
            _s(w["bag"]),
            "--out",
            _s(t / "r"),
            *REPLAY_FAST,
            "-p",
            "cameras.front.topic:=/cam/image_raw",
        ],
        2,
        "unknown parameter(s) cameras.front.topic",
        absent=("r", "r.partial"),
    ),
    "replay-absurd-size": Case(
        lambda w, t: [
            "replay",
            _s(w["bag"]),
            "--out",
            _s(t / "r"),
            *REPLAY_FAST,
            "-p",
            "model_height:=100000",
        ],
        2,
        "model_height: must be <= 4096, got 100000",
        absent=("r", "r.partial"),
    ),
    "replay-output-is-input": Case(
        lambda w, t: ["replay", _s(w["bag"]), "--out", _s(w["bag"]), "--force", *REPLAY_FAST],
        2,
        "is the input",
    ),
    "replay-output-contains-input": Case(
        lambda w, t: [
            "replay",
            _s(t / "data" / "bag"),
            "--out",
            _s(t / "data"),
            "--force",
            *REPLAY_FAST,
        ],
        2,
        "contains the input",
        setup=_copy_into({"bag": "data/bag"}),
    ),
    "replay-output-inside-input": Case(
        lambda w, t: ["replay", _s(w["bag"]), "--out", _s(w["bag"] / "out"), *REPLAY_FAST],
        2,
        "lies inside the input",
    ),
    "replay-output-current-directory": Case(
        lambda w, t: ["replay", _s(w["bag"]), "--out", ".", "--force", *REPLAY_FAST],
        2,
        "is or contains the current directory",
        setup=_existing("mine.txt"),
        chdir=True,
    ),
    "replay-output-under-a-file": Case(
        lambda w, t: ["replay", _s(w["bag"]), "--out", _s(w["text"] / "r"), *REPLAY_FAST],
        1,
        "notes.txt is not a folder",
    ),
    # ---------------------------------------------------------------- play
    "play-missing": Case(lambda w, t: ["play", _s(t / "nobag")], 2, "nobag does not exist"),
    "play-damaged-random-bytes": Case(
        lambda w, t: ["play", _s(w["rnd_bag"]), "--rate", "0"],
        2,
        "is damaged and nothing in it can be read",
    ),
    "play-wrong-type-text": Case(
        lambda w, t: ["play", _s(w["text"]), "--rate", "0"], 2, "cannot read bag"
    ),
    "play-invalid-topic-name": Case(
        lambda w, t: ["play", _s(w["bad_topic_bag"]), "--rate", "0"],
        2,
        "bag topic '/bad topic!!' is not a valid ROS topic name",
    ),
    "play-absurd-depth": Case(
        lambda w, t: ["play", _s(w["bag"]), "--depth", "0"], 2, "--depth must be >= 1, got 0"
    ),
    # ---------------------------------------------------------------- bench, demo, fetch
    "bench-wrong-type-checkpoint": Case(
        lambda w, t: ["bench", "--checkpoint", _s(w["text"]), "--frames", "1"],
        2,
        "not a readable safetensors file",
    ),
    "bench-missing-video": Case(
        lambda w, t: ["bench", *RANDOM, "--video", _s(t / "no.mp4"), "--frames", "1"],
        2,
        "no.mp4: no such file",
    ),
    "bench-absurd-size": Case(
        lambda w, t: ["bench", *RANDOM, "--height", "100000", "--frames", "1"],
        2,
        "--height must be a positive multiple of 16 up to 4096, got 100000",
    ),
    "demo-output-under-a-file": Case(
        lambda w, t: ["demo", "--out", _s(w["text"] / "d"), "--frames", "2"],
        1,
        "notes.txt is not a folder",
    ),
    "fetch-destination-under-a-file": Case(
        lambda w, t: [
            "fetch",
            "S",
            "--dest",
            _s(w["text"] / "f"),
            "--base-url",
            "file:///nonexistent",
            "-q",
        ],
        1,
        "Not a directory",
    ),
}


# ------------------------------------------------- hostile checkpoint metadata (issue 27)


def _hostile_checkpoint(**fields: object) -> Callable[..., None]:
    """A real tiny checkpoint whose ``rvm_config`` metadata has ``fields`` replaced
    (``_raw`` gives the whole metadata text)."""

    def setup(w: dict[str, Path], tmp: Path) -> None:
        from safetensors.torch import save_file

        from rvm_ros.checkpoint import random_model

        model = random_model("tiny", 0)
        raw = fields.get("_raw")
        config = raw if isinstance(raw, str) else json.dumps({**model.config.to_dict(), **fields})
        state = {k: v.contiguous() for k, v in model.state_dict().items()}
        save_file(state, str(tmp / "h.safetensors"), metadata={"rvm_config": config})

    return setup


def _encode_with(path: str) -> Callable[[dict[str, Path], Path], list[str]]:
    return lambda w, t: [
        "encode",
        "--checkpoint",
        _s(t / path),
        "--input",
        _s(w["frames"]),
        "--output",
        _s(t / "e.npy"),
    ]


def _fifo(w: dict[str, Path], tmp: Path) -> None:
    os.mkfifo(tmp / "pipe.safetensors")


def _loop(w: dict[str, Path], tmp: Path) -> None:
    os.symlink(tmp / "loop.safetensors", tmp / "loop.safetensors")


CASES.update(
    {
        "encode-checkpoint-pos-grid-1500": Case(
            _encode_with("h.safetensors"),
            2,
            "RVMConfig.pos_grid: 1500 is more than the 256 allowed",
            setup=_hostile_checkpoint(pos_grid=1500),
            absent=("e.npy",),
        ),
        "encode-checkpoint-pos-grid-100000": Case(
            _encode_with("h.safetensors"),
            2,
            "RVMConfig.pos_grid: 100000 is more than the 256 allowed",
            setup=_hostile_checkpoint(pos_grid=100000),
            absent=("e.npy",),
        ),
        "encode-checkpoint-dim-10e400": Case(
            _encode_with("h.safetensors"),
            2,
            "RVMConfig.dim: a 401-digit number is more than the 8192 allowed",
            setup=_hostile_checkpoint(dim=10**400),
            absent=("e.npy",),
        ),
        "encode-checkpoint-layers-huge": Case(
            _encode_with("h.safetensors"),
            2,
            "RVMConfig.enc_layers: 1000000 is more than the 256 allowed",
            setup=_hostile_checkpoint(enc_layers=10**6),
            absent=("e.npy",),
        ),
        "encode-checkpoint-nested-json": Case(
            _encode_with("h.safetensors"),
            2,
            "invalid 'rvm_config' metadata: RVMConfig: JSON nested too deeply",
            setup=_hostile_checkpoint(_raw="[" * 5000 + "]" * 5000),
            absent=("e.npy",),
        ),
        "encode-checkpoint-fifo": Case(
            _encode_with("pipe.safetensors"),
            2,
            "a FIFO (named pipe), not a regular file",
            setup=_fifo,
            absent=("e.npy",),
        ),
        "train-output-existing-folder": Case(
            lambda w, t: ["train", "--out-dir", _s(t / "run"), "steps=1", "progress=false"],
            2,
            "exists and holds no run to resume; pass --force",
            setup=_copy_into({"text": "run/config.yaml"}),
        ),
        "train-absurd-batch": Case(
            lambda w, t: ["train", "--out-dir", _s(t / "run"), "batch_size=10000000"],
            2,
            "batch_size: 10000000 is more than the 1048576 allowed",
            absent=("run",),
        ),
        "train-infinite-lr": Case(
            lambda w, t: ["train", "--out-dir", _s(t / "run"), "optim.lr=.inf"],
            2,
            "optim.lr: must be finite, got inf",
            absent=("run",),
        ),
        "eval-reconstruction-output-exists": Case(
            lambda w, t: [
                "eval-reconstruction",
                *RANDOM,
                "--data",
                _s(w["video"]),
                "--height",
                "64",
                "--width",
                "64",
                "--out",
                _s(t / "ev"),
            ],
            2,
            "exists; pass --force",
            setup=_copy_into({"text": "ev/reconstruction.json"}),
        ),
        "eval-reconstruction-negative-shift": Case(
            lambda w, t: [
                "eval-reconstruction",
                *RANDOM,
                "--data",
                _s(w["video"]),
                "--height",
                "64",
                "--width",
                "64",
                "--out",
                _s(t / "ev"),
                "--correspondence",
                "--shift",
                "-1000",
            ],
            2,
            "--shift must be in [0, 32] (half the frame), got -1000",
            absent=("ev",),
        ),
        "eval-reconstruction-absurd-clips": Case(
            lambda w, t: [
                "eval-reconstruction",
                *RANDOM,
                "--data",
                _s(w["video"]),
                "--clips",
                "100000000",
                "--out",
                _s(t / "ev"),
            ],
            2,
            "--clips must be at most 100000",
            absent=("ev",),
        ),
        "eval-tracking-absurd-points": Case(
            lambda w, t: ["eval-tracking", *RANDOM, "--points", "100000000", "--out", _s(t / "o")],
            2,
            "--points: 100000000 is more than the 100000 allowed",
            absent=("o",),
        ),
        "eval-tracking-points-beyond-memory": Case(
            lambda w, t: [
                "eval-tracking",
                *RANDOM,
                "--points",
                "100000",
                "--frames",
                "90000",
                "--height",
                "64",
                "--width",
                "64",
                "--out",
                _s(t / "o"),
            ],
            2,
            "--points: 100000 would need about",
            absent=("o",),
        ),
        "eval-reconstruction-absurd-size": Case(
            lambda w, t: [
                "eval-reconstruction",
                *RANDOM,
                "--data",
                _s(w["video"]),
                "--height",
                "1048576",
                "--out",
                _s(t / "ev"),
            ],
            2,
            "--height must be a positive multiple of 16 up to 4096",
            absent=("ev",),
        ),
        "bench-absurd-frames": Case(
            lambda w, t: [
                "bench",
                *RANDOM,
                "--frames",
                "100000000",
                "--height",
                "64",
                "--width",
                "64",
                "--backend",
                "torch",
            ],
            2,
            "--frames: 100000000 is more than the 10000000 allowed",
        ),
        "bench-frames-beyond-memory": Case(
            lambda w, t: [
                "bench",
                *RANDOM,
                "--frames",
                "5000000",
                "--height",
                "4096",
                "--width",
                "4096",
                "--backend",
                "torch",
            ],
            2,
            "--frames: 5000000 would need about",
        ),
        "bench-json-exists": Case(
            lambda w, t: ["bench", *RANDOM, "--frames", "1", "--json", _s(t / "b.json")],
            2,
            "b.json exists; pass --force",
            setup=_existing("b.json"),
        ),
        "encode-plan-without-sidecar": Case(
            _encode_with("model.plan"),
            2,
            "model.plan is a TensorRT engine without its sidecar model.plan.json",
            setup=_existing("model.plan", b"\x00" * 64),
            absent=("e.npy",),
        ),
        "encode-checkpoint-symlink-loop": Case(
            _encode_with("loop.safetensors"),
            2,
            "a symlink loop",
            setup=_loop,
            absent=("e.npy",),
        ),
    }
)


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input(
    name: str,
    world: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    case = CASES[name]
    if case.setup is not None:
        case.setup(world, tmp_path)
    if case.low_memory:
        monkeypatch.setattr("rvm_ros.fsutil.available_memory", lambda: 64 << 20)
    if case.chdir:
        monkeypatch.chdir(tmp_path)
    before = _hashes(world["root"], tmp_path)
    listing = sorted(p.name for p in tmp_path.iterdir())
    capsys.readouterr()
    code = main(case.argv(world, tmp_path))
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("rvm-ros: error: ")]
    # data loss first: no input (shared, or prepared by the case) changed or vanished
    assert _hashes(world["root"], tmp_path) == before, "an input file changed"
    assert code == case.code, err
    assert "Traceback" not in err
    assert len(errors) == 1 and case.message in errors[0], err
    for text in case.forbidden:
        assert text not in errors[0], f"unrelated {text!r} named: {errors[0]}"
    # nothing written: no output, no temporary sibling (.x.tmp-*), no .partial
    assert sorted(p.name for p in tmp_path.iterdir()) == listing
    for rel in case.absent:
        assert not (tmp_path / rel).exists()


# ------------------------------------------------------------------ damage is reported


def test_damaged_video_is_a_warning_without_strict(
    world: dict[str, Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    out = tmp_path / "e.npy"
    argv = ["encode", *RANDOM, "--input", _s(world["damaged_video"]), "--output", _s(out)]
    assert main([*argv, "--height", "32", "--width", "32"]) == 0
    assert np.load(out).shape[1] == 17  # what could be decoded, and said so:
    assert "decoded 17 of the 40 frames its container lists" in caplog.text
    caplog.clear()
    assert main(["make-bag", _s(world["damaged_video"]), "--out", _s(tmp_path / "b")]) == 0
    assert "decoded 17 of the 40 frames its container lists" in caplog.text


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_truncated_bag_gives_a_partial_output_with_what_was_read(
    world: dict[str, Path], tmp_path: Path, storage: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """README: a damaged bag is read up to the damage, the error names what could not be
    read, and the output is marked partial, never complete-looking."""
    from rvm_ros.bags.make_bag import make_bag

    bag = tmp_path / "bag"
    make_bag([world["video"]], bag, storage, max_frames=12, width=32)
    data = next(p for p in bag.iterdir() if p.suffix in (".mcap", ".db3"))
    with open(data, "r+b") as fh:
        fh.truncate(data.stat().st_size * 6 // 10)
    out = tmp_path / "r"
    assert main(["replay", _s(bag), "--out", _s(out), *REPLAY_FAST, "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert f"read error: {data}: could not read past message" in err
    assert not out.exists()
    partial = tmp_path / "r.partial"
    assert (partial / "PARTIAL").is_file()
    report = json.loads((partial / "report.json").read_text())
    assert report["complete"] is False
    cam = next(iter(report["cameras"].values()))
    assert 0 < cam["processed"] < 12  # the frames before the damage, processed


# ------------------------------------------------------------------ unreadable inputs

_CHILD = r"""
import contextlib, io, json, sys
from rvm_ros.cli import main
results = []
for argv in json.loads(sys.argv[1]):
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = main(argv)
        except BaseException as exc:  # a traceback: reported, then failed on
            import traceback
            code = "traceback: " + "".join(traceback.format_exception(exc))[-600:]
    results.append([code, err.getvalue()])
print(json.dumps(results))
"""


def test_unreadable_inputs_are_one_line_errors(world: dict[str, Path]) -> None:
    """Inputs without read permission: one line, exit 1 or 2, for every command.

    Root reads everything, so as root the commands run without CAP_DAC_OVERRIDE and
    CAP_DAC_READ_SEARCH (util-linux ``setpriv``): file modes then apply to them too.
    """
    import tempfile

    root = Path(tempfile.mkdtemp(prefix="rvm_unreadable_"))
    try:
        root.chmod(0o777)
        for key in ("video", "npz", "frames"):
            shutil.copy(world[key], root / world[key].name)
        shutil.copytree(world["bag"], root / "bag")
        for p in root.rglob("*"):
            p.chmod(0o777 if p.is_dir() else 0o000)
        (root / "bag").chmod(0o777)
        out = root / "out"
        out.mkdir()
        out.chmod(0o777)
        r = root
        runs = [
            ["convert", _s(r / "tiny.npz"), _s(out / "o.safetensors")],
            ["encode", "--checkpoint", _s(r / "tiny.npz"), "--input", _s(r / "frames.npy"),
             "--output", _s(out / "e.npy")],
            ["encode", *RANDOM, "--input", _s(r / "clip.mp4"), "--output", _s(out / "e.npy")],
            ["export", "--checkpoint", _s(r / "tiny.npz"), "--out", _s(out / "x.onnx")],
            ["make-bag", _s(r / "clip.mp4"), "--out", _s(out / "b")],
            ["replay", _s(r / "bag"), "--out", _s(out / "r"), *REPLAY_FAST],
            ["play", _s(r / "bag"), "--rate", "0"],
            ["bench", "--checkpoint", _s(r / "tiny.npz"), "--frames", "1"],
        ]  # fmt: skip
        before = _hashes(root)
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path), HOME=str(out))

        command = [sys.executable, "-c", _CHILD, json.dumps(runs)]
        if os.geteuid() == 0:  # root without the capabilities that bypass file permissions
            setpriv = shutil.which("setpriv")
            if setpriv is None:
                pytest.fail("running as root needs util-linux setpriv to drop CAP_DAC_*")
            caps = "-dac_override,-dac_read_search"
            command = [setpriv, f"--bounding-set={caps}", f"--inh-caps={caps}", *command]
        proc = subprocess.run(
            command, capture_output=True, text=True, env=env, timeout=300, cwd=str(out)
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        results = json.loads(proc.stdout.splitlines()[-1])
        for argv, (code, err) in zip(runs, results, strict=True):
            errors = [line for line in err.splitlines() if line.startswith("rvm-ros: error:")]
            assert code in (1, 2), (argv[0], code, err)
            assert len(errors) == 1 and "Traceback" not in err, (argv[0], err)
            assert "ermission denied" in errors[0], (argv, err)
        assert _hashes(root) == before
        assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == []
    finally:
        for p in [root, *root.rglob("*")]:
            p.chmod(0o777)
        shutil.rmtree(root, ignore_errors=True)


# ------------------------------------------------------------------ no silent bad output


def test_non_finite_features_are_an_error_not_a_file(
    world: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A model that gives NaN (e.g. an fp16 overflow) never yields a features file."""
    import rvm_ros.runtime

    real = rvm_ros.runtime.encode_video

    def nan_features(*args: object, **kwargs: object) -> np.ndarray:
        out = np.array(real(*args, **kwargs))  # type: ignore[arg-type]
        out[0, -1, 3, 5] = np.nan  # one value of one token of the last frame
        return out

    monkeypatch.setattr(rvm_ros.runtime, "encode_video", nan_features)
    out = tmp_path / "e.npy"
    assert main(["encode", *RANDOM, "--input", _s(world["frames"]), "--output", _s(out)]) == 1
    assert "1 non-finite feature values" in capsys.readouterr().err
    assert sorted(tmp_path.iterdir()) == []


class _NotHandled(Exception):
    pass


def test_sigterm_stops_a_command_like_ctrl_c_and_leaves_nothing(
    world: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """SIGTERM during make-bag: exit 130, the half-written bag removed, the old one kept."""
    import signal

    import rvm_ros.bags.make_bag as make_bag_module

    shutil.copytree(world["bag"], tmp_path / "b")
    before = _hashes(tmp_path)
    real = make_bag_module.image_message
    calls = {"n": 0}

    def terminating(*args: object, **kwargs: object) -> object:
        calls["n"] += 1
        if calls["n"] == 2:
            os.kill(os.getpid(), signal.SIGTERM)
        return real(*args, **kwargs)  # type: ignore[arg-type]

    def not_handled(*_: object) -> None:
        raise _NotHandled("SIGTERM reached the test: the CLI did not handle it")

    monkeypatch.setattr(make_bag_module, "image_message", terminating)
    previous = signal.signal(signal.SIGTERM, not_handled)  # stands in for "killed"
    try:
        code = main(["make-bag", _s(world["video"]), "--out", _s(tmp_path / "b"), "--force"])
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert code == 130
    assert "interrupted" in capsys.readouterr().err
    assert _hashes(tmp_path) == before  # previous bag untouched, no temporary sibling left
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b"]


# ------------------------------------------------------------- a full disk (issue 27)


def _run_with_file_size_limit(argv: list[str], limit: int) -> subprocess.CompletedProcess[str]:
    """``rvm-ros argv`` where no file may grow past ``limit`` bytes (writes then fail like
    on a full disk: EFBIG instead of ENOSPC, the same OSError path)."""
    import resource
    import signal

    def limit_files() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return subprocess.run(
        [sys.executable, "-m", "rvm_ros.cli", *argv],
        preexec_fn=limit_files,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_a_full_disk_is_one_line_and_leaves_nothing_that_looks_complete(
    world: dict[str, Path], tmp_path: Path
) -> None:
    small = [
        "model.dim=32", "model.enc_layers=1", "model.enc_heads=2", "model.core_layers=1",
        "model.core_heads=2", "model.dec_dim=32", "model.dec_layers=1", "model.dec_heads=2",
        "data.height=64", "data.width=64", "data.source_frames=2", "data.target_frames=2",
        "data.max_offset=12", "data.procedural=1", "data.workers=0", "batch_size=2",
        "steps=2", "progress=false", "threads=1", "checkpoint_every=1",
    ]  # fmt: skip
    run = tmp_path / "run"
    train = _run_with_file_size_limit(["train", "--out-dir", str(run), *small], 150_000)
    assert train.returncode == 1, train.stderr
    assert "Traceback" not in train.stderr
    assert train.stderr.strip().splitlines() == [
        line for line in train.stderr.strip().splitlines() if line.startswith("rvm-ros: error:")
    ]
    assert "cannot write" in train.stderr
    assert not list(run.glob("*.safetensors")) and not list(run.glob("*.state.pt"))
    out = tmp_path / "replay"
    replay = _run_with_file_size_limit(
        ["replay", str(world["bag"]), "--out", str(out), *REPLAY_FAST], 20_000
    )
    assert replay.returncode == 1, replay.stderr
    assert "Traceback" not in replay.stderr
    assert replay.stderr.strip().startswith("rvm-ros: error:")
    assert len(replay.stderr.strip().splitlines()) == 1, replay.stderr
    assert not out.exists()
    partial = tmp_path / "replay.partial"
    assert (partial / "PARTIAL").is_file() and not (partial / "report.json").exists()
