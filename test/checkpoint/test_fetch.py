"""Checkpoint download against a local HTTP server (Range requests, interruptions, errors)."""

from __future__ import annotations

import hashlib
import http.server
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from rvm_ros.checkpoint import load_model
from rvm_ros.checkpoint.fetch import (
    CHECKPOINT_FILES,
    DEFAULT_BASE_URL,
    URL_ENV,
    FetchError,
    NetworkUnreachable,
    VerificationError,
    checkpoint_url,
    default_cache_dir,
    download,
    fetch,
)


@dataclass
class Files:
    """What the test server serves and how it misbehaves."""

    blobs: dict[str, bytes] = field(default_factory=dict)
    cut_after: int | None = None  # the next response stops after this many body bytes
    ignore_range: bool = False
    requests: list[tuple[str, str | None]] = field(default_factory=list)


def _handler(files: Files) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:  # keep test output clean
            pass

        def do_GET(self) -> None:
            name = self.path.lstrip("/")
            rng = self.headers.get("Range")
            files.requests.append((name, rng))
            blob = files.blobs.get(name)
            if blob is None:
                self.send_error(404, "Not Found")
                return
            start = 0
            if rng and not files.ignore_range:
                start = int(rng.removeprefix("bytes=").split("-")[0])
                if start >= len(blob):
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(blob)}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(blob) - 1}/{len(blob)}")
            else:
                self.send_response(200)
            body = blob[start:]
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if files.cut_after is not None:
                cut, files.cut_after = files.cut_after, None
                self.wfile.write(body[:cut])
                self.wfile.flush()
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            self.wfile.write(body)

    return Handler


@pytest.fixture
def server() -> Iterator[tuple[str, Files]]:
    files = Files()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(files))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", files
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


@pytest.fixture(scope="module")
def tiny_bytes(fixtures_dir: Path) -> bytes:
    return (fixtures_dir / "rvm_tiny_params.npz").read_bytes()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_download_complete(server, tiny_bytes: bytes, tmp_path: Path) -> None:
    base, files = server
    files.blobs["a.npz"] = tiny_bytes
    result = download(f"{base}/a.npz", tmp_path / "a.npz", progress=False)
    digest = hashlib.sha256(tiny_bytes).hexdigest()
    assert result.sha256 == digest and result.size == len(tiny_bytes)
    assert result.resumed_from == 0
    assert (tmp_path / "a.npz").read_bytes() == tiny_bytes
    assert (tmp_path / "a.npz.sha256").read_text() == f"{digest}  a.npz\n"
    assert not (tmp_path / "a.npz.part").exists()


def test_download_resumes_after_interruption(server, tiny_bytes: bytes, tmp_path: Path) -> None:
    base, files = server
    files.blobs["a.npz"] = tiny_bytes
    files.cut_after = 500_000
    with pytest.raises(FetchError, match="run again to resume"):
        download(f"{base}/a.npz", tmp_path / "a.npz", progress=False)
    part = tmp_path / "a.npz.part"
    assert part.stat().st_size == 500_000
    assert not (tmp_path / "a.npz").exists()
    result = download(f"{base}/a.npz", tmp_path / "a.npz", progress=False)
    assert files.requests[-1] == ("a.npz", "bytes=500000-")
    assert result.resumed_from == 500_000
    assert (tmp_path / "a.npz").read_bytes() == tiny_bytes
    assert result.sha256 == hashlib.sha256(tiny_bytes).hexdigest()


def test_server_without_range_support_restarts(server, tiny_bytes: bytes, tmp_path: Path) -> None:
    base, files = server
    files.blobs["a.npz"] = tiny_bytes
    files.ignore_range = True
    (tmp_path / "a.npz.part").write_bytes(tiny_bytes[:1000])
    result = download(f"{base}/a.npz", tmp_path / "a.npz", progress=False)
    assert result.resumed_from == 0
    assert (tmp_path / "a.npz").read_bytes() == tiny_bytes


