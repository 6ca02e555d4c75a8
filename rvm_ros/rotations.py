"""Unit quaternions ``(x, y, z, w)`` and rotation matrices: the package's one home for them.

Hamilton convention as ROS uses it (``geometry_msgs/Quaternion``): ``w`` last; a matrix
``R`` maps child-frame vectors into the parent frame.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

__all__ = ["matrix_to_quaternion", "quaternion_to_matrix", "quaternion_yaw"]


def quaternion_to_matrix(q: Sequence[float] | np.ndarray) -> np.ndarray:
    """``float64 [3, 3]`` rotation matrix of a unit quaternion ``(x, y, z, w)``."""
    x, y, z, w = (float(v) for v in q)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def quaternion_yaw(q: Sequence[float] | np.ndarray) -> float:
    """Rotation about ``z`` (radians, in ``(-pi, pi]``) of a unit quaternion ``(x, y, z, w)``."""
    x, y, z, w = (float(v) for v in q)
    return math.atan2(2.0 * (w * z + x * y), 1.0 - 2.0 * (y * y + z * z))


def matrix_to_quaternion(rot: np.ndarray) -> tuple[float, float, float, float]:
    """Unit quaternion ``(x, y, z, w)`` of a ``[3, 3]`` rotation matrix (Shepperd's method:
    the branch on the largest diagonal term keeps the square root well conditioned)."""
    m = np.asarray(rot, dtype=np.float64)
    tr = float(m[0, 0] + m[1, 1] + m[2, 2])
    if tr > 0:
        s = math.sqrt(tr + 1.0) * 2
        q = ((m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s, s / 4)
    elif m[0, 0] > m[1, 1] and m[0, 0] > m[2, 2]:
        s = math.sqrt(1.0 + m[0, 0] - m[1, 1] - m[2, 2]) * 2
        q = (s / 4, (m[0, 1] + m[1, 0]) / s, (m[0, 2] + m[2, 0]) / s, (m[2, 1] - m[1, 2]) / s)
    elif m[1, 1] > m[2, 2]:
        s = math.sqrt(1.0 + m[1, 1] - m[0, 0] - m[2, 2]) * 2
        q = ((m[0, 1] + m[1, 0]) / s, s / 4, (m[1, 2] + m[2, 1]) / s, (m[0, 2] - m[2, 0]) / s)
    else:
        s = math.sqrt(1.0 + m[2, 2] - m[0, 0] - m[1, 1]) * 2
        q = ((m[0, 2] + m[2, 0]) / s, (m[1, 2] + m[2, 1]) / s, s / 4, (m[1, 0] - m[0, 1]) / s)
    n = math.sqrt(sum(float(v) * float(v) for v in q))
    return (float(q[0] / n), float(q[1] / n), float(q[2] / n), float(q[3] / n))
