"""Chunk CRCs for the MCAP files ``rosbags`` writes.

The ``rosbags`` MCAP writer (0.11) stores 0 ("no CRC") in every chunk's
``uncompressed_crc`` field, so no reader can tell a chunk whose bytes changed on disk from
an intact one. ROS 2's own recorder (rosbag2 with the mcap C++ library) stores the CRC-32
of each chunk's records. :func:`fill_chunk_crcs` gives the bags written here the same: it
finds each chunk through the file's summary (the ``mcap`` library's reader), computes the
CRC-32 of the chunk's uncompressed records and writes it into the chunk's CRC field (4
bytes in place; nothing else in the file changes). Readers then check it: the ``mcap``
library and :mod:`.mcap_scan` report a mismatch, ``rosbags`` raises "Chunk checksum
mismatch".
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

from mcap.reader import make_reader
from mcap.records import Chunk
from mcap.stream_reader import StreamReader, get_chunk_data_stream

__all__ = ["CRC_OFFSET", "fill_chunk_crcs"]

#: Offset of ``uncompressed_crc`` from the start of a Chunk record (https://mcap.dev/spec):
#: opcode u8, record length u64, message_start_time u64, message_end_time u64,
#: uncompressed_size u64.
CRC_OFFSET = 1 + 8 + 8 + 8 + 8


def fill_chunk_crcs(path: Path | str) -> int:
    """Write the CRC-32 of each chunk's records into the chunks that have none.

    Args:
        path: A complete ``.mcap`` file (with its summary), opened for update.

    Returns:
        The number of chunks whose CRC was written (chunks that have one are left alone).

    Raises:
        McapError, OSError: The file has no readable summary, or cannot be written.
    """
    filled = 0
    with open(path, "r+b") as fh:
        summary = make_reader(fh).get_summary()
        indexes = summary.chunk_indexes if summary is not None else []
        for index in indexes:
            fh.seek(index.chunk_start_offset)
            records = StreamReader(fh, skip_magic=True, emit_chunks=True).records
            chunk = next(records)
            if not isinstance(chunk, Chunk) or chunk.uncompressed_crc != 0:
                continue
            data, length = get_chunk_data_stream(chunk)
            crc = zlib.crc32(data.read(length))
            fh.seek(index.chunk_start_offset + CRC_OFFSET)
            fh.write(struct.pack("<I", crc))
            filled += 1
    return filled