def test_complete_part_file_is_finished(server, tiny_bytes: bytes, tmp_path: Path) -> None:
    base, files = server
    files.blobs["a.npz"] = tiny_bytes
    (tmp_path / "a.npz.part").write_bytes(tiny_bytes)
    result = download(f"{base}/a.npz", tmp_path / "a.npz", progress=False)
    assert result.size == len(tiny_bytes)
    assert (tmp_path / "a.npz").read_bytes() == tiny_bytes


def test_http_error(server, tmp_path: Path) -> None:
    base, _ = server
    with pytest.raises(FetchError, match="HTTP 404"):
        download(f"{base}/missing.npz", tmp_path / "m.npz", progress=False)
    assert list(tmp_path.iterdir()) == []


def test_network_unreachable(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{_closed_port()}/x.npz"
    with pytest.raises(NetworkUnreachable, match=r"network unreachable: cannot connect to 127\."):
        download(url, tmp_path / "x.npz", progress=False)


def test_urls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(URL_ENV, raising=False)
    assert checkpoint_url("L") == (
        "https://storage.googleapis.com/representations4d/checkpoints/"
        "pretrain_rvm_large16_256_202497301.npz"
    )
    assert DEFAULT_BASE_URL.endswith("/representations4d/checkpoints")
    monkeypatch.setenv(URL_ENV, "http://mirror.example/ckpt/")
    assert checkpoint_url("S") == f"http://mirror.example/ckpt/{CHECKPOINT_FILES['S']}"
    assert checkpoint_url("S", "http://other") == f"http://other/{CHECKPOINT_FILES['S']}"
    with pytest.raises(ValueError, match="unknown checkpoint 'X'"):
        checkpoint_url("X")


def test_default_cache_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert default_cache_dir() == tmp_path / ".cache" / "rvm_ros" / "checkpoints"


def test_fetch_downloads_and_converts(
    server, tiny_bytes: bytes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base, files = server
    monkeypatch.setitem(CHECKPOINT_FILES, "tiny", "tiny.npz")
    files.blobs["tiny.npz"] = tiny_bytes
    result = fetch("tiny", dest_dir=tmp_path, base_url=base, progress=False)
    assert result.npz == tmp_path / "tiny.npz"
    assert not result.verified  # no pinned hash for it, none given
    assert result.sha256 == hashlib.sha256(tiny_bytes).hexdigest()
    assert result.safetensors is not None and result.safetensors.suffix == ".safetensors"
    model = load_model(result.safetensors)
    assert model.config.variant == "tiny"
    # a second fetch finds the file and does not download (or convert) again
    n = len(files.requests)
    mtime = result.safetensors.stat().st_mtime_ns
    again = fetch("tiny", dest_dir=tmp_path, base_url=base, progress=False)
    assert len(files.requests) == n
    assert again.sha256 == result.sha256
    assert result.safetensors.stat().st_mtime_ns == mtime
    # a converted file from another source is replaced
    result.safetensors.write_bytes(b"junk")
    fetch("tiny", dest_dir=tmp_path, base_url=base, progress=False)
    assert load_model(result.safetensors).config.variant == "tiny"
    digest = hashlib.sha256(tiny_bytes).hexdigest()
    assert fetch("tiny", dest_dir=tmp_path, base_url=base, progress=False, sha256=digest).verified


def test_fetch_rejects_non_checkpoint(server, tmp_path: Path) -> None:
    base, files = server
    files.blobs[CHECKPOINT_FILES["B"]] = b"<html>not a checkpoint</html>"
    with pytest.raises(VerificationError, match=r"not a readable \.npz archive"):
        fetch("B", dest_dir=tmp_path, base_url=base, progress=False)
    assert list(tmp_path.iterdir()) == []  # nothing kept as complete (nor at all)


def test_fetch_rejects_another_architecture(server, tiny_bytes: bytes, tmp_path: Path) -> None:
    base, files = server
    files.blobs[CHECKPOINT_FILES["S"]] = tiny_bytes
    with pytest.raises(VerificationError, match="is not RVM-S: its architecture is RVM-tiny") as e:
        fetch("S", dest_dir=tmp_path, base_url=base, progress=False)
    assert e.value.cause == "wrong_architecture"
    assert list(tmp_path.iterdir()) == []
