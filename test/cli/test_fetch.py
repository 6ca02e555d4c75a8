"""`rvm-ros fetch` against a local HTTP server, and with the network unreachable."""

from __future__ import annotations

import functools
import http.server
import shutil
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from rvm_ros.checkpoint.fetch import CHECKPOINT_FILES, URL_ENV
from rvm_ros.cli import main


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def served(fixtures_dir: Path, tmp_path: Path) -> Iterator[str]:
    root = tmp_path / "www"
    root.mkdir()
    shutil.copy(fixtures_dir / "rvm_tiny_params.npz", root / CHECKPOINT_FILES["S"])
    handler = functools.partial(_QuietHandler, directory=str(root))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


def test_fetch_ok(
    served: str, fixtures_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import hashlib

    dest = tmp_path / "ckpt"
    rc = main(["fetch", "S", "--dest", str(dest), "--base-url", served, "-q"])
    out = capsys.readouterr().out
    assert rc == 0
    digest = hashlib.sha256((fixtures_dir / "rvm_tiny_params.npz").read_bytes()).hexdigest()
    assert f"sha256 {digest}" in out
    npz = dest / CHECKPOINT_FILES["S"]
    assert (dest / (npz.name + ".sha256")).read_text().split()[0] == digest
    assert npz.with_suffix(".safetensors").is_file()
    assert f"converted: {npz.with_suffix('.safetensors')}" in out


def test_fetch_base_url_from_env(
    served: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(URL_ENV, served)
    assert main(["fetch", "S", "--dest", str(tmp_path), "-q", "--no-convert"]) == 0
    assert (tmp_path / CHECKPOINT_FILES["S"]).is_file()
    assert not (tmp_path / CHECKPOINT_FILES["S"]).with_suffix(".safetensors").exists()


def test_fetch_network_unreachable(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    assert main(["fetch", "L", "--dest", str(tmp_path), "--base-url", url, "-q"]) == 2
    err = capsys.readouterr().err
    assert "network unreachable: cannot connect to" in err
    assert list(tmp_path.iterdir()) == []


def test_fetch_not_found(served: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["fetch", "H", "--dest", str(tmp_path), "--base-url", served, "-q"]) == 2
    assert "download failed:" in capsys.readouterr().err
