"""MCAP damage: chunk CRCs written with every bag, checked by the reader and the scan."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from mcap.reader import make_reader
from mcap.records import Chunk, Message
from mcap.stream_reader import StreamReader, breakup_chunk
from rosbags.rosbag2 import StoragePlugin, Writer

from rvm_ros.bags import rosbag2 as bags
from rvm_ros.bags.mcap_crc import CRC_OFFSET, fill_chunk_crcs
from rvm_ros.bags.mcap_scan import McapScan, scan_mcap

TOPIC = "/cam/image_raw"
N = 100  # 96x128 rgb8 images: about 29 per 1 MiB chunk, 4 chunks


def _image(store, i: int):
    time = store.types["builtin_interfaces/msg/Time"](sec=i, nanosec=0)
    header = store.types["std_msgs/msg/Header"](stamp=time, frame_id="cam")
    data = np.full(96 * 128 * 3, i % 256, np.uint8)
    return store.types[bags.IMAGE_TYPE](
        header=header, height=96, width=128, encoding="rgb8", is_bigendian=0, step=384, data=data
    )


@pytest.fixture(scope="module")
def intact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A rosbag2 MCAP bag of N images written by BagWriter (rosbags' writer)."""
    path = tmp_path_factory.mktemp("mcap") / "bag"
    store = bags.typestore()
    with bags.BagWriter(path, "mcap", store) as writer:
        for i in range(N):
            writer.write(TOPIC, bags.IMAGE_TYPE, _image(store, i), i * 10**8)
    return path / "bag.mcap"


def _chunks(file: Path) -> list[tuple[int, int, int]]:
    """``(start offset, length, messages)`` of each chunk, in file order."""
    with open(file, "rb") as fh:
        summary = make_reader(fh).get_summary()
        assert summary is not None
        out = []
        for index in sorted(summary.chunk_indexes, key=lambda c: c.chunk_start_offset):
            fh.seek(index.chunk_start_offset)
            chunk = next(StreamReader(fh, skip_magic=True, emit_chunks=True).records)
            assert isinstance(chunk, Chunk)
            count = sum(isinstance(r, Message) for r in breakup_chunk(chunk, validate_crc=True))
            out.append((index.chunk_start_offset, index.chunk_length, count))
    return out


def _copy_with_flip(intact: Path, folder: Path, chunk: int) -> tuple[Path, int]:
    """A copy of the bag whose ``chunk``-th chunk has 16 bytes inverted in its middle.

    Returns:
        The copied ``.mcap`` file and the index of the first message of that chunk.
    """
    folder.mkdir()
    for f in intact.parent.iterdir():
        (folder / f.name).write_bytes(f.read_bytes())
    chunks = _chunks(intact)
    start, length, _ = chunks[chunk]
    file = folder / intact.name
    data = bytearray(file.read_bytes())
    middle = start + length // 2
    data[middle : middle + 16] = bytes(b ^ 0xFF for b in data[middle : middle + 16])
    file.write_bytes(bytes(data))
    return file, sum(c[2] for c in chunks[:chunk])


def test_every_chunk_carries_its_crc(intact: Path) -> None:
    chunks = _chunks(intact)  # breakup_chunk(validate_crc=True) checks each one
    assert len(chunks) >= 3 and sum(c[2] for c in chunks) == N
    raw = intact.read_bytes()
    for start, _, _ in chunks:
        assert raw[start + CRC_OFFSET : start + CRC_OFFSET + 4] != b"\0\0\0\0"
    with open(intact, "rb") as fh:  # the library's whole-file check passes
        records = list(StreamReader(fh, validate_crcs=True).records)
    assert sum(isinstance(r, Message) for r in records) == N


def test_only_the_crc_bytes_differ_from_rosbags_output(intact: Path, tmp_path: Path) -> None:
    store = bags.typestore()
    plain = Writer(tmp_path / "bag", version=bags.BAG_VERSION, storage_plugin=StoragePlugin.MCAP)
    plain.open()
    conn = plain.add_connection(TOPIC, bags.IMAGE_TYPE, typestore=store)
    for i in range(N):
        plain.write(conn, i * 10**8, store.serialize_cdr(_image(store, i), bags.IMAGE_TYPE))
    plain.close()
    theirs = bytearray((tmp_path / "bag" / "bag.mcap").read_bytes())
    ours = intact.read_bytes()
    assert len(theirs) == len(ours) and theirs != ours
    for start, _, _ in _chunks(intact):
        assert theirs[start + CRC_OFFSET : start + CRC_OFFSET + 4] == b"\0\0\0\0"
        theirs[start + CRC_OFFSET : start + CRC_OFFSET + 4] = ours[
            start + CRC_OFFSET : start + CRC_OFFSET + 4
        ]
    assert bytes(theirs) == ours
    assert fill_chunk_crcs(intact) == 0  # a chunk with a CRC is left alone


