"""Download official RVM checkpoints: resumable (HTTP Range into ``.part``), size-checked,
verified, then converted to ``.safetensors``.

A download is kept as complete (``<file>`` plus ``<file>.sha256``) only after it passed
every check: its sha256 equals the pinned hash of the official file (or the one the user
gives with ``--sha256``), it is a readable RVM ``.npz`` and its architecture is the size
asked for. A file that fails is deleted, never cached. A cached file is hashed again on
every use, so a file changed after its download is reported, not trusted.

Pinned hashes: :data:`OFFICIAL_SHA256` is empty in this release: the official files could
not be reached where it was built, so their hashes are not known here. Until they are
pinned, a download is reported as *unverified* (its sha256 printed for the user to
compare) unless ``--sha256`` is given.
"""

from __future__ import annotations

import http.client
import logging
import os
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from email.message import Message
from pathlib import Path

from rvm_ros.checkpoint.card import card_from_metadata, read_card
from rvm_ros.checkpoint.progress import ByteBar, byte_bar
from rvm_ros.checkpoint.safetensors import SOURCE_SHA_KEY
from rvm_ros.errors import RvmRosError
from rvm_ros.fsutil import OutputPlan, atomic_write, file_sha256

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://storage.googleapis.com/representations4d/checkpoints"
URL_ENV = "RVM_ROS_CHECKPOINT_URL"
CHECKPOINT_FILES: dict[str, str] = {
    "S": "pretrain_rvm_small16_256_204031069.npz",
    "B": "pretrain_rvm_base16_256_203916225.npz",
    "L": "pretrain_rvm_large16_256_202497301.npz",
    "H": "pretrain_rvm_huge16_256_203854202.npz",
}
#: sha256 of the official files, by variant. Unknown here (no network access to the
#: official bucket when this was written): fill in from a trusted download.
OFFICIAL_SHA256: dict[str, str] = {}
_CHUNK = 1 << 20


class FetchError(RvmRosError, RuntimeError):
    """A download failed (HTTP error, size mismatch, interrupted transfer)."""

    cause = "fetch_failed"


class VerificationError(FetchError):
    """A downloaded or cached file is not the file asked for (hash, format or size)."""

    cause = "verification_failed"


class NetworkUnreachable(FetchError):
    """The server could not be reached at all (DNS, refused connection, timeout)."""

    cause = "network_unreachable"


@dataclass(frozen=True)
class Download:
    """A finished download.

    Attributes:
        path: The downloaded file.
        size: Its size in bytes.
        sha256: Hex sha256 of its bytes (also written to ``<path>.sha256``).
        resumed_from: Bytes already present in the ``.part`` file when this run started.
    """

    path: Path
    size: int
    sha256: str
    resumed_from: int


@dataclass(frozen=True)
class FetchResult:
    """Result of :func:`fetch`.

    Attributes:
        npz: The official file.
        sha256: Its sha256 (hashed now).
        safetensors: The converted checkpoint (None with ``convert=False``).
        verified: True when ``sha256`` equals a pinned or user-given hash; False when no
            hash was known to compare with (format and architecture were still checked).
    """

    npz: Path
    sha256: str
    safetensors: Path | None
    verified: bool = False


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/rvm_ros/checkpoints`` (default ``~/.cache/rvm_ros/checkpoints``)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "rvm_ros" / "checkpoints"


def checkpoint_url(variant: str, base_url: str | None = None) -> str:
    """Public address of an official checkpoint.

    Args:
        variant: ``S``, ``B``, ``L`` or ``H``.
        base_url: Folder URL; default ``$RVM_ROS_CHECKPOINT_URL`` or the official bucket.
    """
    if variant not in CHECKPOINT_FILES:
        raise ValueError(f"unknown checkpoint {variant!r}; released: {', '.join(CHECKPOINT_FILES)}")
    base = base_url or os.environ.get(URL_ENV) or DEFAULT_BASE_URL
    return f"{base.rstrip('/')}/{CHECKPOINT_FILES[variant]}"


def _total_from_headers(status: int, headers: Message, start: int) -> int | None:
    content_range = headers.get("Content-Range")
    if status == 206 and content_range and "/" in content_range:
        total = content_range.rsplit("/", 1)[1].strip()
        if total.isdigit():
            return int(total)
    length = headers.get("Content-Length")
    if length is not None and length.strip().isdigit():
        return int(length) + (start if status == 206 else 0)
    return None


def _unreachable(url: str, reason: object) -> NetworkUnreachable:
    host = urllib.parse.urlsplit(url).netloc
    return NetworkUnreachable(
        f"network unreachable: cannot connect to {host} ({reason}). Check the connection, "
        f"or point --base-url / ${URL_ENV} at a mirror"
    )


