"""Point tracking by label propagation over RVM patch-feature grids.

This is the readout the RVM paper uses for tracking (no training): every point carries a
*label map*, a heatmap over the feature grid. For each new frame, every target cell takes
a softmax-weighted average of the label maps of its ``topk`` most similar cells among
the *context* frames (the point's query frame plus up to ``n_context`` recent frames),
similarity being the cosine of the L2-normalised features divided by ``temperature``.
The point's position is read off the propagated heatmap; the heatmap is pushed onto the
context queue and carries the point forward.

Coordinates are feature-grid cells: ``x`` to the right, ``y`` down, cell ``(r, c)``
covers ``[c, c+1) x [r, r+1)`` with its centre at ``(c + 0.5, r + 0.5)``.

Differences from the paper's evaluation notebook, on purpose:

* ``radius`` **is applied**: a target cell may only draw from context cells whose centres
  lie within ``radius`` cells (Euclidean) of its own. The JAX notebook computes this mask
  but never applies it, so its published numbers come from unrestricted propagation;
  ``radius=0`` or ``radius=inf`` reproduces that.
* Each point's context starts at its own query frame ("first frame" per group of points
  queried together): frames before a point existed hold no label for it.

Known limitation: a point that leaves the view often stays "visible" on the border cell
(its label has nowhere else to go and neighbouring content looks alike); measured on a
translated real video with pixel-patch features, about half of the points that left the
view were still reported visible. Points occluded inside the view drop out as expected.

The parts live beside this module: :mod:`.affinity` (similarities, the ``radius`` reach,
top-k softmax weights), :mod:`.heatmap` (Gaussian label maps, soft-argmax read-out),
:mod:`.label_groups` (the points that share a query frame, and their confidence
reference) and :mod:`.state` (``TrackState``, re-exported here).

Ties: the top-k is ordered by similarity, equal similarities going to the earlier context
frame (the query frame first), then the lower cell. Exactly equal similarities only arise
from exactly repeated feature vectors (synthetic data); the rule makes the result
independent of the selection algorithm.

Cost: per frame, one ``[N, C] x [C, R*N]`` product of the frame with the ``R`` ring frames
(``n_context``, shared by all groups of points) plus one ``[N, C] x [C, N]`` per group
for its query frame, a top-k over the ``K*N`` candidates of each target cell (K = 1 + the
ring frames after the group's query frame) and a ``[N, topk, P]`` gather (P points). The
confidence reference reuses the similarities computed when each context frame arrived
(a merge of per-frame top-k lists, no product). It grows as ``N^2 * K * C``: the product
is most of it. The ring is preallocated; similarities are computed in chunks of target
cells so temporaries stay near 8 MB. Measured with ``examples/bench_tracker.py`` on one
core of the 2-core development machine (Xeon, AVX-512, float32, C = 384, K = 21):
16x16 grid, 64 points about 12 ms per frame (the float32 product alone about 6 ms);
32x32 grid about 200 ms (product about 125 ms): pool the features or shorten
``n_context`` there. Products run through torch (one BLAS thread pool with the model's).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rvm_ros.tracking.affinity import reach_penalty, similarities, topk_weights
from rvm_ros.tracking.config import TrackerConfig
from rvm_ros.tracking.heatmap import gaussian_labels, soft_argmax
from rvm_ros.tracking.label_groups import LabelGroup
from rvm_ros.tracking.queries import check_queries
from rvm_ros.tracking.state import TrackState

__all__ = ["PointTracker", "TrackState"]

_EPS = 1e-12
_CHUNK_ELEMENTS = 1 << 21  # similarity entries computed at once (8 MB of float32)


@dataclass
class _Point:
    xy: np.ndarray  # float32 [2], last visible position (or the query position)
    confidence: float


class PointTracker:
    """Label-propagation tracker for one camera's feature grids.

    Per :meth:`update` with features ``F`` (``[h, w, C]``, N = h*w cells):

    1. ``F`` is L2-normalised per cell.
    2. For each group of points queried on the same frame, the context is that query
       frame plus the recent frames after it (at most ``n_context``). Similarities
       ``S = F @ F_ctx^T`` (``[N, K*N]``); pairs further apart than ``radius`` cells are
       excluded; each target cell keeps its ``topk`` largest, and
       ``softmax(S_topk / temperature)`` weights the context labels:
       ``H[i, p] = Σ_k w[i, k] · L_ctx[j_k(i), p]``.
    3. Position: the argmax cell of ``H[:, p]``, refined by a soft-argmax (heatmap-weighted
       mean of cell centres) over the 3x3 window around it.
    4. Confidence: the peak ``max_i H[i, p]`` divided by a reference ``R_p``, clipped to
       [0, 1]. ``R_p`` is what the same propagation (same context, top-k, temperature,
       radius) gives the query frame's own feature at the point's query cell: the value a
       perfect re-observation of the query would receive. The raw peak alone is not
       comparable across frames: with few context frames the top-k is filled with
       unrelated cells and even a perfect match gets well below 1 (about 0.4 with one
       context frame at the notebook's settings). The ratio is near 1 when the point's
       appearance is found, and falls towards 0 when it is gone.
    5. ``(F, H)`` are pushed onto the context queue (the raw, unnormalised ``H``, as in
       label propagation: uncertainty is carried forward, not sharpened away).

    A point's reported ``xy`` is updated only while it is visible, so a point that is not
    visible holds its last visible position (the TrackedPoint contract).

    Deterministic: the same calls with the same inputs give the same outputs.
    Not thread-safe.
    """

    def __init__(self, config: TrackerConfig | None = None) -> None:
        """Create a tracker.

        Args:
            config: settings; the defaults when ``None``.
        """
        self.config = config if config is not None else TrackerConfig()
        self._frame_index = 0  # index the next update gets
        self._grid: tuple[int, int, int] | None = None  # (h, w, C) of the context
        # Ring of the n_context most recent frames (allocated on the first update).
        self._ring: np.ndarray | None = None  # float32 [R, N, C], normalised features
        self._ring_index = np.full(self.config.n_context, -1, dtype=np.int64)  # [R], -1: empty
        self._next_slot = 0  # slot the next frame goes into (slots fill in order 0..R-1)
        self._groups: list[LabelGroup] = []
        self._points: dict[int, _Point] = {}  # tracked points (in a group)
        self._pending: dict[int, tuple[np.ndarray, float]] = {}  # id -> (xy, label peak)
        self._neighbourhood: tuple[tuple[int, int], np.ndarray | None] | None = None
        self._sim_buffer: np.ndarray | None = None  # scratch for target-vs-ring similarities

    # ------------------------------------------------------------------ point management

    @property
    def ids(self) -> np.ndarray:
        """Ids of all points (tracked and pending), ascending, int32."""
        return np.array(sorted({*self._points, *self._pending}), dtype=np.int32)

    @property
    def context_indices(self) -> list[int]:
        """Frame indices (0 = first update) of the recent frames held as context, oldest
        first (at most ``n_context``; each group's query frame is kept besides these)."""
        return sorted(int(i) for i in self._ring_index if i >= 0)

    def __len__(self) -> int:
        return len(self._points) + len(self._pending)

    def add_queries(self, xy: np.ndarray, ids: np.ndarray) -> None:
        """Add query points; they are anchored on the next :meth:`update`'s frame.

        On that frame their label maps are Gaussians (``label_sigma``) at ``xy`` and they
        are reported at ``xy`` with confidence 1.

        Args:
            xy: ``[P, 2]`` positions ``(x, y)`` in grid cells.
            ids: ``[P]`` integer ids, unique and not already in use.

        Raises:
            ValueError: wrong shapes, non-finite or negative positions, positions outside
                the current grid (when one is known), duplicate or already used ids.
        """
        used = {**self._points, **self._pending}
        size = (float(self._grid[0]), float(self._grid[1])) if self._grid is not None else None
        pts, ids_list = check_queries(xy, ids, used, size, space="grid")
        for i, p in zip(ids_list, pts, strict=True):
            self._pending[i] = (p.astype(np.float32), 1.0)

    def remove(self, ids: np.ndarray | list[int]) -> None:
        """Stop tracking the given points.

        Raises:
            ValueError: an id that is not tracked (nothing is removed then).
        """
        ids_list = [int(i) for i in np.asarray(ids).reshape(-1)]
        unknown = sorted(i for i in ids_list if i not in self._points and i not in self._pending)
        if unknown:
            raise ValueError(f"remove: ids {unknown} are not tracked")
        gone = set(ids_list)
        for i in gone:
            self._points.pop(i, None)
            self._pending.pop(i, None)
        kept: list[LabelGroup] = []
        for group in self._groups:
            keep = np.array([int(i) not in gone for i in group.ids], dtype=bool)
            if not keep.any():
                continue
            if not keep.all():
                group.keep(keep)
            kept.append(group)
        self._groups = kept

    def clear(self) -> None:
        """Drop every point (tracked and pending). The context frames are kept."""
        self._groups.clear()
        self._points.clear()
        self._pending.clear()

    def reset(self) -> None:
        """Forget the context (e.g. after a recurrent-state reset); keep the points.

        On the next :meth:`update` every point is re-anchored, like a new query, at its
        last position, and the grid size may change. A point that is not visible at the
        reset is re-anchored with an all-zero label map: it stays not visible (confidence
        0, at its last visible position) until removed, rather than latching onto whatever
        now covers that position. Pending queries stay pending.
        """
        for i, point in self._points.items():
            visible = point.confidence >= self.config.visibility_threshold
            self._pending[i] = (point.xy.copy(), 1.0 if visible else 0.0)
        self._points.clear()
        self._groups.clear()
        self._ring = None
        self._ring_index.fill(-1)
        self._next_slot = 0
        self._sim_buffer = None
        self._grid = None

    # ------------------------------------------------------------------------- tracking

    def update(self, features: np.ndarray) -> TrackState:
        """Track all points into a new frame.

        Args:
            features: float ``[h, w, C]`` patch features of the frame (row-major grid,
                without the CLS token).

        Returns:
            The state of every point (pending queries included, now anchored), ascending id.

        Raises:
            ValueError: features that are not a finite float ``[h, w, C]`` array, a grid
                shape that differs from the context's without a :meth:`reset`, or (after a
                reset onto a smaller grid) a point outside the new grid. The tracker is
                unchanged when it raises.
        """
        feats = self._checked_features(features)
        h, w, c = (int(s) for s in feats.shape)
        n = h * w
        flat = feats.reshape(n, c).astype(np.float32)  # [N, C] (a copy)
        flat /= np.maximum(np.linalg.norm(flat, axis=1, keepdims=True), _EPS)
        index = self._frame_index
        self._grid = (h, w, c)
        r_slots = self.config.n_context
        if r_slots > 0:
            self._make_room(n, c)
        slot = self._next_slot  # where this frame goes (evicting the oldest when full)

        if self._groups:
            self._track_groups(flat, h, w, slot if r_slots > 0 else None)

        if self._pending:
            self._anchor_pending(flat, index, h, w)

        if self._ring is not None:
            self._ring[slot] = flat
            self._ring_index[slot] = index
            self._next_slot = (slot + 1) % r_slots
        self._frame_index += 1
        return self.state()

    def _checked_features(self, features: np.ndarray) -> np.ndarray:
        """``features`` as an array, checked (see :meth:`update`'s errors)."""
        feats = np.asarray(features)
        if feats.ndim != 3 or min(feats.shape) < 1:
            raise ValueError(f"update: features must have shape [h, w, C], got {feats.shape}")
        if not np.issubdtype(feats.dtype, np.floating):
            raise ValueError(f"update: features must be floating point, got dtype {feats.dtype}")
        h, w, c = (int(s) for s in feats.shape)
        if self._grid is not None and self._grid != (h, w, c):
            gh, gw, gc = self._grid
            raise ValueError(
                f"update: feature grid {h}x{w}x{c} differs from the context's {gh}x{gw}x{gc}; "
                "call reset() when the input size changes"
            )
        finite = np.isfinite(feats).all(axis=-1)
        if not finite.all():
            r, col = np.argwhere(~finite)[0]
            raise ValueError(
                f"update: features are not finite in {int((~finite).sum())} cells "
                f"(first: row {int(r)}, column {int(col)})"
            )
        if self._pending:
            xy = np.stack([p for p, _ in self._pending.values()])
            out = (xy[:, 0] > w) | (xy[:, 1] > h)
            if out.any():
                ids_out = [i for i, o in zip(self._pending, out, strict=True) if o]
                raise ValueError(f"update: points {sorted(ids_out)} lie outside the {h}x{w} grid")
        return feats

    def _track_groups(self, flat: np.ndarray, h: int, w: int, slot: int | None) -> None:
        """Move every group's points into the frame ``flat`` ``[N, C]`` (an ``h`` x ``w``
        grid); with a ring ``slot``, the frame becomes the groups' context block
        ``1 + slot``."""
        n = h * w
        results = self._propagate_all(flat)
        for group, (heat, reference, anchor_sims) in zip(self._groups, results, strict=True):
            self._read_out(group.ids, heat.reshape(h, w, -1), reference)
            if slot is not None:
                # This frame becomes context block 1 + slot: its labels, and the
                # similarities of the query cells to it (reach is symmetric).
                block = slice((1 + slot) * n, (2 + slot) * n)
                group.labels[block] = heat
                group.ref_sims[:, block] = anchor_sims[:, group.anchor_cells].T
                group.store_ref_top(1 + slot, self.config.topk)

    def state(self) -> TrackState:
        """The current state of the tracked points (pending queries not included)."""
        ids = sorted(self._points)
        pts = [self._points[i] for i in ids]
        conf = np.array([p.confidence for p in pts], dtype=np.float32)
        return TrackState(
            ids=np.array(ids, dtype=np.int32),
            xy=np.array([p.xy for p in pts], dtype=np.float32).reshape(-1, 2),
            visible=conf >= self.config.visibility_threshold,
            confidence=conf,
        )

    # ------------------------------------------------------------------------ internals

    def _make_room(self, n: int, c: int) -> None:
        """Grow the ring (and every group's per-block arrays) to hold slot ``_next_slot``.

        The ring grows by doubling up to ``n_context`` slots rather than being allocated
        whole, so a large ``n_context`` costs memory only once that many frames came.
        """
        cap = 0 if self._ring is None else self._ring.shape[0]
        if self._next_slot < cap:
            return
        new = min(self.config.n_context, max(4, 2 * cap))
        ring = np.zeros((new, n, c), dtype=np.float32)
        if self._ring is not None:
            ring[:cap] = self._ring
        self._ring = ring
        extra = new - cap
        for g in self._groups:
            g.grow(extra, n)

    def _radius_mask(self, h: int, w: int) -> np.ndarray | None:
        """float32 ``[N, N]``: ``-inf`` where context cell j is out of reach of target cell
        i, else 0 (``None`` when nothing is out of reach). Symmetric."""
        if not self.config.restricted:
            return None
        if self._neighbourhood is None or self._neighbourhood[0] != (h, w):
            self._neighbourhood = ((h, w), reach_penalty(h, w, self.config.radius))
        return self._neighbourhood[1]

    def _select(
        self,
        pieces: list[tuple[np.ndarray, int, np.ndarray]],
        k: int,
        candidates: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """:func:`~rvm_ros.tracking.affinity.topk_weights` at this tracker's temperature.

        Returns:
            ``(label rows [R, k], weights [R, k])``.
        """
        return topk_weights(pieces, k, self.config.temperature, candidates)

    def _propagate_all(self, flat: np.ndarray) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Propagate every group's labels into the frame ``flat`` ``[N, C]``.

        The similarities of the frame to the ring frames are computed once for all groups
        (in chunks of target cells that keep the temporaries near 8 MB); each group adds
        its anchor frame and keeps only the ring frames after its anchor.

        Returns:
            Per group ``(heat [N, Pg], reference [Pg], anchor_sims [N, N])``: the
            propagated heatmaps; for each point the value the same context gives the
            query frame's own feature at the point's query cell (what a perfect
            re-observation would receive); the frame's similarities to the anchor frame
            (reach applied).
        """
        h, w, _ = self._grid  # type: ignore[misc]
        reach = self._radius_mask(h, w)  # [N, N] or None
        occupied = int((self._ring_index >= 0).sum())  # slots 0..occupied-1 hold frames
        runs: list[list[tuple[int, int]]] = []  # per group: runs [a, b) of slots after anchor
        anchor_sims = []  # per group [N, N]
        for group in self._groups:
            after = self._ring_index[:occupied] > group.anchor_index  # [R']
            edges = np.flatnonzero(np.diff(np.concatenate(([0], after.view(np.int8), [0]))))
            runs.append([(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2], strict=True)])
            a_sims = similarities(flat, group.anchor_features)  # [N, N]
            if reach is not None:
                a_sims += reach
            anchor_sims.append(a_sims)
        heats = self._heats(flat, occupied, reach, runs, anchor_sims)
        return [
            (
                heats[g],
                group.reference(
                    runs[g], self._ring_index, self.config.topk, self.config.temperature
                ),
                anchor_sims[g],
            )
            for g, group in enumerate(self._groups)
        ]

    def _heats(
        self,
        flat: np.ndarray,
        occupied: int,
        reach: np.ndarray | None,
        runs: list[list[tuple[int, int]]],
        anchor_sims: list[np.ndarray],
    ) -> list[np.ndarray]:
        """Per group the propagated heatmaps ``[N, Pg]`` of the frame ``flat`` ``[N, C]``
        from its anchor frame and its ``runs`` of ring slots, in chunks of target cells."""
        import torch  # here, not at module level: TrackerConfig users stay light

        n, c = flat.shape
        topk = self.config.topk
        flat_t = torch.from_numpy(flat)
        ring_t = (
            torch.from_numpy(self._ring[:occupied].reshape(occupied * n, c))
            if self._ring is not None and occupied
            else None
        )  # [R'*N, C]
        cells = np.arange(n)
        # Tie-break keys (frame index * N + cell) of the ring columns, [R'*N].
        ring_keys = (self._ring_index[:occupied, None] * n + cells).reshape(-1)
        heats = [np.empty((n, g.ids.shape[0]), dtype=np.float32) for g in self._groups]
        chunk = n if ring_t is None else max(1, min(n, _CHUNK_ELEMENTS // (occupied * n)))
        if ring_t is not None and (
            self._sim_buffer is None or self._sim_buffer.shape != (chunk, occupied * n)
        ):
            self._sim_buffer = np.empty((chunk, occupied * n), dtype=np.float32)
        for lo in range(0, n, chunk):
            hi = min(n, lo + chunk)
            ring_sims = None
            if ring_t is not None:
                assert self._sim_buffer is not None
                ring_sims = self._sim_buffer[: hi - lo]
                torch.matmul(flat_t[lo:hi], ring_t.T, out=torch.from_numpy(ring_sims))
                if reach is not None:  # ring_sims: [r, R'*N]
                    view = ring_sims.reshape(hi - lo, occupied, n)
                    np.add(view, reach[lo:hi, None, :], out=view)
            for g, group in enumerate(self._groups):
                # Pieces: the anchor block, then each run of ring slots after the anchor.
                pieces = [(anchor_sims[g][lo:hi], 0, group.anchor_index * n + cells)]
                if ring_sims is not None:
                    for a, b in runs[g]:
                        cols = slice(a * n, b * n)
                        pieces.append((ring_sims[:, cols], (1 + a) * n, ring_keys[cols]))
                k = min(topk, sum(p.shape[1] for p, _, _ in pieces))
                top, weights = self._select(pieces, k)  # [r, k]
                # [r, k] x [r, k, Pg] -> [r, Pg]
                heats[g][lo:hi] = np.einsum("nk,nkp->np", weights, group.labels[top])
        return heats

    def _read_out(self, ids: np.ndarray, heat: np.ndarray, reference: np.ndarray) -> None:
        """Update points ``ids`` from their heatmaps ``heat`` ``[h, w, Pg]``."""
        xy, peak, found = soft_argmax(heat)  # [Pg, 2], [Pg], [Pg]
        ok = reference > _EPS
        ratio = np.where(ok, peak / np.where(ok, reference, 1), 0).astype(np.float32)
        confidence = np.clip(ratio, 0.0, 1.0).tolist()  # [Pg]
        moved = ((np.asarray(confidence) >= self.config.visibility_threshold) & found).tolist()
        for j, pid in enumerate(ids.tolist()):
            point = self._points[pid]
            point.confidence = confidence[j]
            if moved[j]:
                point.xy = xy[j].copy()

    def _anchor_pending(self, flat: np.ndarray, index: int, h: int, w: int) -> None:
        """Turn pending queries into a new group anchored on this frame."""
        n = h * w
        ids = np.array(sorted(self._pending), dtype=np.int32)
        xy = np.stack([self._pending[int(i)][0] for i in ids]).astype(np.float32)  # [P, 2]
        peaks = np.array([self._pending[int(i)][1] for i in ids], dtype=np.float32)  # [P]
        labels = gaussian_labels(xy, h, w, self.config.label_sigma, peaks)  # [N, P]
        cells = labels.argmax(axis=0)  # [P]
        blocks = 1 + (0 if self._ring is None else self._ring.shape[0])
        label_buf = np.zeros((blocks * n, ids.shape[0]), dtype=np.float32)  # [(1+R)*N, P]
        label_buf[:n] = labels
        ref_sims = np.zeros((ids.shape[0], blocks * n), dtype=np.float32)  # [P, (1+R)*N]
        ref_sims[:, :n] = similarities(flat[cells], flat)  # [P, N]
        reach = self._radius_mask(h, w)
        if reach is not None:
            ref_sims[:, :n] += reach[cells]
        kb = min(n, self.config.topk + 1)
        group = LabelGroup(
            anchor_index=index,
            anchor_features=flat,
            anchor_cells=cells,
            ids=ids,
            labels=label_buf,
            ref_sims=ref_sims,
            ref_top_v=np.full((ids.shape[0], blocks, kb), -np.inf, dtype=np.float32),
            ref_top_c=np.zeros((ids.shape[0], blocks, kb), dtype=np.int64),
            ref_unsure=np.zeros((ids.shape[0], blocks), dtype=bool),
        )
        group.store_ref_top(0, self.config.topk)
        self._groups.append(group)
        for i, p, c in zip(ids.tolist(), xy, peaks.tolist(), strict=True):
            self._points[i] = _Point(xy=p.copy(), confidence=float(c))
        self._pending.clear()
