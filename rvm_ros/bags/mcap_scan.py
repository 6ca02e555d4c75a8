"""Read an MCAP file front to back without its index, up to the first damage.

Used when the index (summary, footer) of a bag's ``.mcap`` file cannot be read: a file cut
short by a crash or a full disk, or overwritten. The file is read record by record with the
``mcap`` library's :class:`~mcap.stream_reader.StreamReader`, which also checks the CRC of
the data section; every chunk is decompressed and checked against its CRC with
:func:`mcap.stream_reader.get_chunk_data_stream`, so bytes changed inside a chunk are
reported as damage (when the writer stored a CRC: :mod:`.mcap_crc`). The scan stops at the
first damage and says why and where (:class:`McapScan`): the byte offset in the file and,
through :attr:`McapScan.messages`, the index of the first message it could not read.

What is kept by hand, and why: the library hands a chunk over only whole
(``StreamReader`` raises ``EndOfFile`` for the chunk a truncated file ends in, and
``breakup_chunk`` returns a chunk's records as one list or raises), so a chunk cut short,
or one whose records do not parse (no CRC to catch it), would lose every message it
holds. Measured on a 100-image bag (96x128 rgb8, 1 MiB chunks, written by
:class:`~rvm_ros.bags.rosbag2.BagWriter`) cut at 60 % of its size: the library's
``StreamReader(validate_crcs=True).records`` yields 58 messages, then ``EndOfFile``; this
scan yields 60 (the 2
complete messages of the cut chunk too). So records inside a chunk are walked here, one
at a time, and parsed with the library's record classes (:class:`~mcap.records.Message`,
``Channel``, ``Schema``); messages of a cut chunk cannot be checked against the chunk's
CRC (it covers the whole chunk) and are read only from uncompressed chunks.
"""

from __future__ import annotations

import io
import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from mcap.data_stream import ReadDataStream
from mcap.exceptions import EndOfFile, InvalidMagic, McapError, RecordLengthLimitExceeded
from mcap.opcode import Opcode
from mcap.records import Channel, Chunk, DataEnd, Footer, McapRecord, Message, Schema
from mcap.stream_reader import CRCValidationError, StreamReader, get_chunk_data_stream

from rvm_ros.errors import RvmRosError

__all__ = ["MAGIC", "McapDamage", "McapScan", "scan_mcap"]

MAGIC = b"\x89MCAP0\r\n"
_RECORD_HEADER = 9  # opcode u8, length u64
# Errors of a record that cannot be parsed: cut short (EndOfFile, struct.error), bad UTF-8,
# a CRC that does not match (CRCValidationError is a ValueError), a decompressor's error.
_PARSE_ERRORS = (McapError, EndOfFile, struct.error, UnicodeDecodeError, ValueError)


class McapDamage(RvmRosError):
    """Why a scan stopped (message names the cause, e.g. ``truncated``)."""

    cause = "bag_damaged"


@dataclass
class McapScan:
    """State of one scan: what was found, and why it stopped.

    Attributes:
        path: The file.
        topics: Channel topic -> schema name (message type).
        messages: Messages read so far (after damage: the index of the first one lost).
        damage: Why the scan stopped early ("" when the file was read to its end).
        valid_magic: Whether the file starts like MCAP at all.
    """

    path: Path
    topics: dict[str, str] = field(default_factory=dict)
    messages: int = 0
    damage: str = ""
    valid_magic: bool = True


def scan_mcap(
    path: Path, scan: McapScan, with_data: bool = True
) -> Iterator[tuple[str, int, bytes]]:
    """Yield ``(topic, log_time_ns, CDR bytes)`` of every readable message, in file order.

    Damage ends the iteration and is recorded in ``scan.damage`` (never raised).

    Args:
        path: The ``.mcap`` file.
        scan: Filled with the topics, the message count and the damage.
        with_data: False to only count (the payloads are not returned).
    """
    try:
        with open(path, "rb") as fh:
            yield from _Scanner(fh, scan, with_data).run()
    except McapDamage as exc:
        scan.damage = str(exc)
    except (OSError, MemoryError, *_PARSE_ERRORS) as exc:  # MemoryError: a garbage length
        scan.damage = f"{type(exc).__name__}: {exc}"