def download(
    url: str, dest: str | os.PathLike[str], progress: bool = True, timeout: float = 30.0
) -> Download:
    """Download ``url`` to ``dest``, resuming a previous ``dest.part`` with an HTTP Range.

    The file is complete only when its size equals the server's Content-Length; then the
    ``.part`` file is renamed to ``dest`` and ``dest.sha256`` is written.

    Raises:
        NetworkUnreachable: The server cannot be reached.
        FetchError: HTTP error, interrupted transfer (the ``.part`` file is kept for a
            later resume), or size mismatch.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    start = part.stat().st_size if part.exists() else 0
    response = _open(url, part, start, timeout)
    if response is None:  # the .part file already holds everything
        return _finish(part, dest, start, start)
    with response:
        status = response.status
        if start and status != 206:
            log.info("server ignored the Range request; downloading from the start")
            start = 0
        total = _total_from_headers(status, response.headers, start)
        with byte_bar(progress, total, dest.name, initial=start) as bar:
            written = _receive(url, response, part, start, bar)
    if total is not None and written != total:
        raise FetchError(
            f"{url}: incomplete download: got {written} of {total} bytes; run again to resume"
        )
    return _finish(part, dest, written, start)


def _open(url: str, part: Path, start: int, timeout: float) -> http.client.HTTPResponse | None:
    """The server's response from byte ``start`` on; None when there is nothing left."""
    request = urllib.request.Request(url, headers={"User-Agent": "rvm-ros-fetch"})
    if start:
        request.add_header("Range", f"bytes={start}-")
    try:
        response: http.client.HTTPResponse = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and start:
            # Range not satisfiable: the .part file may already hold everything.
            total = _total_from_headers(206, exc.headers, start)
            exc.close()
            if total is not None and total == start:
                return None
            raise FetchError(
                f"{url}: server refused to resume at byte {start}; delete {part} and retry"
            ) from None
        exc.close()
        raise FetchError(f"{url}: HTTP {exc.code} {exc.reason}") from None
    except urllib.error.URLError as exc:
        raise _unreachable(url, exc.reason) from None
    except (TimeoutError, ConnectionError) as exc:
        raise _unreachable(url, exc) from None
    return response


def _receive(
    url: str, response: http.client.HTTPResponse, part: Path, start: int, bar: ByteBar | None
) -> int:
    """Append the response body to ``part`` (from ``start``); returns the bytes it holds."""
    written = start
    with open(part, "ab" if start else "wb") as out:
        try:
            while block := response.read(_CHUNK):
                out.write(block)
                written += len(block)
                if bar is not None:
                    bar.update(len(block))
        except (http.client.IncompleteRead, ConnectionError, TimeoutError, OSError) as exc:
            raise FetchError(
                f"{url}: transfer interrupted after {written} bytes ({exc}); run again to resume"
            ) from None
    return written


def _write_sha256(path: Path, digest: str) -> None:
    """``<path>.sha256`` in ``sha256sum`` format, written atomically."""
    sidecar = path.with_name(path.name + ".sha256")
    atomic_write(sidecar, lambda tmp: tmp.write_text(f"{digest}  {path.name}\n"))


def _finish(part: Path, dest: Path, size: int, resumed_from: int) -> Download:
    actual = part.stat().st_size
    if actual != size:
        raise FetchError(f"{part}: size {actual} != expected {size}")
    digest = file_sha256(part)
    OutputPlan(dest, part, force=True).commit()  # the complete .part swapped in
    _write_sha256(dest, digest)
    return Download(dest, size, digest, resumed_from)


def _converted(out: Path, npz: Path, digest: str) -> bool:
    """Whether ``out`` is a conversion of this very ``npz`` (its sha256) with its card."""
    if not out.is_file():
        return False
    try:
        from safetensors import safe_open

        with safe_open(str(out), framework="pt") as f:
            metadata = f.metadata() or {}
        card = card_from_metadata(metadata, str(out))
        return metadata.get(SOURCE_SHA_KEY) == digest and card == read_card(npz)
    except Exception:  # unreadable, or converted before model cards: convert again
        return False


def _check_architecture(npz: Path, variant: str) -> None:
    """Raise `VerificationError` unless ``npz`` is an official checkpoint of ``variant``."""
    from rvm_ros.checkpoint.npz import read_npz_header
    from rvm_ros.checkpoint.official import config_from_official_shapes, variant_of

    config = config_from_official_shapes(read_npz_header(npz).shapes)
    got = variant_of(config)
    if got != variant:
        raise VerificationError(
            f"{npz.name} is not RVM-{variant}: its architecture is "
            f"{'RVM-' + got if got != 'custom' else 'no released size'} "
            f"(D {config.dim}, {config.enc_layers} encoder blocks); wrong file or mirror",
            cause="wrong_architecture",
        )


