"""OpenVINO must not leave a thread's alternate signal stack pointing at freed memory.

OpenVINO's CPU plugin replaces the calling thread's alternate signal stack when it loads
and compiles, and puts back the one it found on release. Two encoders closed in the order
they were made left the main thread on a freed stack; the next signal with a Python
handler (SIGTERM on a robot, SIGCHLD after a subprocess) then killed the process with a
segmentation fault (seen as crashes in unrelated tests late in the suite).
"""

from __future__ import annotations

import gc
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from rvm_ros.runtime import create_encoder
from rvm_ros.runtime.backends.openvino import openvino_available
from rvm_ros.signals import signal_stack

OV_OK, OV_WHY = openvino_available()
pytestmark = pytest.mark.skipif(not OV_OK, reason=f"OpenVINO cannot be imported here: {OV_WHY}")


def _two_encoders_closed_in_creation_order(cache: Path) -> None:
    # the same export twice (one ONNX export, cached): two compiled models are enough
    a = create_encoder("random:tiny", backend="openvino", height=32, width=32, cache_dir=cache)
    b = create_encoder("random:tiny", backend="openvino", height=32, width=32, cache_dir=cache)
    a.close()
    del a
    gc.collect()
    b.close()
    del b
    gc.collect()


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("ov_signal_stack_cache")


def test_encoders_leave_the_threads_signal_stack_as_they_found_it(cache: Path) -> None:
    before = signal_stack()
    _two_encoders_closed_in_creation_order(cache)
    assert signal_stack() == before


def test_a_signal_after_openvino_runs_its_handler(cache: Path) -> None:
    # In a child process: without the fix this is the crash itself (exit -11).
    script = textwrap.dedent(
        f"""
        import faulthandler, os, signal
        faulthandler.enable()
        from pathlib import Path
        from test_openvino_signal_stack import _two_encoders_closed_in_creation_order
        _two_encoders_closed_in_creation_order(Path({str(cache)!r}))
        signal.signal(signal.SIGUSR1, lambda *_: print("handler ran", flush=True))
        os.kill(os.getpid(), signal.SIGUSR1)
        print("alive", flush=True)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=Path(__file__).parent,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.splitlines()[-2:] == ["handler ran", "alive"]  # after export logs
