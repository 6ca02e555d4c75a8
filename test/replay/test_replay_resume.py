"""``--resume`` of a local multi-bag run, and ``--ray`` without the ray package."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from replay_helpers import FRAMES, small_settings

from rvm_ros.bags import rosbag2 as bags
from rvm_ros.bags.make_bag import make_bag
from rvm_ros.cli import main as cli_main
from rvm_ros.replay.jobs import JOURNAL
from rvm_ros.replay.settings import PARTIAL_MARKER, ReplayError
from rvm_ros.replay.workers import replay


def _no_images(path: Path) -> Path:
    store = bags.typestore()
    header = store.types["std_msgs/msg/Header"](
        stamp=store.types["builtin_interfaces/msg/Time"](sec=0, nanosec=0), frame_id=""
    )
    with bags.BagWriter(path) as writer:
        writer.write("/h", "std_msgs/msg/Header", header, 0)
    return path


def test_resume_keeps_finished_bags_and_runs_the_rest(
    bag_factory: Callable[..., Path], sample_video: Path, tmp_path: Path
) -> None:
    good = bag_factory()
    late = _no_images(tmp_path / "late")  # e.g. a bag still being copied
    out = tmp_path / "out"
    first = replay([good, late], out, small_settings())
    assert not first.complete and first.out_dir == tmp_path / "out.partial"
    kept = first.out_dir / good.name / "features" / "features.mcap"
    inode = os.stat(kept).st_ino
    assert (first.out_dir / JOURNAL / f"{good.name}.json").is_file()
    assert not (first.out_dir / JOURNAL / "late.json").exists()  # failed: not recorded
    with pytest.raises(ReplayError, match="other settings") as err:
        replay([good, late], out, small_settings(threads=2), resume=True)
    assert err.value.cause == "resume_mismatch"
    shutil.rmtree(late)
    make_bag([sample_video], late, max_frames=FRAMES, width=96)  # the bag is complete now
    second = replay([good, late], out, small_settings(), resume=True)
    assert second.complete and second.out_dir == out
    assert not (out / PARTIAL_MARKER).exists() and not (out / JOURNAL).exists()
    assert os.stat(out / good.name / "features" / "features.mcap").st_ino == inode  # not redone
    report = json.loads((out / "report.json").read_text())
    assert [Path(s["bag"]).name for s in report["bags"]] == [good.name, "late"]
    assert all(s["complete"] for s in report["bags"]) and report["processed"] == 2 * FRAMES


def test_resume_without_a_partial_output_runs_everything(
    bag_factory: Callable[..., Path], tmp_path: Path
) -> None:
    one, two = bag_factory(), bag_factory("sqlite3")
    outcome = replay([one, two], tmp_path / "out", small_settings(), resume=True)
    assert outcome.complete and outcome.report["processed"] == 2 * FRAMES


def test_ray_missing_is_one_line(
    bag_factory: Callable[..., Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # as on a robot: no ray installed
    code = cli_main(["replay", str(bag_factory()), "--out", str(tmp_path / "o"), "--ray"])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1
    assert "pip install 'rvm_ros[ray]'" in err and "Traceback" not in err
    assert not (tmp_path / "o.partial").exists()


def test_replay_imports_ray_only_for_ray() -> None:
    code = (
        "import sys; import rvm_ros.replay, rvm_ros.replay.ray_engine, rvm_ros.cli;"
        "import rvm_ros.replay.ray_cluster, rvm_ros.replay.ray_worker;"
        "import rvm_ros.replay.ray_progress, rvm_ros.replay.ray_report;"
        "from rvm_ros.cli import build_parser; build_parser();"
        "assert 'ray' not in sys.modules, 'ray imported'"
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_ray_flags_need_ray(
    bag_factory: Callable[..., Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["replay", str(bag_factory()), "--out", str(tmp_path / "o"), "--worker-gpus", "0.5"]
    assert cli_main(argv) == 2
    assert "--worker-gpus needs --ray" in capsys.readouterr().err
    assert cli_main([*argv[:4], "--ray", "--retries", "-1"]) == 2
    assert "--retries must be >= 0" in capsys.readouterr().err


def test_a_kept_encoder_starts_each_bag_from_the_zero_state(
    bag_factory: Callable[..., Path], tmp_path: Path
) -> None:
    # bag after bag on one encoder (EncoderCache) == each bag on a fresh encoder (two
    # guards give this: the cache clears every state, the Processor resets a camera's
    # state on its first frame; the test checks the result, whichever holds)
    first, second = bag_factory(), bag_factory("mcap", False, 8)
    both = replay([first, second], tmp_path / "both", small_settings())
    alone = replay([second], tmp_path / "alone", small_settings())
    assert both.complete and alone.complete
    with bags.BagReader(tmp_path / "both" / second.name / "features") as r:
        kept = [(m[0], m[2], bytes(m[3])) for m in r.raw_messages()]
    with bags.BagReader(tmp_path / "alone" / "features") as r:
        fresh = [(m[0], m[2], bytes(m[3])) for m in r.raw_messages()]
    assert kept == fresh and len(kept) >= 8
