"""rosbag2 reading and writing with the project's message types, via ``rosbags``.

No ROS install is needed: our ``.msg`` definitions are registered into a ``rosbags``
typestore at run time (:func:`typestore`), so bags written here carry the same type
definitions (and RIHS01 hashes) that ``rosidl`` generates and are readable by ROS 2 tools.

Reading is tolerant of damage: :class:`BagReader` yields every message it can read and
records what it could not read in :attr:`BagReader.errors` (a truncated MCAP file whose
index is gone is read record by record up to the damage, :mod:`.mcap_scan`; a ``.db3``
SQLite refuses to open is read row by row up to the damage, :mod:`.sqlite_scan`). A bag
of which nothing at all can be read raises :class:`BagError` (cause ``bag_damaged``)
naming the damage, never "no topics".
"""

from __future__ import annotations

import functools
import os
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from rosbags.rosbag2 import Reader, StoragePlugin, Writer
from rosbags.typesys import Stores, get_types_from_msg, get_typestore
from rosbags.typesys.store import Typestore

from rvm_ros.bags.mcap_scan import McapScan, scan_mcap
from rvm_ros.bags.sqlite_scan import SqliteDamage, SqliteScan, open_damaged_db3
from rvm_ros.errors import RvmRosError

IMAGE_TYPE = "sensor_msgs/msg/Image"
COMPRESSED_IMAGE_TYPE = "sensor_msgs/msg/CompressedImage"
IMAGE_TYPES = (IMAGE_TYPE, COMPRESSED_IMAGE_TYPE)
FEATURE_MAP_TYPE = "rvm_ros/msg/FeatureMap"
TRACKED_POINT_TYPE = "rvm_ros/msg/TrackedPoint"
TRACKED_POINTS_TYPE = "rvm_ros/msg/TrackedPoints"
SCENE_TOKENS_TYPE = "rvm_ros/msg/SceneTokens"
# Message files registered from ``msg/`` (order matters: a message after the ones it uses).
MSG_NAMES = ("FeatureMap", "TrackedPoint", "TrackedPoints", "CameraGeometry", "SceneTokens")

Storage = Literal["mcap", "sqlite3"]
STORAGES: tuple[str, ...] = ("mcap", "sqlite3")
# rosbag2 metadata version written (8: readable by Jazzy and Kilted).
BAG_VERSION: Literal[8, 9] = 8


class BagError(RvmRosError):
    """A bag could not be opened, read or written; the message says which and why."""

    cause = "bag_unreadable"


def _msg_dir_candidates() -> list[Path]:
    """Folders that may hold our ``.msg`` files, most specific first."""
    here = Path(__file__).resolve().parents[1]  # the rvm_ros package folder
    candidates = [here.parent / "msg"]  # source checkout
    for prefix in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep):
        if prefix:
            candidates.append(Path(prefix) / "share" / "rvm_ros" / "msg")
    candidates.append(here / "interfaces")  # pip install
    candidates.append(here / "interfaces" / "msg")
    return candidates


def find_msg_dir() -> Path:
    """Locate the folder holding ``FeatureMap.msg`` and friends.

    Looks in ``<repo>/msg`` (source checkout), ``<prefix>/share/rvm_ros/msg`` for each
    prefix of ``AMENT_PREFIX_PATH`` and the packaged ``rvm_ros/interfaces/``.

    Returns:
        The first folder that holds every file of :data:`MSG_NAMES`.

    Raises:
        BagError: none of the places holds them (the message lists where it looked).
    """
    candidates = _msg_dir_candidates()
    for folder in candidates:
        if all((folder / f"{name}.msg").is_file() for name in MSG_NAMES):
            return folder
    looked = ", ".join(str(c) for c in candidates)
    raise BagError(
        f"rvm_ros message definitions ({', '.join(n + '.msg' for n in MSG_NAMES)}) not found; "
        f"looked in: {looked}"
    )


@functools.lru_cache(maxsize=4)
def _typestore_from(msg_dir: str) -> Typestore:
    store = get_typestore(Stores.ROS2_KILTED)
    types: dict[str, Any] = {}
    for name in MSG_NAMES:
        text = (Path(msg_dir) / f"{name}.msg").read_text(encoding="utf-8")
        types.update(get_types_from_msg(text, f"rvm_ros/msg/{name}"))
    store.register(types)
    return store


