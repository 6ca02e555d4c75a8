"""The parameter reference (a markdown table) that docs/NODE.md embeds verbatim.

A test checks that docs/NODE.md holds exactly what :func:`parameters_markdown` renders.
"""

from __future__ import annotations

from rvm_ros.pipeline.params.table import PARAMS, TRANSPORTS, ParamValue

__all__ = ["parameters_markdown"]


def parameters_markdown() -> str:
    """The parameter reference as a markdown table (docs/NODE.md embeds it verbatim).

    Returns:
        One row per entry of :data:`PARAMS` plus the per-camera parameters.
    """

    def show(value: ParamValue) -> str:
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, (list, tuple)):
            return "[" + ", ".join(map(str, value)) + "]"
        return '""' if value == "" else str(value)

    rows = ["| parameter | type | default | allowed | meaning |", "|---|---|---|---|---|"]
    for spec in PARAMS:
        rows.append(
            f"| `{spec.name}` | {spec.kind} | `{show(spec.default)}` | "
            f"{spec.constraint_text().replace(' | ', ', ') or 'any'} | {spec.description} |"
        )
    rows.append(
        "| `cameras.<name>.topic` | str | `/<name>/image_raw` (`.../compressed` for "
        "compressed) | a ROS topic name | Input image topic of camera `<name>` |"
    )
    rows.append(
        "| `cameras.<name>.transport` | str | `raw` | one of "
        f"{', '.join(TRANSPORTS)} | `sensor_msgs/Image` (raw) or `CompressedImage` |"
    )
    rows.append(
        "| `cameras.<name>.camera_info_topic` | str | `/<name>/camera_info` | a ROS topic "
        "name | Scene tokens: `sensor_msgs/CameraInfo` of camera `<name>` |"
    )
    rows.append(
        "| `cameras.<name>.translation` | float list | unset | 3 numbers (m) | Scene tokens: "
        "static camera-to-base translation `[x, y, z]` of the camera frame in the base frame |"
    )
    rows.append(
        "| `cameras.<name>.rotation` | float list | unset | unit quaternion | Scene tokens: "
        "static camera-to-base rotation `[x, y, z, w]` (with `translation`) |"
    )
    return "\n".join(rows) + "\n"
