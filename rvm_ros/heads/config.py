"""`HeadConfig`: the architecture of a planning head, stored in its checkpoints."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

__all__ = ["HeadConfig"]


@dataclass(frozen=True)
class HeadConfig:
    """Sizes of a :class:`rvm_ros.heads.planning.PlanningHead`.

    Attributes:
        token_dim: Channels C of the input tokens (0: no image input, past poses only).
        max_tokens: Largest number of tokens per camera (learned position embedding).
        max_cameras: Largest number of cameras (learned camera embedding).
        dim: Width of the head.
        queries: Learned queries of the attention pooling over all cameras' tokens.
        heads: Attention heads.
        mlp: Hidden width of the output MLP.
        horizons_s: Future times predicted (s); one ``(x, y, yaw)`` each.
        past_poses: Past poses given as input (0: image only).
        window: Frames per sample of a temporal aggregator (1: none).
    """

    token_dim: int = 192
    max_tokens: int = 256
    max_cameras: int = 6
    dim: int = 128
    queries: int = 4
    heads: int = 4
    mlp: int = 256
    horizons_s: tuple[float, ...] = (0.5, 1.0, 2.0)
    past_poses: int = 0
    window: int = 1

    def __post_init__(self) -> None:
        if self.token_dim < 0 or self.dim <= 0 or self.dim % self.heads:
            raise ValueError(f"HeadConfig: bad sizes {self}")
        if self.token_dim == 0 and self.past_poses == 0:
            raise ValueError("HeadConfig: a head needs tokens or past poses")
        if not self.horizons_s or any(h <= 0 for h in self.horizons_s):
            raise ValueError(f"HeadConfig: horizons must be > 0, got {self.horizons_s}")
        if self.window < 1:
            raise ValueError(f"HeadConfig: window must be >= 1, got {self.window}")

    def to_json(self) -> str:
        """JSON text (stored in checkpoints)."""
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> HeadConfig:
        """Inverse of :meth:`to_json`."""
        data = json.loads(text)
        data["horizons_s"] = tuple(data["horizons_s"])
        return cls(**data)