def typestore(msg_dir: Path | str | None = None) -> Typestore:
    """The ROS 2 Kilted ``rosbags`` typestore with the ``rvm_ros`` messages registered.

    Args:
        msg_dir: folder of the ``.msg`` files; found with :func:`find_msg_dir` when None.

    Returns:
        A typestore (cached per folder) that knows ``rvm_ros/msg/FeatureMap``,
        ``rvm_ros/msg/TrackedPoint`` and ``rvm_ros/msg/TrackedPoints``.
    """
    folder = Path(msg_dir) if msg_dir is not None else find_msg_dir()
    missing = [n + ".msg" for n in MSG_NAMES if not (folder / f"{n}.msg").is_file()]
    if missing:
        raise BagError(f"message definitions missing in {folder}: {', '.join(missing)}")
    return _typestore_from(str(folder.resolve()))


def message_class(msgtype: str, store: Typestore | None = None) -> Any:
    """The ``rosbags`` dataclass of a message type, e.g. ``"rvm_ros/msg/FeatureMap"``."""
    store = store or typestore()
    try:
        return store.types[msgtype]
    except KeyError:
        raise BagError(f"unknown message type {msgtype!r}") from None


# --------------------------------------------------------------------------- writing


class BagWriter:
    """Write messages of any registered type into a new rosbag2 (a folder).

    Connections are added on the first message of each topic. Use as a context manager,
    or call :meth:`close`; a closed bag is complete and valid.

    Args:
        path: the bag folder to create (must not exist).
        storage: ``"mcap"`` or ``"sqlite3"``.
        store: typestore to serialize with (default :func:`typestore`).
    """

    def __init__(self, path: Path | str, storage: str = "mcap", store: Typestore | None = None):
        if storage not in STORAGES:
            raise BagError(f"unknown bag storage {storage!r}; expected one of {STORAGES}")
        self.path = Path(path)
        if self.path.exists():
            raise BagError(f"bag {self.path} exists already; not overwriting")
        self.storage = storage
        self.store = store or typestore()
        plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
        self._writer = Writer(self.path, version=BAG_VERSION, storage_plugin=plugin)
        self._writer.open()
        self._connections: dict[str, Any] = {}
        self.counts: dict[str, int] = {}
        self.closed = False

    def write(self, topic: str, msgtype: str, msg: Any, timestamp_ns: int) -> None:
        """Serialize ``msg`` (a ``rosbags`` message object) and append it.

        Args:
            topic: topic name.
            msgtype: full type name, e.g. ``"sensor_msgs/msg/Image"``.
            msg: the message object (of ``message_class(msgtype)``).
            timestamp_ns: the bag's receive time stamp of the message.
        """
        self.write_raw(topic, msgtype, self.store.serialize_cdr(msg, msgtype), timestamp_ns)

    def write_raw(self, topic: str, msgtype: str, data: bytes | memoryview, ts: int) -> None:
        """Append an already CDR-serialized message."""
        if self.closed:
            raise BagError(f"bag {self.path} is closed")
        conn = self._connections.get(topic)
        if conn is None:
            conn = self._writer.add_connection(topic, msgtype, typestore=self.store)
            self._connections[topic] = conn
            self.counts[topic] = 0
        elif conn.msgtype != msgtype:
            raise BagError(f"topic {topic} has type {conn.msgtype}, cannot write {msgtype}")
        self._writer.write(conn, int(ts), data)
        self.counts[topic] += 1

    def close(self) -> None:
        """Finish the bag (writes the index and ``metadata.yaml``)."""
        if not self.closed:
            self.closed = True
            self._writer.close()

    def __enter__(self) -> BagWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --------------------------------------------------------------------------- reading


@dataclass
class BagMessage:
    """One message read from a bag.

    Attributes:
        topic: topic name.
        msgtype: full type name.
        timestamp_ns: the bag's (receive) time stamp.
        msg: the deserialized ``rosbags`` message, or None when it could not be decoded.
        error: why ``msg`` is None ("" otherwise).
    """

    topic: str
    msgtype: str
    timestamp_ns: int
    msg: Any
    error: str = ""


