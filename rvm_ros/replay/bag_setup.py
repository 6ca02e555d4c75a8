"""One bag made ready for replay: opened, configured, its ledgers and model loaded.

:func:`prepare_bag` is the set-up half of :func:`rvm_ros.replay.run.replay_bag`: it opens
the bag, builds the node configuration for its image topics, reads any ground truth,
starts the bag's report section and loads (or reuses) and warms up the encoder.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from rvm_ros.bags import rosbag2 as bags
from rvm_ros.replay.config import build_config
from rvm_ros.replay.encoders import Encoder, EncoderCache
from rvm_ros.replay.ground_truth import GroundTruth, read_ground_truth
from rvm_ros.replay.ledger import CameraLog
from rvm_ros.replay.records import BagSection
from rvm_ros.replay.settings import ReplayError, ReplaySettings
from rvm_ros.replay.topics import resolve_topic

if TYPE_CHECKING:
    from rvm_ros.pipeline import ProcessingConfig, Processor
    from rvm_ros.pipeline.node_config import NodeConfig

__all__ = ["BagSetup", "prepare_bag"]

log = logging.getLogger(__name__)


@dataclass
class BagSetup:
    """One bag ready for its loop: the open reader, configuration, ledgers and model.

    Attributes:
        bag: The bag.
        reader: The bag, open (closed by the loop, whose reading thread opens its own).
        cfg: The node configuration the bag is replayed with.
        topic_to_camera: The image topics replayed and their cameras.
        logs: The ledger of each camera (empty).
        ground_truth: Reference tracks of the cameras that have them.
        encoder: The model (from the worker's :class:`EncoderCache`), warmed up.
        processor: The node's processing core on ``encoder``.
        report: The bag's report section so far (configuration, model load times).
    """

    bag: Path
    reader: bags.BagReader
    cfg: NodeConfig
    topic_to_camera: dict[str, str]
    logs: dict[str, CameraLog]
    ground_truth: dict[str, GroundTruth]
    encoder: Encoder
    processor: Processor
    report: BagSection


def prepare_bag(bag: Path, settings: ReplaySettings, encoders: EncoderCache) -> BagSetup:
    """Open ``bag``, configure it, and load the model (torch threads set for the replay).

    Raises:
        ReplayError: the bag cannot be opened, its topics do not fit the config, or the
            encoder cannot be made or run.
    """
    import torch

    reader, images = _open_bag(bag)
    cfg, topic_to_camera = build_config(images, settings)
    torch.set_num_threads(max(1, settings.threads))
    logs = {
        cam: CameraLog(cam, topic, images[topic]) for topic, cam in sorted(topic_to_camera.items())
    }
    ground_truth = read_ground_truth(reader, topic_to_camera)
    if ground_truth and not cfg.processing.tracking:
        log.warning("bag has ground-truth tracks but tracking is off in the config")
    report = _bag_header(bag, reader, images, cfg, topic_to_camera, settings)
    encoder, processor = _load_model(reader, cfg, len(topic_to_camera), settings, encoders, report)
    return BagSetup(
        bag, reader, cfg, topic_to_camera, logs, ground_truth, encoder, processor, report
    )


def _open_bag(bag: Path) -> tuple[bags.BagReader, dict[str, str]]:
    """The open bag and its image topics (topic -> type); a one-line error if it has none."""
    try:
        reader = bags.BagReader(bag)
    except bags.BagError as exc:
        raise ReplayError(str(exc)) from exc
    images = bags.image_topics(reader.topics)
    if not images:
        reader.close()
        raise ReplayError(
            f"bag {bag} has no sensor_msgs/Image or CompressedImage topic "
            f"(topics: {', '.join(f'{t} [{ty}]' for t, ty in reader.topics.items()) or 'none'})"
        )
    return reader, images


def _bag_header(
    bag: Path,
    reader: bags.BagReader,
    images: dict[str, str],
    cfg: NodeConfig,
    topic_to_camera: dict[str, str],
    settings: ReplaySettings,
) -> BagSection:
    """The first keys of a bag's section: what was read and with which configuration."""
    return {
        "bag": str(bag),
        "storage": reader.storage,
        "complete": False,
        "read_errors": reader.errors,
        "ignored_image_topics": sorted(set(images) - set(topic_to_camera)),
        "missing_camera_topics": sorted(
            t
            for t in (resolve_topic(x, settings.node_name) for x in cfg.camera_topics.values())
            if t not in topic_to_camera
        ),
        "checkpoint": cfg.checkpoint,
        "backend": cfg.backend,
        "precision": cfg.precision,
        "threads": settings.threads,
        "processing": {
            k: v for k, v in asdict(cfg.processing).items() if k != "tracker" and v is not None
        },
    }


def _load_model(
    reader: bags.BagReader,
    cfg: NodeConfig,
    cameras: int,
    settings: ReplaySettings,
    encoders: EncoderCache,
    report: BagSection,
) -> tuple[Encoder, Processor]:
    """The encoder (from ``encoders``) and a warmed-up Processor; timings into ``report``.

    Raises:
        ReplayError: the encoder cannot be made or run (the reader is closed then).
    """
    from rvm_ros.pipeline import Processor
    from rvm_ros.runtime import create_encoder

    proc_cfg = cfg.processing
    t_load = time.perf_counter()
    try:
        encoder = encoders.get(
            create_encoder,
            cfg.checkpoint,
            cfg.backend,
            cfg.precision,
            cfg.device or None,
            height=proc_cfg.model_height,
            width=proc_cfg.model_width,
            max_batch=max(1, cameras),
            threads=max(1, settings.threads),  # onnxruntime / openvino too, not all cores
        )
    except Exception as exc:  # unreadable checkpoint, backend unavailable, bad size, ...
        reader.close()
        raise ReplayError(
            f"cannot create the {cfg.backend} encoder for {cfg.checkpoint}: {exc}"
        ) from exc
    report["model_load_s"] = time.perf_counter() - t_load
    report["encoder"] = encoder.info.as_dict()
    try:
        processor = Processor(proc_cfg, encoder)
        report["warmup_s"] = _warm_up(proc_cfg, encoder)
    except Exception as exc:
        encoders.release(encoder)
        reader.close()
        raise ReplayError(
            f"cannot run the {cfg.backend} encoder on {cfg.checkpoint}: {exc}"
        ) from exc
    return encoder, processor


def _warm_up(proc_cfg: ProcessingConfig, encoder: Encoder) -> float:
    """One frame through a throw-away Processor on the same encoder (first calls allocate,
    import and compile), on a camera name no bag uses; its encoder state is then dropped.
    The replay's own Processor and cameras are untouched, so outputs do not change.
    """
    from rvm_ros import imaging  # noqa: F401 - imported here, not in the timed loop
    from rvm_ros.pipeline import FrameInput, Processor

    t0 = time.perf_counter()
    name = "replay_warmup"
    while name in proc_cfg.cameras:
        name += "_"
    warm = Processor(dataclasses.replace(proc_cfg, cameras=(name,)), encoder)
    image = np.zeros((proc_cfg.model_height, proc_cfg.model_width, 3), np.uint8)
    warm.process([FrameInput(name, 0, None, image)])
    encoder.reset(name)
    return time.perf_counter() - t0