def _verify(path: Path, variant: str, expected: str | None) -> str:
    """sha256 of ``path`` after checking it against ``expected`` and its architecture."""
    from rvm_ros.checkpoint.errors import CheckpointError

    digest = file_sha256(path)
    if expected is not None and digest != expected.lower():
        raise VerificationError(
            f"{path.name}: sha256 {digest} differs from the expected {expected.lower()}",
            cause="hash_mismatch",
        )
    try:
        _check_architecture(path, variant)
    except CheckpointError as exc:
        raise VerificationError(f"not an RVM checkpoint: {exc}", cause="not_a_checkpoint") from None
    return digest


def _cached(npz: Path, expected: str | None) -> str | None:
    """sha256 of a complete earlier download, None when there is none."""
    sha_file = npz.with_name(npz.name + ".sha256")
    if not (npz.is_file() and sha_file.is_file()):
        return None
    recorded = (sha_file.read_text().split() or [""])[0]
    digest = file_sha256(npz)
    if digest != recorded:
        raise VerificationError(
            f"{npz} changed since its download (sha256 {digest}, recorded {recorded}); "
            "delete it and its .sha256 file, then fetch again",
            cause="cache_changed",
        )
    if expected is not None and digest != expected.lower():
        raise VerificationError(
            f"{npz}: sha256 {digest} differs from the expected {expected.lower()}; "
            "delete it and its .sha256 file, then fetch again",
            cause="hash_mismatch",
        )
    log.info("%s already downloaded", npz)
    return digest


def fetch(
    variant: str,
    dest_dir: str | os.PathLike[str] | None = None,
    base_url: str | None = None,
    progress: bool = True,
    convert: bool = True,
    sha256: str | None = None,
) -> FetchResult:
    """Download an official checkpoint (if not already there), verify and convert it.

    Args:
        variant: ``S``, ``B``, ``L`` or ``H``.
        dest_dir: Target folder (default :func:`default_cache_dir`).
        base_url: Folder URL override (default ``$RVM_ROS_CHECKPOINT_URL`` or official).
        progress: Show progress bars.
        convert: Also write ``<name>.safetensors`` next to the ``.npz``.
        sha256: Expected sha256 of the file (default: the pinned official hash, if known).

    Returns:
        Paths, sha256 and whether it was verified against a known hash.

    Raises:
        VerificationError: Wrong hash, not an RVM checkpoint, another size, or a cached
            file changed since its download (a failed download is deleted).
        FetchError: The download failed (a ``.part`` file is kept for a resume).
    """
    url = checkpoint_url(variant, base_url)
    if sha256 is not None and (
        len(sha256) != 64 or any(c not in "0123456789abcdefABCDEF" for c in sha256)
    ):
        raise FetchError(f"--sha256 {sha256!r} is not 64 hex digits", cause="invalid_argument")
    expected = sha256 or OFFICIAL_SHA256.get(variant)
    folder = Path(dest_dir) if dest_dir is not None else default_cache_dir()
    npz = folder / CHECKPOINT_FILES[variant]
    digest = _cached(npz, expected)
    if digest is None:
        digest = _download_verified(url, npz, variant, expected, progress)
    out = _convert(npz, digest, progress) if convert else None
    return FetchResult(npz, digest, out, verified=expected is not None)


def _download_verified(
    url: str, npz: Path, variant: str, expected: str | None, progress: bool
) -> str:
    """Download beside ``npz``, verify, and only then swap it in; returns its sha256."""
    staged = npz.with_name(npz.name + ".download")
    download(url, staged, progress=progress)
    staged.with_name(staged.name + ".sha256").unlink(missing_ok=True)
    try:
        digest = _verify(staged, variant, expected)
    except BaseException:
        staged.unlink(missing_ok=True)  # never kept: the next run downloads afresh
        raise
    OutputPlan(npz, staged, force=True).commit()
    _write_sha256(npz, digest)
    return digest


def _convert(npz: Path, digest: str, progress: bool) -> Path:
    """``<name>.safetensors`` beside ``npz``, converted unless an earlier conversion of the
    same file with the same model card is there."""
    from rvm_ros.checkpoint.convert import convert as convert_checkpoint

    out = npz.with_suffix(".safetensors")
    if _converted(out, npz, digest):
        log.info("%s already converted", out)
    else:
        convert_checkpoint(npz, out, progress=progress if progress else False)
    return out
