"""The node's services, ``~/reset`` and ``~/set_query_points``, as functions of the
processor (None while the node is not active) and the request."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from rclpy.impl.rcutils_logger import RcutilsLogger
from std_srvs.srv import Trigger

from rvm_ros.srv import SetQueryPoints
from rvm_ros.tracking.queries import check_query_count

if TYPE_CHECKING:
    from rvm_ros.pipeline.processor import Processor

__all__ = ["answer_reset", "answer_set_query_points"]


def answer_reset(
    processor: Processor | None,
    cameras: tuple[str, ...],
    logger: RcutilsLogger,
    response: Trigger.Response,
) -> Trigger.Response:
    """Fill a ``std_srvs/Trigger`` response: reset every camera's state on its next frame."""
    if processor is None:
        response.success = False
        response.message = "node is not active: nothing to reset"
        return response
    processor.reset(None, reason="service")
    response.success = True
    response.message = (
        f"state reset for all cameras ({', '.join(cameras)}); flagged in the next FeatureMap"
    )
    logger.info("state reset requested through ~/reset")
    return response


def answer_set_query_points(
    processor: Processor | None,
    request: SetQueryPoints.Request,
    response: SetQueryPoints.Response,
) -> SetQueryPoints.Response:
    """Fill a ``rvm_ros/SetQueryPoints`` response: start tracking the requested points."""
    response.success = False
    if processor is None:
        response.message = "node is not active"
        return response
    try:
        check_query_count(max(len(request.x), len(request.y)))
        ids = processor.set_query_points(
            request.camera,
            np.asarray(request.x, dtype=np.float64),
            np.asarray(request.y, dtype=np.float64),
            bool(request.append),
        )
    except ValueError as exc:
        response.message = str(exc)
        return response
    response.success = True
    response.ids = [int(i) for i in ids]
    where = f"camera {request.camera}" if request.camera else "every camera"
    response.message = f"tracking {len(ids)} new point(s) on {where}"
    return response
