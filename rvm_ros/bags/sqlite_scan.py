"""Read a damaged rosbag2 ``.db3`` (SQLite) file up to the damage.

SQLite refuses a file cut short (its header states more pages than there are): the scan
works on a private copy padded with empty pages to the stated size (the input is never
written), then reads the ``topics`` table and the ``messages`` table in row order until
SQLite reports the damage. Rows before the damage are returned intact.
"""

from __future__ import annotations

import shutil
import sqlite3
import struct
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from rvm_ros.errors import RvmRosError


class SqliteDamage(RvmRosError):
    """The file is not SQLite, or its topic table cannot be read."""

    cause = "bag_damaged"


@dataclass
class SqliteScan:
    """A damaged ``.db3`` opened for reading (:func:`open_damaged_db3`).

    Attributes:
        path: The input file.
        topics: Topic -> message type.
        damage: Why reading stopped early ("" until it does).
        messages: Messages read so far.
    """

    path: Path
    copy: Path
    topics: dict[str, str] = field(default_factory=dict)
    topic_ids: dict[int, tuple[str, str]] = field(default_factory=dict)
    damage: str = ""
    messages: int = 0

    def rows(self, with_data: bool = True) -> Iterator[tuple[str, str, int, bytes]]:
        """``(topic, msgtype, timestamp_ns, CDR bytes)`` in row order, up to the damage."""
        con = sqlite3.connect(f"file:{self.copy}?mode=ro&immutable=1", uri=True)
        columns = "topic_id, timestamp, data" if with_data else "topic_id, timestamp, NULL"
        count = 0
        try:
            for topic_id, ts, data in con.execute(f"SELECT {columns} FROM messages"):
                topic, msgtype = self.topic_ids.get(int(topic_id), ("", ""))
                count += 1
                yield topic, msgtype, int(ts), bytes(data) if data is not None else b""
        except sqlite3.DatabaseError as exc:
            self.damage = f"could not read past message {count} (DatabaseError: {exc})"
        finally:
            self.messages = count
            con.close()

    def close(self) -> None:
        """Remove the private copy."""
        shutil.rmtree(self.copy.parent, ignore_errors=True)


def open_damaged_db3(path: Path) -> SqliteScan:
    """Prepare to read a damaged ``.db3``.

    Raises:
        SqliteDamage: Not an SQLite file, or even its topic table is unreadable.
    """
    with open(path, "rb") as fh:
        header = fh.read(100)
    if len(header) < 100 or not header.startswith(b"SQLite format 3\x00"):
        raise SqliteDamage(f"{path}: not SQLite data (no SQLite header)")
    page_size = struct.unpack(">H", header[16:18])[0]
    page_size = 65536 if page_size == 1 else page_size
    pages = struct.unpack(">I", header[28:32])[0]
    folder = Path(tempfile.mkdtemp(prefix="rvm_db3_"))
    copy = folder / path.name
    try:
        shutil.copyfile(path, copy)
        size = copy.stat().st_size
        if pages * page_size > size:
            with open(copy, "r+b") as fh:
                fh.truncate(pages * page_size)  # the missing pages read as empty
        scan = SqliteScan(path, copy)
        con = sqlite3.connect(f"file:{copy}?mode=ro&immutable=1", uri=True)
        try:
            for tid, name, msgtype in con.execute("SELECT id, name, type FROM topics"):
                scan.topic_ids[int(tid)] = (str(name), str(msgtype))
                scan.topics[str(name)] = str(msgtype)
        finally:
            con.close()
    except (sqlite3.DatabaseError, OSError) as exc:
        shutil.rmtree(folder, ignore_errors=True)
        raise SqliteDamage(f"{path}: its topic table cannot be read ({exc})") from exc
    return scan
