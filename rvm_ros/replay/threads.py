"""The replay's two helper threads: bag reading/decoding ahead (:class:`Prefetch`) and
writing the features bag behind (:class:`Sink`), each with a bounded queue."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

from rvm_ros import imaging
from rvm_ros.bags import rosbag2 as bags
from rvm_ros.pipeline import FrameInput
from rvm_ros.stamps import header_ns

__all__ = ["Prefetch", "Sink", "SkippedMessage"]

_END = object()
ItemT = TypeVar("ItemT")


@dataclass(frozen=True)
class SkippedMessage:
    """An image message that gives no frame (unreadable, or not a usable image).

    Attributes:
        camera: Camera of its topic.
        index: Its position among the camera's messages.
        stamp_ns: Its header stamp (None: the message could not be read).
        bag_time_ns: Its log time in the bag.
        reason: Stable key of why it was skipped.
        detail: Human-readable explanation naming the topic and the message.
    """

    camera: str
    index: int
    stamp_ns: int | None
    bag_time_ns: int
    reason: str
    detail: str


@dataclass(frozen=True)
class _Failed:
    """What the reading thread raised, handed to the consumer."""

    error: BaseException


class Prefetch:
    """Reads and decodes image messages in a background thread, in bag order.

    Items (in order): a :class:`~rvm_ros.pipeline.FrameInput` (``header`` is
    ``(message header, index, bag time)``) or a :class:`SkippedMessage`; an exception in
    the thread is handed over and re-raised by :meth:`items`. Decoding overlaps with the
    model step (which releases the GIL).

    Args:
        bag: The bag to read (opened again in the thread).
        topic_to_camera: The image topics to read and their cameras.
        max_pixels: Largest image accepted (larger ones are skipped).
        depth: Items decoded ahead at most.
    """

    def __init__(
        self,
        bag: Path,
        topic_to_camera: Mapping[str, str],
        max_pixels: int,
        depth: int = 8,
    ) -> None:
        self.bag = bag
        self.errors: list[str] = []
        self.topic_to_camera = dict(topic_to_camera)
        self.max_pixels = max_pixels
        self.queue: queue.Queue[object] = queue.Queue(maxsize=depth)
        self.stop = threading.Event()
        self.decode_s = 0.0  # reading + deserializing + converting (reading thread)
        self.wait_s = 0.0  # the processing loop waiting for the next frame
        self.thread = threading.Thread(target=self._run, name="replay-read", daemon=True)
        self.thread.start()

    def _put(self, item: object) -> bool:
        while not self.stop.is_set():
            try:
                self.queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        counts: dict[str, int] = {}
        try:
            # Opened here: sqlite3 connections may only be used by the thread that made them.
            with bags.BagReader(self.bag) as reader:
                self._read(reader, counts)
                self.errors = list(reader.errors)
        except BaseException as exc:  # handed to the consumer, re-raised there
            self._put(_Failed(exc))
            return
        self._put(_END)

    def _read(self, reader: bags.BagReader, counts: dict[str, int]) -> None:
        t0 = time.perf_counter()  # busy time: reading, deserializing and converting
        for m in reader.messages(list(self.topic_to_camera)):
            camera = self.topic_to_camera[m.topic]
            index = counts.get(camera, 0)
            counts[camera] = index + 1
            item = self._decode(m, camera, index)
            self.decode_s += time.perf_counter() - t0
            if not self._put(item):
                return
            t0 = time.perf_counter()

    def _decode(self, m: bags.BagMessage, camera: str, index: int) -> FrameInput | SkippedMessage:
        """One message as a frame, or why it gives none."""
        if m.msg is None:
            detail = f"{m.topic} message {index}: {m.error}"
            return SkippedMessage(camera, index, None, m.timestamp_ns, "unreadable_message", detail)
        stamp = header_ns(m.msg.header)
        try:
            if m.msgtype == bags.COMPRESSED_IMAGE_TYPE:
                image = imaging.compressed_to_array(m.msg, self.max_pixels)
            else:
                image = imaging.image_to_array(m.msg, self.max_pixels)
        except imaging.ImageError as exc:
            detail = f"{m.topic} message {index}: {exc}"
            return SkippedMessage(camera, index, stamp, m.timestamp_ns, exc.cause, detail)
        header = (m.msg.header, index, m.timestamp_ns)
        return FrameInput(camera, stamp, header, image)

    def items(self) -> Iterator[FrameInput | SkippedMessage]:
        """The decoded items, in bag order (raises what the reading thread raised)."""
        while True:
            t0 = time.perf_counter()
            item = self.queue.get()
            self.wait_s += time.perf_counter() - t0
            if item is _END:
                return
            if isinstance(item, _Failed):
                raise item.error
            assert isinstance(item, (FrameInput, SkippedMessage))
            yield item

    def close(self) -> None:
        """Stop the thread (it ends at its next message) and wait for it."""
        self.stop.set()
        self.thread.join(timeout=10)


class Sink(Generic[ItemT]):
    """Writes results (features bag, plots) in a background thread, in order.

    Args:
        open_writer: Opens the output bag (called in the thread).
        handle: Writes one item with the open writer.
        depth: Items queued at most.
    """

    def __init__(
        self,
        open_writer: Callable[[], bags.BagWriter],
        handle: Callable[[bags.BagWriter, ItemT], None],
        depth: int = 16,
    ) -> None:
        self.open_writer = open_writer
        self.handle = handle
        self.queue: queue.Queue[object] = queue.Queue(maxsize=depth)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="replay-write", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        writer: bags.BagWriter | None = None
        try:
            # Opened here: sqlite3 connections may only be used by the thread that made them.
            writer = self.open_writer()
        except BaseException as exc:
            self.error = exc
        try:
            self._drain(writer)
        finally:
            if writer is not None:
                try:
                    writer.close()
                except BaseException as exc:
                    self.error = self.error or exc

    def _drain(self, writer: bags.BagWriter | None) -> None:
        """Write the queued items until the end marker (only drain after a failure)."""
        while True:
            item = self.queue.get()
            if item is _END:
                return
            if self.error is not None or writer is None:
                continue  # drain after a failure
            try:
                self.handle(writer, item)  # type: ignore[arg-type]  # put() takes ItemT only
            except BaseException as exc:
                self.error = exc

    def put(self, item: ItemT) -> None:
        """Queue one item for writing (raises an earlier write failure)."""
        if self.error is not None:
            raise self.error
        self.queue.put(item)

    def close(self) -> None:
        """Write what is queued, stop the thread; raises a write failure."""
        self.queue.put(_END)
        self.thread.join()
        if self.error is not None:
            raise self.error