class _Scanner:
    """One pass over an open file: records in, messages out, damage raised as McapDamage."""

    def __init__(self, fh: BinaryIO, scan: McapScan, with_data: bool) -> None:
        self.fh = fh
        self.scan = scan
        self.with_data = with_data
        self.size = os.fstat(fh.fileno()).st_size
        self.schemas: dict[int, str] = {}
        self.channels: dict[int, str] = {}

    def run(self) -> Iterator[tuple[str, int, bytes]]:
        """Messages of the data section, up to its end (DataEnd, Footer) or the damage."""
        reader = StreamReader(
            self.fh, emit_chunks=True, validate_crcs=True, record_size_limit=self.size
        )
        records = reader.records
        while True:
            start = max(self.fh.tell(), len(MAGIC))  # the first call reads the magic too
            try:
                record = next(records)
            except StopIteration:
                return
            except InvalidMagic:
                self.scan.valid_magic = False  # (a file shorter than the magic: struct.error)
                self.fh.seek(0)
                head = self.fh.read(len(MAGIC))
                raise McapDamage(
                    f"not MCAP data (it starts with {head[:8]!r}, not the MCAP magic)"
                ) from None
            except CRCValidationError as exc:
                raise McapDamage(self._crc_damage(exc, start)) from None
            except (EndOfFile, struct.error, RecordLengthLimitExceeded):  # longer than the file
                if self.size < len(MAGIC):
                    self.scan.valid_magic = False
                    raise McapDamage(f"not MCAP data ({self.size} bytes)") from None
                yield from self._cut(start)  # raises
                return
            if isinstance(record, (DataEnd, Footer)):
                return
            yield from self._record(record, start)

    def _record(self, record: McapRecord, start: int) -> Iterator[tuple[str, int, bytes]]:
        if isinstance(record, Chunk):
            try:
                data, length = get_chunk_data_stream(record, validate_crc=True)
            except CRCValidationError as exc:
                raise McapDamage(self._crc_damage(exc, start)) from None
            except Exception as exc:  # zstandard.ZstdError, lz4's RuntimeError, McapError
                raise McapDamage(
                    f"chunk at byte {start} cannot be decompressed "
                    f"({record.compression or 'uncompressed'}: {type(exc).__name__}: {exc})"
                ) from None
            yield from self._chunk_records(data.read(length), start)
        else:
            yield from self._message_or_declaration(record)

    def _message_or_declaration(self, record: McapRecord) -> Iterator[tuple[str, int, bytes]]:
        if isinstance(record, Schema):
            self.schemas[record.id] = record.name
        elif isinstance(record, Channel):
            self.channels[record.id] = record.topic
            self.scan.topics.setdefault(record.topic, self.schemas.get(record.schema_id, ""))
        elif isinstance(record, Message):
            topic = self.channels.get(record.channel_id)
            if topic is None:
                raise McapDamage(
                    f"message on channel {record.channel_id}, which was never declared"
                )
            self.scan.messages += 1
            yield topic, int(record.log_time), (bytes(record.data) if self.with_data else b"")

    def _chunk_records(
        self, records: bytes, start: int, cut: bool = False
    ) -> Iterator[tuple[str, int, bytes]]:
        """The records of a chunk's (uncompressed) record bytes, one at a time.

        Args:
            records: The chunk's records (all of them, or what a cut file still holds).
            start: Byte offset of the chunk record in the file (for the report).
            cut: The file ends inside this chunk: stop quietly at the first incomplete
                record (the caller reports the truncation).
        """
        pos = 0
        while pos < len(records):
            if pos + _RECORD_HEADER > len(records):
                if cut:
                    return
                raise McapDamage(f"chunk at byte {start} ends inside a record header")
            opcode, length = struct.unpack_from("<BQ", records, pos)
            body_start, end = pos + _RECORD_HEADER, pos + _RECORD_HEADER + length
            if end > len(records):
                if cut:
                    return
                raise McapDamage(f"chunk at byte {start} ends inside a record")
            body = ReadDataStream(io.BytesIO(records[body_start:end]))
            try:
                record = _read_chunk_record(opcode, body, length)
            except _PARSE_ERRORS as exc:
                raise McapDamage(
                    f"chunk at byte {start} holds a malformed record at byte {pos} of its "
                    f"records ({type(exc).__name__}: {exc})"
                ) from None
            if record is not None:
                yield from self._message_or_declaration(record)
            pos = end

    def _cut(self, start: int) -> Iterator[tuple[str, int, bytes]]:
        """The file ends inside the record at ``start``: read what it holds, then raise."""
        if start >= self.size:
            raise McapDamage("file ends without its footer: truncated")
        if self.size - start < _RECORD_HEADER:
            raise McapDamage("file ends inside a record header: truncated")
        self.fh.seek(start)
        stream = ReadDataStream(io.BytesIO(self.fh.read()))
        opcode = stream.read1()
        stream.read8()
        if opcode != Opcode.CHUNK:
            raise McapDamage("file ends inside a record: truncated")
        try:
            chunk = Chunk.read(stream)  # its data: what the file still holds
        except (EndOfFile, struct.error, UnicodeDecodeError):
            raise McapDamage("file ends inside a chunk header: truncated") from None
        if chunk.compression:
            raise McapDamage(f"file ends inside a {chunk.compression}-compressed chunk: truncated")
        yield from self._chunk_records(chunk.data, start, cut=True)
        raise McapDamage("file ends inside a chunk: truncated")

    def _crc_damage(self, exc: CRCValidationError, start: int) -> str:
        what = (
            f"chunk at byte {start}"
            if isinstance(exc.record, Chunk)
            else "data section (bytes outside the chunks)"
        )
        return (
            f"{what} fails its CRC check (stored {exc.expected:08x}, computed "
            f"{exc.actual:08x}): bytes inside it changed"
        )


def _read_chunk_record(opcode: int, body: ReadDataStream, length: int) -> McapRecord | None:
    """A Schema, Channel or Message record of a chunk (None for other record kinds)."""
    record: McapRecord  # the library's read() methods are unannotated
    if opcode == Opcode.SCHEMA:
        record = Schema.read(body)
        return record
    if opcode == Opcode.CHANNEL:
        record = Channel.read(body)
        return record
    if opcode == Opcode.MESSAGE:
        if length < 22:
            raise McapDamage("message record too short: truncated")
        record = Message.read(body, length)
        return record
    return None
