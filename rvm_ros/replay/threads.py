"""The replay's two helper threads: bag reading/decoding ahead (``_Prefetch``) and writing
the features bag behind (``_Sink``), each with a bounded queue."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from rvm_ros.bags import rosbag2 as bags
from rvm_ros.stamps import header_ns

_END = object()


class _Prefetch:
    """Reads and decodes image messages in a background thread, in bag order.

    Items (in order): ``("frame", FrameInput)`` or ``("skip", camera, index, stamp,
    bag_time, reason, detail)``; an exception in the thread is handed over and re-raised
    by :meth:`items`. Decoding overlaps with the model step (which releases the GIL).
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
        self.queue: queue.Queue[Any] = queue.Queue(maxsize=depth)
        self.stop = threading.Event()
        self.decode_s = 0.0  # reading + deserializing + converting (reading thread)
        self.wait_s = 0.0  # the processing loop waiting for the next frame
        self.thread = threading.Thread(target=self._run, name="replay-read", daemon=True)
        self.thread.start()

    def _put(self, item: Any) -> bool:
        while not self.stop.is_set():
            try:
                self.queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        from rvm_ros import imaging
        from rvm_ros.pipeline import FrameInput

        counts: dict[str, int] = {}
        try:
            # Opened here: sqlite3 connections may only be used by the thread that made them.
            with bags.BagReader(self.bag) as reader:
                self._read(reader, counts, imaging, FrameInput)
                self.errors = list(reader.errors)
        except BaseException as exc:  # handed to the consumer, re-raised there
            self._put(("error", exc))
            return
        self._put(_END)

    def _read(
        self, reader: bags.BagReader, counts: dict[str, int], imaging: Any, frame_cls: Any
    ) -> None:
        t0 = time.perf_counter()  # busy time: reading, deserializing and converting
        for m in reader.messages(list(self.topic_to_camera)):
            camera = self.topic_to_camera[m.topic]
            index = counts.get(camera, 0)
            counts[camera] = index + 1
            item: tuple[Any, ...]
            if m.msg is None:
                item = (
                    "skip",
                    camera,
                    index,
                    None,
                    m.timestamp_ns,
                    "unreadable_message",
                    f"{m.topic} message {index}: {m.error}",
                )
            else:
                stamp = header_ns(m.msg.header)
                try:
                    if m.msgtype == bags.COMPRESSED_IMAGE_TYPE:
                        image = imaging.compressed_to_array(m.msg, self.max_pixels)
                    else:
                        image = imaging.image_to_array(m.msg, self.max_pixels)
                except imaging.ImageError as exc:
                    item = (
                        "skip",
                        camera,
                        index,
                        stamp,
                        m.timestamp_ns,
                        exc.cause,
                        f"{m.topic} message {index}: {exc}",
                    )
                else:
                    header = (m.msg.header, index, m.timestamp_ns)
                    item = ("frame", frame_cls(camera, stamp, header, image))
            self.decode_s += time.perf_counter() - t0
            if not self._put(item):
                return
            t0 = time.perf_counter()

    def items(self) -> Iterator[tuple[Any, ...]]:
        """The decoded items, in bag order (raises what the reading thread raised)."""
        while True:
            t0 = time.perf_counter()
            item = self.queue.get()
            self.wait_s += time.perf_counter() - t0
            if item is _END:
                return
            if item[0] == "error":
                raise item[1]
            yield item

    def close(self) -> None:
        """Stop the thread (it ends at its next message) and wait for it."""
        self.stop.set()
        self.thread.join(timeout=10)


class _Sink:
    """Writes results (features bag, plots) in a background thread, in order."""

    def __init__(
        self,
        open_writer: Callable[[], bags.BagWriter],
        handle: Callable[[bags.BagWriter, Any, Any], None],
        depth: int = 16,
    ) -> None:
        self.open_writer = open_writer
        self.handle = handle
        self.queue: queue.Queue[Any] = queue.Queue(maxsize=depth)
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
            while True:
                item = self.queue.get()
                if item is _END:
                    return
                if self.error is not None or writer is None:
                    continue  # drain after a failure
                try:
                    self.handle(writer, *item)
                except BaseException as exc:
                    self.error = exc
        finally:
            if writer is not None:
                try:
                    writer.close()
                except BaseException as exc:
                    self.error = self.error or exc

    def put(self, frame: Any, result: Any) -> None:
        """Queue one result for writing (raises an earlier write failure)."""
        if self.error is not None:
            raise self.error
        self.queue.put((frame, result))

    def close(self) -> None:
        """Write what is queued, stop the thread; raises a write failure."""
        self.queue.put(_END)
        self.thread.join()
        if self.error is not None:
            raise self.error
