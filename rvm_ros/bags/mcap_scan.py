"""Read an MCAP file front to back without its index, up to the first damage.

Used when the index (summary, footer) of a bag's ``.mcap`` file cannot be read: a file cut
short by a crash or a full disk, or overwritten. Records are parsed one by one; messages
inside the chunk the file ends in are still read up to the last complete one. The scan
stops at the first record that cannot be parsed and says why (:class:`McapScan`).

Record layout (https://mcap.dev/spec): magic, then ``opcode u8, length u64, body``.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from rvm_ros.errors import RvmRosError

MAGIC = b"\x89MCAP0\r\n"
_SCHEMA, _CHANNEL, _MESSAGE, _CHUNK = 0x03, 0x04, 0x05, 0x06
_FOOTER, _DATA_END = 0x02, 0x0F


class McapDamage(RvmRosError):
    """Why a scan stopped (message names the cause, e.g. ``truncated``)."""

    cause = "bag_damaged"


@dataclass
class McapScan:
    """State of one scan: what was found, and why it stopped.

    Attributes:
        path: The file.
        topics: Channel topic -> schema name (message type).
        messages: Messages read so far.
        damage: Why the scan stopped early ("" when the file was read to its end).
        valid_magic: Whether the file starts like MCAP at all.
    """

    path: Path
    topics: dict[str, str] = field(default_factory=dict)
    messages: int = 0
    damage: str = ""
    valid_magic: bool = True


def _string(buf: bytes, pos: int) -> tuple[str, int]:
    (n,) = struct.unpack_from("<I", buf, pos)
    end = pos + 4 + n
    if end > len(buf):
        raise McapDamage("record ends inside a string: truncated")
    return buf[pos + 4 : end].decode("utf-8", errors="replace"), end


def _decompress(kind: str, data: bytes, size: int) -> bytes:
    if kind == "":
        return data
    if kind == "zstd":
        import zstandard

        return bytes(zstandard.ZstdDecompressor().decompress(data, max_output_size=size))
    if kind == "lz4":
        import lz4.frame

        return bytes(lz4.frame.decompress(data))
    raise McapDamage(f"unknown chunk compression {kind!r}")


def _records(buf: bytes) -> Iterator[tuple[int, bytes]]:
    """``(opcode, body)`` of the records in a chunk's record bytes."""
    pos = 0
    while pos < len(buf):
        if pos + 9 > len(buf):
            raise McapDamage("chunk ends inside a record header: truncated")
        opcode, length = struct.unpack_from("<BQ", buf, pos)
        start, end = pos + 9, pos + 9 + length
        if end > len(buf):
            raise McapDamage("chunk ends inside a record: truncated")
        yield opcode, buf[start:end]
        pos = end


def scan_mcap(
    path: Path, scan: McapScan, with_data: bool = True
) -> Iterator[tuple[str, int, bytes]]:
    """Yield ``(topic, log_time_ns, CDR bytes)`` of every readable message, in file order.

    Damage ends the iteration and is recorded in ``scan.damage`` (never raised).

    Args:
        path: The ``.mcap`` file.
        scan: Filled with the topics, the message count and the damage.
        with_data: False to only count (the payload is not copied).
    """
    try:
        with open(path, "rb") as fh:
            yield from _scan_file(fh, scan, with_data)
    except McapDamage as exc:
        scan.damage = str(exc)
    except (OSError, struct.error, UnicodeDecodeError, ValueError) as exc:
        scan.damage = f"{type(exc).__name__}: {exc}"


def _scan_file(fh: BinaryIO, scan: McapScan, with_data: bool) -> Iterator[tuple[str, int, bytes]]:
    head = fh.read(len(MAGIC))
    if head != MAGIC:
        scan.valid_magic = False
        raise McapDamage(f"not MCAP data (it starts with {head[:8]!r}, not the MCAP magic)")
    size = os.fstat(fh.fileno()).st_size
    schemas: dict[int, str] = {}
    channels: dict[int, str] = {}
    while True:
        header = fh.read(9)
        if not header:
            raise McapDamage("file ends without its footer: truncated")
        if len(header) < 9:
            raise McapDamage("file ends inside a record header: truncated")
        opcode, length = struct.unpack("<BQ", header)
        body = fh.read(min(length, max(0, size - fh.tell())))
        if len(body) < length:
            if opcode == _CHUNK:  # read the messages the cut chunk still holds
                yield from _handle(opcode, body, schemas, channels, scan, with_data, cut=True)
            raise McapDamage(
                "file ends inside a chunk: truncated"
                if opcode == _CHUNK
                else "file ends inside a record: truncated"
            )
        if opcode in (_FOOTER, _DATA_END):
            return
        yield from _handle(opcode, body, schemas, channels, scan, with_data)


def _handle(
    opcode: int,
    body: bytes,
    schemas: dict[int, str],
    channels: dict[int, str],
    scan: McapScan,
    with_data: bool,
    cut: bool = False,
) -> Iterator[tuple[str, int, bytes]]:
    if opcode == _SCHEMA:
        (sid,) = struct.unpack_from("<H", body, 0)
        schemas[sid], _ = _string(body, 2)
    elif opcode == _CHANNEL:
        cid, sid = struct.unpack_from("<HH", body, 0)
        topic, _ = _string(body, 4)
        channels[cid] = topic
        scan.topics.setdefault(topic, schemas.get(sid, ""))
    elif opcode == _MESSAGE:
        if len(body) < 22:
            raise McapDamage("message record too short: truncated")
        cid, _seq, log_time, _pub = struct.unpack_from("<HIQQ", body, 0)
        if cid not in channels:
            raise McapDamage(f"message on channel {cid}, which was never declared")
        scan.messages += 1
        yield channels[cid], int(log_time), (bytes(body[22:]) if with_data else b"")
    elif opcode == _CHUNK:
        if len(body) < 28:
            raise McapDamage("file ends inside a chunk header: truncated")
        _start, _end, size, _crc = struct.unpack_from("<QQQI", body, 0)
        kind, pos = _string(body, 28)
        if pos + 8 > len(body):
            raise McapDamage("file ends inside a chunk header: truncated")
        (length,) = struct.unpack_from("<Q", body, pos)
        records = body[pos + 8 : pos + 8 + length]
        cut = cut or len(records) < length
        if cut and kind:
            raise McapDamage(f"file ends inside a {kind}-compressed chunk: truncated")
        inner = _decompress(kind, bytes(records), size)
        try:
            for op, inner_body in _records(inner):
                yield from _handle(op, inner_body, schemas, channels, scan, with_data)
        except McapDamage:
            if not cut:
                raise
