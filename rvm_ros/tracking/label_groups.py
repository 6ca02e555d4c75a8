"""A group of label-propagation points that share a query frame, hence a context.

:class:`~rvm_ros.tracking.label_propagation.PointTracker` keeps one :class:`LabelGroup`
per query (anchor) frame: the group's label maps over its context blocks, and what its
confidence reference needs (the query cells' similarities to each context block and
their top-k candidates).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rvm_ros.tracking.affinity import topk_candidates, topk_weights

__all__ = ["LabelGroup"]


@dataclass
class LabelGroup:
    """Points that share a query (anchor) frame, hence a context.

    Context cells are laid out in blocks of N cells: block 0 is the anchor frame, block
    ``1 + s`` the frame in ring slot ``s`` of the tracker (only slots holding a frame
    after the anchor are ever read).
    """

    anchor_index: int  # frame counter of the anchor frame
    anchor_features: np.ndarray  # [N, C], L2-normalised
    anchor_cells: np.ndarray  # int [Pg], argmax cell of each anchor label map
    ids: np.ndarray  # int32 [Pg]
    labels: np.ndarray  # float32 [(1+R)*N, Pg], label maps per context block
    ref_sims: np.ndarray  # float32 [Pg, (1+R)*N], query cells vs context (reach applied)
    # Per block, the top-k candidates of ref_sims (see store_ref_top): values, cells within
    # the block, and whether equal values were cut off.
    ref_top_v: np.ndarray  # float32 [Pg, 1+R, kb]
    ref_top_c: np.ndarray  # int [Pg, 1+R, kb]
    ref_unsure: np.ndarray  # bool [Pg, 1+R]

    @property
    def anchor_labels(self) -> np.ndarray:
        """``[N, Pg]`` label maps on the anchor frame."""
        n = self.anchor_features.shape[0]
        return self.labels[:n]

    def keep(self, keep: np.ndarray) -> None:
        """Keep only the points where ``keep`` (bool ``[Pg]``)."""
        self.ids = self.ids[keep]
        self.anchor_cells = self.anchor_cells[keep]
        self.labels = np.ascontiguousarray(self.labels[:, keep])
        self.ref_sims = np.ascontiguousarray(self.ref_sims[keep])
        self.ref_top_v = self.ref_top_v[keep]
        self.ref_top_c = self.ref_top_c[keep]
        self.ref_unsure = self.ref_unsure[keep]

    def grow(self, extra: int, n: int) -> None:
        """Room for ``extra`` more context blocks of ``n`` cells (empty)."""
        pg = self.ids.shape[0]
        self.labels = np.concatenate([self.labels, np.zeros((extra * n, pg), np.float32)])
        self.ref_sims = np.concatenate(
            [self.ref_sims, np.zeros((pg, extra * n), np.float32)], axis=1
        )
        kb = self.ref_top_v.shape[2]
        self.ref_top_v = np.concatenate(
            [self.ref_top_v, np.full((pg, extra, kb), -np.inf, np.float32)], axis=1
        )
        self.ref_top_c = np.concatenate(
            [self.ref_top_c, np.zeros((pg, extra, kb), self.ref_top_c.dtype)], axis=1
        )
        self.ref_unsure = np.concatenate([self.ref_unsure, np.zeros((pg, extra), bool)], axis=1)

    def store_ref_top(self, block: int, topk: int) -> None:
        """Refresh the reference's top-``topk`` candidates of context block ``block``."""
        n = self.anchor_features.shape[0]
        v, c, unsure = topk_candidates(self.ref_sims[:, block * n : (block + 1) * n], topk)
        self.ref_top_v[:, block] = v
        self.ref_top_c[:, block] = c
        self.ref_unsure[:, block] = unsure

    def reference(
        self,
        runs: list[tuple[int, int]],
        ring_index: np.ndarray,
        topk: int,
        temperature: float,
    ) -> np.ndarray:
        """float32 ``[Pg]``: what the group's context (its anchor frame and its ``runs`` of
        ring slots, ``ring_index`` their frame indices) gives the anchor frame's own
        feature at each point's query cell."""
        # Candidates: each block's stored top-k, merged (the context moved by a frame
        # since the last update, the blocks did not change).
        n = self.anchor_features.shape[0]
        cells = np.arange(n)
        slots = [s for a, b in runs for s in range(a, b)]
        blocks = np.array([0] + [1 + s for s in slots])  # context blocks
        frames = np.array([self.anchor_index, *ring_index[slots].tolist()])
        pg = self.ids.shape[0]
        cells_c = self.ref_top_c[:, blocks]  # [Pg, B, kb]
        candidates = (
            self.ref_top_v[:, blocks].reshape(pg, -1),
            (blocks[None, :, None] * n + cells_c).reshape(pg, -1),
            (frames[None, :, None] * n + cells_c).reshape(pg, -1),
            np.asarray(self.ref_unsure[:, blocks].any(axis=1)),
        )
        pieces = [
            (self.ref_sims[:, b * n : (b + 1) * n], b * n, f * n + cells)
            for b, f in zip(blocks.tolist(), frames.tolist(), strict=True)
        ]
        k = min(topk, len(blocks) * n)
        top_r, weights_r = topk_weights(pieces, k, temperature, candidates)  # [Pg, k]
        columns = np.arange(pg)[:, None]  # [Pg, 1]
        reference = (weights_r * self.labels[top_r, columns]).sum(axis=1)  # [Pg]
        return np.asarray(reference.astype(np.float32))
