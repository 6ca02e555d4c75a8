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
def tiny_name(monkeypatch: pytest.MonkeyPatch) -> str:
    """A ``tiny`` entry in the release table: the fixture file is then the size asked for."""
    monkeypatch.setitem(CHECKPOINT_FILES, "tiny", "rvm_tiny_params.npz")
    return CHECKPOINT_FILES["tiny"]


@pytest.fixture
def www(tmp_path: Path) -> Path:
    root = tmp_path / "www"
    root.mkdir()
    return root


@pytest.fixture
def served(fixtures_dir: Path, www: Path, tiny_name: str) -> Iterator[str]:
    shutil.copy(fixtures_dir / "rvm_tiny_params.npz", www / tiny_name)
    # The tiny model under RVM-S's name: what a wrong mirror (or an attacker) serves.
    shutil.copy(fixtures_dir / "rvm_tiny_params.npz", www / CHECKPOINT_FILES["S"])
    (www / CHECKPOINT_FILES["B"]).write_text("<html>captive portal: please log in</html>")
    handler = functools.partial(_QuietHandler, directory=str(www))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


def _digest(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_fetch_ok_is_reported_unverified_without_a_hash(
    served: str,
    tiny_name: str,
    fixtures_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    dest = tmp_path / "ckpt"
    rc = main(["fetch", "tiny", "--dest", str(dest), "--base-url", served, "-q"])
    out = capsys.readouterr().out
    assert rc == 0
    digest = _digest(fixtures_dir / "rvm_tiny_params.npz")
    assert f"sha256 {digest} (unverified: no pinned hash" in out
    assert "(verified)" not in out
    npz = dest / tiny_name
    assert (dest / (npz.name + ".sha256")).read_text().split()[0] == digest
    assert npz.with_suffix(".safetensors").is_file()
    assert f"converted: {npz.with_suffix('.safetensors')}" in out


def test_fetch_with_sha256_is_verified(
    served: str, fixtures_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    digest = _digest(fixtures_dir / "rvm_tiny_params.npz")
    args = ["fetch", "tiny", "--dest", str(tmp_path), "--base-url", served, "-q"]
    assert main([*args, "--sha256", digest.upper()]) == 0
    assert f"sha256 {digest} (verified)" in capsys.readouterr().out


def test_fetch_base_url_from_env(
    served: str, tiny_name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(URL_ENV, served)
    assert main(["fetch", "tiny", "--dest", str(tmp_path), "-q", "--no-convert"]) == 0
    assert (tmp_path / tiny_name).is_file()
    assert not (tmp_path / tiny_name).with_suffix(".safetensors").exists()


@pytest.mark.parametrize(
    ("variant", "extra", "message"),
    [
        # another architecture than the size asked for (converted as RVM-S before)
        (
            "S",
            [],
            "verification failed: pretrain_rvm_small16_256_204031069.npz.download is "
            "not RVM-S: its architecture is RVM-tiny (D 64",
        ),
        # a captive-portal page (cached with its hash and reused for good before)
        ("B", [], "verification failed: not an RVM checkpoint:"),
        # a hash the user expects and the file does not have
        ("S", ["--sha256", "0" * 64], "differs from the expected 0000"),
    ],
)
def test_fetch_refuses_and_keeps_nothing(
    served: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    variant: str,
    extra: list[str],
    message: str,
) -> None:
    dest = tmp_path / "ckpt"
    for _ in range(2):  # refused again on a second run: nothing was cached
        rc = main(["fetch", variant, "--dest", str(dest), "--base-url", served, "-q", *extra])
        err = capsys.readouterr().err
        assert rc == 2, err
        assert message in err
        assert len(err.strip().splitlines()) == 1
        assert sorted(p.name for p in dest.iterdir()) == []


def test_fetch_bad_sha256_argument(served: str, tmp_path: Path, capsys) -> None:
    args = ["fetch", "tiny", "--dest", str(tmp_path), "--base-url", served, "-q"]
    assert main([*args, "--sha256", "abc"]) == 2
    assert "is not 64 hex digits" in capsys.readouterr().err


def test_fetch_reports_a_cached_file_changed_after_download(
    served: str, tiny_name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["fetch", "tiny", "--dest", str(tmp_path), "--base-url", served, "-q"]
    assert main(args) == 0
    npz = tmp_path / tiny_name
    data = bytearray(npz.read_bytes())
    data[-100] ^= 0xFF
    npz.write_bytes(bytes(data))
    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err
    assert f"{npz} changed since its download" in err
    assert npz.read_bytes() == bytes(data)  # reported, not deleted: the user decides


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
