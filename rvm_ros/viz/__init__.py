"""Pictures: PCA colouring of features, track drawing, the node's debug image."""

from __future__ import annotations

from rvm_ros.viz.debug import DebugRenderer, debug_image
from rvm_ros.viz.pca import PcaBasis, pca_colors
from rvm_ros.viz.tracks import draw_tracks, track_color

__all__ = ["DebugRenderer", "PcaBasis", "debug_image", "draw_tracks", "pca_colors", "track_color"]
