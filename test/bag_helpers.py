"""Sizes of the small bags the bag-tool tests make (shared by test/bags, test/node, test/replay)."""

from __future__ import annotations

FRAMES = 12
WIDTH = 96  # 96x79 images