@pytest.mark.parametrize("chunk", [0, 2])
def test_flipped_bytes_in_a_chunk_are_damage(intact: Path, tmp_path: Path, chunk: int) -> None:
    """Index intact: the bag reader reports the file and the first message it lost."""
    file, first_lost = _copy_with_flip(intact, tmp_path / "bag", chunk)
    with bags.BagReader(file.parent) as reader:
        assert not reader.recovered
        msgs = list(reader.messages())
    assert [int(m.msg.data[0]) for m in msgs] == list(range(first_lost))
    assert reader.errors == [
        f"{file}: could not read past message {first_lost} (ReaderError: Chunk checksum mismatch.)"
    ]


@pytest.mark.parametrize("chunk", [0, 2])
def test_scan_reports_flipped_bytes_with_file_and_message_index(
    intact: Path, tmp_path: Path, chunk: int
) -> None:
    """Index gone too (file cut in its summary): the scan checks each chunk's CRC."""
    file, first_lost = _copy_with_flip(intact, tmp_path / "bag", chunk)
    with open(file, "r+b") as fh:
        fh.truncate(file.stat().st_size - 40)  # inside the summary: no footer
    scan = McapScan(file)
    got = [int(data[-1]) for _, _, data in scan_mcap(file, scan)]  # last pixel: the image index
    start = _chunks(intact)[chunk][0]
    assert got == list(range(first_lost)) and scan.messages == first_lost
    assert scan.damage.startswith(f"chunk at byte {start} fails its CRC check")
    if first_lost == 0:  # the first chunk also holds the channel: nothing can be read
        with pytest.raises(bags.BagError, match=f"{file}: chunk at byte {start} fails") as err:
            bags.BagReader(file.parent)
        assert err.value.cause == "bag_damaged"
        return
    with bags.BagReader(file.parent) as reader:
        assert reader.recovered
        msgs = list(reader.messages())
    assert [int(m.msg.data[0]) for m in msgs] == list(range(first_lost))
    assert (
        f"{file}: could not read past message {first_lost} (chunk at byte {start}"
        in (reader.errors[-1])
    )


def test_intact_file_scans_to_its_end(intact: Path) -> None:
    scan = McapScan(intact)
    stamps = [t for _, t, _ in scan_mcap(intact, scan, with_data=False)]
    assert stamps == [i * 10**8 for i in range(N)]
    assert scan.damage == "" and scan.topics == {TOPIC: bags.IMAGE_TYPE}


@pytest.mark.parametrize(
    ("content", "damage"),
    [
        (b"", "not MCAP data (0 bytes)"),
        (b"\x89MC", "not MCAP data (3 bytes)"),
        (b"GARBAGE!" * 8, "not MCAP data (it starts with b'GARBAGE!'"),
        (b"\x89MCAP0\r\n", "file ends without its footer: truncated"),
        (b"\x89MCAP0\r\n\x01\x10", "file ends inside a record header: truncated"),
    ],
)
def test_not_mcap_or_cut_at_once(tmp_path: Path, content: bytes, damage: str) -> None:
    file = tmp_path / "x.mcap"
    file.write_bytes(content)
    scan = McapScan(file)
    assert list(scan_mcap(file, scan)) == []
    assert scan.damage.startswith(damage)
    assert scan.valid_magic == (not damage.startswith("not MCAP"))


def test_zstd_chunks_get_crcs_and_flips_are_caught(tmp_path: Path) -> None:
    """Chunks compressed with zstd (rosbags' storage compression): CRC of the records."""
    from rosbags.rosbag2 import CompressionFormat, CompressionMode

    store = bags.typestore()
    writer = Writer(tmp_path / "z", version=bags.BAG_VERSION, storage_plugin=StoragePlugin.MCAP)
    writer.set_compression(CompressionMode.STORAGE, CompressionFormat.ZSTD)
    writer.open()
    conn = writer.add_connection(TOPIC, bags.IMAGE_TYPE, typestore=store)
    for i in range(40):
        writer.write(conn, i, store.serialize_cdr(_image(store, i), bags.IMAGE_TYPE))
    writer.close()
    file = tmp_path / "z" / "z.mcap"
    assert fill_chunk_crcs(file) == 2
    scan = McapScan(file)
    assert sum(1 for _ in scan_mcap(file, scan)) == 40 and scan.damage == ""
    chunks = _chunks(file)
    start, length, _ = chunks[1]
    first = chunks[0][2]  # index of the first message of the damaged chunk
    data = bytearray(file.read_bytes())
    data[start + length // 2] ^= 0x01  # one bit in the compressed bytes of the 2nd chunk
    file.write_bytes(bytes(data))
    scan = McapScan(file)
    assert sum(1 for _ in scan_mcap(file, scan)) == first == scan.messages
    assert scan.damage.startswith(f"chunk at byte {start}")