@dataclass
class _RecoveredConn:
    topic: str
    msgtype: str


@dataclass
class BagReader:
    """Read a rosbag2 (folder with ``metadata.yaml``, or a bare ``.mcap`` / ``.db3`` file).

    Use :attr:`topics` to see what is there and :meth:`messages` to iterate in time order.
    Damage does not raise during iteration: what could not be read is appended to
    :attr:`errors` (naming the file and the cause) and iteration ends early or skips the
    bad message (``BagMessage.msg`` is None with ``error`` set).

    Raises (from the constructor):
        BagError: the path does not exist or nothing at all can be read from it.
    """

    path: Path
    store: Typestore | None = None
    topics: dict[str, str] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    storage: str = ""
    message_count: int | None = None
    recovered: bool = False

    def __post_init__(self) -> None:
        self.path = Path(self.path)
        self.store = self.store or typestore()
        if not self.path.exists():
            raise BagError(f"bag {self.path} does not exist")
        self._reader: Reader | None = None
        self._mcap_files: list[Path] = []
        self._sqlite: list[SqliteScan] = []
        try:
            reader = self._open_reader()
        except Exception as exc:
            self._recover(exc)
            return
        self._reader = reader
        self.topics = {c.topic: c.msgtype for c in reader.connections}
        self.message_count = reader.message_count
        self.storage = self._detect_storage()

    def _recover(self, exc: Exception) -> None:
        """The storage cannot be opened normally: read its files up to the damage."""
        self._mcap_files = self._find_files(".mcap")
        databases = self._find_files(".db3")
        if self._mcap_files:
            self._recover_mcap(exc)
        elif databases:
            self._recover_sqlite(databases, exc)
        else:
            raise BagError(f"cannot read bag {self.path}: {exc}") from exc
        self.recovered = True

    def _recover_mcap(self, exc: Exception) -> None:
        self.storage = "mcap"
        found = []
        for file in self._mcap_files:
            scan = McapScan(file)
            for _ in scan_mcap(file, scan, with_data=False):
                pass
            found.append(scan)
            for topic, msgtype in scan.topics.items():
                self.topics.setdefault(topic, msgtype)
        self.message_count = sum(s.messages for s in found)
        if not self.topics:
            why = "; ".join(f"{s.path}: {s.damage or 'no channel'}" for s in found)
            raise BagError(
                f"bag {self.path} is damaged and nothing in it can be read: {why}",
                cause="bag_damaged",
            ) from exc
        self.errors.append(
            f"{self.path}: index unreadable ({exc}); reading messages sequentially up to the damage"
        )

    def _recover_sqlite(self, databases: list[Path], exc: Exception) -> None:
        self.storage = "sqlite3"
        why = []
        for file in databases:
            try:
                scan = open_damaged_db3(file)
            except SqliteDamage as damage:
                why.append(str(damage))
                continue
            self._sqlite.append(scan)
            for topic, msgtype in scan.topics.items():
                self.topics.setdefault(topic, msgtype)
        if not self._sqlite:
            raise BagError(
                f"bag {self.path} is damaged and nothing in it can be read: {'; '.join(why)}",
                cause="bag_damaged",
            ) from exc
        self.errors.append(
            f"{self.path}: cannot open the database ({exc}); reading its rows up to the damage"
        )
        self.errors.extend(why)

    def _open_reader(self) -> Reader:
        """rosbags' reader; a folder without metadata.yaml (a recorder that was killed)
        with a single ``.db3`` / ``.mcap`` file is read through that file."""
        path = self.path
        if path.is_dir() and not (path / "metadata.yaml").exists():
            files = sorted(path.glob("*.db3")) + sorted(path.glob("*.mcap"))
            if len(files) == 1:
                self.errors.append(f"{path}: no metadata.yaml; reading {files[0].name} directly")
                path = files[0]
        reader = Reader(path)
        reader.open()
        return reader

    def _detect_storage(self) -> str:
        if self.path.is_file():
            return "mcap" if self.path.suffix == ".mcap" else "sqlite3"
        if any(self.path.glob("*.mcap")):
            return "mcap"
        return "sqlite3"

    def _find_files(self, suffix: str) -> list[Path]:
        if self.path.is_file():
            return [self.path] if self.path.suffix == suffix else []
        return sorted(self.path.glob(f"*{suffix}"))

    def _iter_recovered(self) -> Iterator[tuple[_RecoveredConn, int, bytes]]:
        """Messages of a bag whose storage could not be opened, up to the damage."""
        for file in self._mcap_files:
            scan = McapScan(file)
            for topic, ts, data in scan_mcap(file, scan):
                yield _RecoveredConn(topic, self.topics.get(topic, "")), ts, data
            if scan.damage:
                self.errors.append(
                    f"{file}: could not read past message {scan.messages} ({scan.damage})"
                )
        for db in self._sqlite:
            for topic, msgtype, ts, data in db.rows():
                yield _RecoveredConn(topic, msgtype), ts, data
            if db.damage:
                self.errors.append(f"{db.path}: {db.damage}")

    def indexed_count(self, topics: Collection[str]) -> int:
        """Messages of ``topics`` as the storage's index counts them (0 for a recovered bag).

        Args:
            topics: topic names to count.
        """
        if self._reader is None:
            return 0
        return sum(c.msgcount for c in self._reader.connections if c.topic in topics)

    def raw_messages(
        self, topics: list[str] | None = None
    ) -> Iterator[tuple[str, str, int, bytes]]:
        """Yield ``(topic, msgtype, timestamp_ns, CDR bytes)`` in time order, undecoded.

        Args:
            topics: topic names to read (all when None).
        """
        wanted = set(self.topics) if topics is None else set(topics)
        if self._reader is None:
            for conn, ts, data in self._iter_recovered():
                if conn.topic in wanted:
                    yield conn.topic, conn.msgtype, int(ts), bytes(data)
            return
        conns = [c for c in self._reader.connections if c.topic in wanted]
        if not conns:
            return
        for conn, ts, data in self._guarded(self._reader.messages(connections=conns)):
            yield conn.topic, conn.msgtype, int(ts), bytes(data)

    def messages(self, topics: list[str] | None = None) -> Iterator[BagMessage]:
        """Yield the messages of ``topics`` (all when None) in the bag's time order.

        Args:
            topics: topic names to read.

        Yields:
            :class:`BagMessage` for each message; undecodable ones have ``msg`` None.
        """
        wanted = set(self.topics) if topics is None else set(topics)
        assert self.store is not None
        store = self.store
        if self._reader is None:
            source: Iterator[tuple[Any, int, bytes]] = (
                (c, t, d) for c, t, d in self._iter_recovered() if c.topic in wanted
            )
        else:
            conns = [c for c in self._reader.connections if c.topic in wanted]
            if not conns:  # rosbags reads every connection when given none
                return
            source = self._guarded(self._reader.messages(connections=conns))
        for conn, ts, data in source:
            try:
                msg = store.deserialize_cdr(data, conn.msgtype)
            except Exception as exc:
                yield BagMessage(conn.topic, conn.msgtype, int(ts), None, f"undecodable: {exc}")
                continue
            yield BagMessage(conn.topic, conn.msgtype, int(ts), msg)

    def _guarded(self, it: Iterator[tuple[Any, int, bytes]]) -> Iterator[tuple[Any, int, bytes]]:
        count = 0
        try:
            for item in it:
                count += 1
                yield item
        except Exception as exc:  # sqlite3.DatabaseError, ReaderError, ...
            self.errors.append(
                f"{self.path}: could not read past message {count} ({type(exc).__name__}: {exc})"
            )

    def close(self) -> None:
        """Close the underlying files."""
        if self._reader is not None:
            self._reader.close()
            self._reader = None
        for db in self._sqlite:
            db.close()

    def __enter__(self) -> BagReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def image_topics(topics: dict[str, str]) -> dict[str, str]:
    """The topics of ``topics`` (name → type) that carry Image or CompressedImage."""
    return {t: ty for t, ty in sorted(topics.items()) if ty in IMAGE_TYPES}
