"""The ``hybrid`` tracker: Lucas-Kanade for precision, appearance for visibility.

Per frame:

1. **Local motion.** Every visible point takes a pyramidal Lucas-Kanade step from its
   last estimate, checked forward-backward (:class:`~rvm_ros.tracking.lucas_kanade.LucasKanade`).
   Hidden points take none: measured on the development benchmark it changed nothing,
   and steps that do not converge (under an occluder) cost the most.
2. **Motion prior, per point.** The steps of the points that were visible and passed the
   check give the frame's background motion (RANSAC homography,
   :mod:`~rvm_ros.tracking.motion`). A point's own step is kept even where it disagrees
   with it (no global gate: things move on their own); where it disagrees, the patch at
   the background's prediction is scored too and the better match wins (a road point
   dragged along by a passing car goes back to the road, a point on the car keeps its
   step). A hidden, out-of-view or failed point is predicted through the homography if
   it has moved with the background, else through its own last step (constant
   velocity), so a point on a car is not dragged to the road's motion.
3. **Appearance.** At the candidate position (the Lucas-Kanade result where it passed the
   check, else the prediction) the point's confidence is
   ``(1 - feature_weight) * a + feature_weight * f``: ``a`` the best normalised
   cross-correlation of the image patch with the point's query template or its latest
   confirmed template (``template_radius``), ``f`` the cosine similarity of the RVM
   feature read at the position (the point's cell, through the tracker's cell map) with
   the query's feature (both grids frame-centred: their mean over the frame removed),
   rescaled so that the query's median similarity to its own frame maps to 0 and a
   perfect match to 1. The share ``f`` catches a point that slid onto an occluder while
   its small template still matched.
4. **Re-detection.** Where that confidence is below ``visibility_threshold`` (an occluder
   took the point, Lucas-Kanade drifted or failed, the point comes back into view), the
   templates are searched for within ``search_radius`` pixels of the prediction and the
   better candidate kept; at most 16 points per frame (they take turns), so the cost stays
   bounded however many points are hidden. A point re-found by the search must reach
   ``visibility_threshold + 0.15`` to count as visible (measured on the development
   benchmark: most weaker re-detections were wrong, and a visible wrong point costs
   twice in the average Jaccard).
5. A point is visible when its confidence reaches its threshold and it lies in
   the image. A visible point moves to its candidate and refreshes its latest template; a
   hidden one follows the prediction (its reported position is the tracker's estimate).

After :meth:`reset` (a gap, a resolution change, a recurrent-state reset) the points and
their templates are kept. A next frame of the same size is still tracked from the last
one (Lucas-Kanade's pyramid reaches tens of pixels; the step gate is off for that frame)
and every point is searched for around its candidate (that frame's Lucas-Kanade step
uses one pyramid level more, to reach the larger jump); a frame of another size starts
from the last estimates. With ``feature_relocalise``, when no motion can be estimated
from the tracked points (after a reset to another size, or too few tracked), the points
are found again through their features over the whole grid (a similarity transform
fitted to each point's best cell by RANSAC, :mod:`~rvm_ros.tracking.relocalise`) before the
template search.
Cost per frame: two Lucas-Kanade passes over the visible points, one RANSAC fit, one to
three patch reads per point and at most 16 template searches (64 on a frame after a reset
or a relocalisation): bounded by the number of points, nothing accumulates over time
(measured with ``examples/bench_tracker_cost.py``).
"""

from __future__ import annotations

import numpy as np

from rvm_ros.tracking.appearance import (
    match_templates,
    raw_patches,
    sample_features,
    similarity,
)
from rvm_ros.tracking.config import TrackerConfig
from rvm_ros.tracking.image_tracker import ImagePointTracker, inside
from rvm_ros.tracking.lucas_kanade import LucasKanade
from rvm_ros.tracking.motion import apply_motion, fit_motion
from rvm_ros.tracking.relocalise import RELOCALISE_CELLS, relocalise

__all__ = ["HybridTracker"]

_MOTION_THRESHOLD = 1.5  # RANSAC inlier distance in pixels
_GATE = 2.0  # pixels: a step further than this from a solid motion prior is "off" it
_REFRESH = 0.3  # query-template match needed to refresh a point's latest template
_MAX_SEARCH = 16  # template searches per frame at most (points take turns)
_MAX_SEARCH_RELOCALISED = 64  # on a frame the points were relocalised on (all are searched)
# Extra pyramid levels for the Lucas-Kanade step into the first frame after a reset (a gap
# in the stream: the jump is larger than one frame's motion). Development seeds 1 / 2, gap
# split, hybrid AJ with 0 -> 1 extra level: 640x480 0.713 -> 0.817 / 0.714 -> 0.689,
# 256x256 0.780 -> 0.806 / 0.748 -> 0.769 (docs/BENCHMARKS.md); other frames keep lk_levels.
_GAP_LEVELS = 1
_LK_HIDDEN = False  # Lucas-Kanade for hidden points too (measured: no gain, and they cost most)
# Steps off the background's motion (measured per split in docs/BENCHMARKS.md): "score"
# (default) keeps the better-matching of the step and the background's prediction,
# "global" rejects them (the design before issue 21: points on things that move on their
# own were lost), "none" keeps them.
_GATE_MODE = "score"
_PRIOR_MODE = "own"  # "own": see _prior; "global": every hidden point follows the homography
_SCORE_MARGIN = 0.0  # "score" gate: how much better the background's position must match
_REDETECT = 0.15  # extra confidence a point re-found by the template search needs
# how a point's candidate was chosen (HybridTracker._src)
_OWN, _BACKGROUND, _PRIOR, _FOUND = 0, 1, 2, 3
_BG_RATE = 0.5  # weight of the latest step in a point's "moves with the background" score


def _centred(features: np.ndarray | None) -> np.ndarray | None:
    """The feature grid minus its mean over the frame ``[h, w, C]`` float32: what all cells
    share (measured on the development benchmark: the frame-centred similarity separates
    correct from drifted tracks with ROC AUC 0.77, the raw cosine with 0.62)."""
    if features is None:
        return None
    f = np.asarray(features, dtype=np.float32)
    return np.asarray(f - f.mean(axis=(0, 1), dtype=np.float32), dtype=np.float32)


def _normed(t: np.ndarray) -> np.ndarray:
    """Zero-mean patches scaled to unit norm (flat ones stay zero)."""
    n = np.sqrt((t * t).sum(axis=(1, 2), keepdims=True))
    return np.asarray(np.where(n > 1.0, t / np.maximum(n, 1e-6), 0.0), dtype=np.float32)


class HybridTracker(ImagePointTracker):
    """Lucas-Kanade + appearance tracker (see the module docstring)."""

    def __init__(self, config: TrackerConfig | None = None, use_features: bool = True) -> None:
        """Create a tracker.

        Args:
            config: settings (``method`` is not checked); the defaults when ``None``.
            use_features: read the RVM features (``update`` then requires them); False
                scores appearance on the image templates only.
        """
        super().__init__(config if config is not None else TrackerConfig(method="hybrid"))
        self.needs_features = bool(use_features) and (
            self.config.feature_weight > 0 or self.config.feature_relocalise
        )
        self._lk = LucasKanade(self.config.lk_window, self.config.lk_levels)
        self._prev: np.ndarray | None = None  # pyramid of the last frame
        r = self.config.template_radius
        side = 2 * r + 1
        self._tmpl = np.zeros((0, side, side), np.float32)  # query templates
        self._recent = np.zeros((0, side, side), np.float32)  # latest confirmed templates
        self._qfeat = np.zeros((0, 0), np.float32)  # [P, C] query features (normalised)
        self._rfeat = np.zeros((0, 0), np.float32)  # [P, C] latest confirmed features
        self._fbase = np.zeros(0, np.float32)  # [P] median similarity on the query frame
        self._vel = np.zeros((0, 2), np.float32)  # [P, 2] last step of each point (pixels)
        self._bg = np.zeros(0, np.float32)  # [P] how much the point moves with the background
        self._bg_prior = np.zeros((0, 2), np.float32)  # [P, 2] this frame's background prior
        self._off = np.zeros(0, bool)  # [P] this frame's own step is off the background's
        self._src = np.zeros(0, np.int64)  # [P] how this frame's candidates were chosen
        self._last_query_match = np.zeros(0, np.float32)
        self._last_patches = self._tmpl
        self._turn = 0  # rotates which weak points are searched when there are many
        self._gap = False  # reset() since the last frame: look for every point

    # ------------------------------------------------------------------ bookkeeping

    def reset(self) -> None:
        """The next frame may be far from the last one (a gap, a state reset) or of another
        size; keep the points and their appearance.

        A next frame of the same size is still tracked from the last one (Lucas-Kanade's
        pyramid reaches tens of pixels), and every point is looked for around its
        candidate; one of another size starts from the points' last estimates.
        """
        self._gap = True
        self._size = None
        self._image_size = None

    def _forget(self) -> None:
        self._prev = None

    def _keep(self, keep: np.ndarray) -> None:
        super()._keep(keep)
        self._tmpl = self._tmpl[keep]
        self._recent = self._recent[keep]
        if self._qfeat.shape[0]:
            self._qfeat = self._qfeat[keep]
            self._rfeat = self._rfeat[keep]
        self._fbase = self._fbase[keep]
        self._vel = self._vel[keep]
        self._bg = self._bg[keep]

    def _anchor(
        self,
        grey: np.ndarray,
        features: np.ndarray | None,
        ids: np.ndarray,
        xy: np.ndarray,
        alive: np.ndarray,
    ) -> None:
        g32 = grey.astype(np.float32)
        tmpl = raw_patches(g32, xy, self.config.template_radius)
        features = _centred(features)
        if features is not None:
            assert self._size is not None
            q = sample_features(features, xy, self._cell_k, self._cell_c)  # [P, C]
            grid = features.reshape(-1, features.shape[-1]).astype(np.float32)
            grid /= np.maximum(np.linalg.norm(grid, axis=1, keepdims=True), 1e-6)
            base = np.median(grid @ q.T, axis=0).astype(np.float32)  # [P]
            if self._qfeat.shape[1] != q.shape[1]:
                self._qfeat = np.zeros((self._ids.shape[0], q.shape[1]), np.float32)
                self._rfeat = self._qfeat.copy()
            self._qfeat = np.concatenate([self._qfeat, q])
            self._rfeat = np.concatenate([self._rfeat, q])
            self._fbase = np.concatenate([self._fbase, base])
        else:
            self._fbase = np.concatenate([self._fbase, np.zeros(ids.shape[0], np.float32)])
        self._tmpl = np.concatenate([self._tmpl, tmpl])
        self._recent = np.concatenate([self._recent, tmpl])
        self._vel = np.concatenate([self._vel, np.zeros((ids.shape[0], 2), np.float32)])
        self._bg = np.concatenate([self._bg, np.ones(ids.shape[0], np.float32)])
        self._append(ids, xy, alive)

    # ------------------------------------------------------------------ tracking

    def _score(
        self, g32: np.ndarray, features: np.ndarray | None, xy: np.ndarray, rows: np.ndarray
    ) -> np.ndarray:
        """Confidence ``[len(rows)]`` of points ``rows`` at positions ``xy`` (the patches read
        there are left in ``self._last_patches``)."""
        patch = raw_patches(g32, xy, self.config.template_radius)
        self._last_patches = patch
        a_query = similarity(self._tmpl[rows], patch)
        a = np.maximum(a_query, similarity(self._recent[rows], patch))
        self._last_query_match = a_query
        wf = self.config.feature_weight
        if features is None or wf == 0 or not self._qfeat.shape[0]:
            return np.asarray(a, dtype=np.float32)
        assert self._size is not None
        cos = (sample_features(features, xy, self._cell_k, self._cell_c) * self._qfeat[rows]).sum(
            axis=1
        )
        base = self._fbase[rows]
        f = np.clip((cos - base) / np.maximum(1.0 - base, 1e-6), 0.0, 1.0)
        return np.asarray((1.0 - wf) * a + wf * f, dtype=np.float32)

    def _relocalise(self, features: np.ndarray, prev_xy: np.ndarray) -> np.ndarray | None:
        """Where the points are now ``[P, 2]``, from their RVM features alone, or None
        (:func:`~rvm_ros.tracking.relocalise.relocalise`, matched from the visible points)."""
        assert self._size is not None
        return relocalise(
            features,
            prev_xy,
            np.flatnonzero(self._visible),
            (self._qfeat, self._rfeat),
            (self._cell_k, self._cell_c),
        )

    def _prior(
        self,
        prev_xy: np.ndarray,
        new: np.ndarray,
        good: np.ndarray,
        motion: np.ndarray,
        solid: bool,
    ) -> np.ndarray:
        """Where each point is expected ``[P, 2]`` when its own step fails or it is hidden.

        The frame's homography (the background's motion) for a point that has moved with
        it, the point's own last step (constant velocity) for one that has moved on its
        own: a car's point is not dragged to the road's motion. ``good`` may be narrowed
        in place (``_GATE_MODE == "global"``).
        """
        prior = apply_motion(motion, prev_xy)
        self._bg_prior = prior
        self._off = np.zeros(prev_xy.shape[0], bool)
        if not solid:
            return prior
        agrees = np.linalg.norm(new - prior, axis=1) < _GATE
        if _GATE_MODE == "global":
            good &= agrees
        self._off = good & ~agrees  # own step off the background's motion
        if _PRIOR_MODE == "global":
            return prior
        own = prev_xy + self._vel
        return np.where((self._bg > 0.5)[:, None], prior, own).astype(np.float32)

    def _confirmed(self, score: np.ndarray) -> np.ndarray:
        """bool ``[P]``: False for a point re-found by the template search below the
        stricter re-detection threshold."""
        found = self._src == _FOUND
        ok = np.ones(found.shape[0], bool)
        ok[found] = score[found] >= self.config.visibility_threshold + _REDETECT
        return ok

    def _take(
        self,
        rows: np.ndarray,
        better: np.ndarray,
        xy: np.ndarray,
        score: np.ndarray,
        into: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    ) -> None:
        """Move points ``rows[better]`` to their alternative candidates ``xy[better]``
        (scored ``score`` by the last :meth:`_score` call) in the frame's
        ``(candidates, scores, query matches, patches)``."""
        cand, scores, query_match, patches = into
        chosen = rows[better]
        cand[chosen] = xy[better]
        scores[chosen] = score[better]
        query_match[chosen] = self._last_query_match[better]
        patches[chosen] = self._last_patches[better]

    def _remember(self, prev_xy: np.ndarray, seen: np.ndarray) -> None:
        """Each point's last step, and (for points ``seen`` on their own step) how much
        it moves with the background."""
        self._vel = (self._xy - prev_xy).astype(np.float32)
        moved_off = self._off[seen]
        self._bg[seen] = (1.0 - _BG_RATE) * self._bg[seen] + _BG_RATE * (~moved_off)

    def _steps(
        self, prev: np.ndarray, pyr: np.ndarray, prev_xy: np.ndarray, gap: bool
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool]:
        """Lucas-Kanade steps from the last frame ``prev`` into ``pyr``: ``(new [P, 2],
        good [P], prior [P, 2], solid)``; only points in view and visible step (the others
        follow the prior)."""
        assert self._size is not None
        n = prev_xy.shape[0]
        live = np.flatnonzero(inside(prev_xy, self._size) & (self._visible | _LK_HIDDEN))
        new = prev_xy.copy()
        ok = np.zeros(n, bool)
        fb = np.full(n, np.inf, np.float32)
        levels = self.config.lk_levels + _GAP_LEVELS if gap else None
        new[live], ok[live], fb[live] = self._lk.track(prev, pyr, prev_xy[live], levels=levels)
        good = ok & (fb < self.config.fb_threshold)
        reliable = good & self._visible
        motion, solid = fit_motion(prev_xy[reliable], new[reliable], _MOTION_THRESHOLD)
        prior = self._prior(prev_xy, new, good, motion, solid and not gap)
        return new, good, prior, solid

    def _track(self, grey: np.ndarray, features: np.ndarray | None) -> None:
        pyr = self._lk.pyramid(grey)
        n = int(self._ids.shape[0])
        if n == 0:
            self._prev = pyr
            return
        g32 = grey.astype(np.float32)
        features = _centred(features)
        prev_xy = self._xy
        gap, self._gap = self._gap, False
        if self._prev is not None and np.shape(self._prev) != grey.shape:
            self._prev = None  # a reset to another frame size: nothing to track from
        new, good, prior, relocalised = self._predict(pyr, features, prev_xy, gap)
        cand = np.where(good[:, None], new, prior).astype(np.float32)
        self._src = np.where(good, _OWN, _PRIOR)  # how each candidate was chosen
        score = self._score(g32, features, cand, np.arange(n))
        frame = (cand, score, self._last_query_match, self._last_patches)
        if _GATE_MODE == "score" and self._prev is not None:
            self._prefer_background(g32, features, frame, good)
        # after a reset or a relocalisation: every point is looked for
        everyone = gap or self._prev is None
        weak = (score < self.config.visibility_threshold) | everyone | (relocalised & ~good)
        self._search(g32, features, prior, weak, relocalised or everyone, frame)
        self._settle(features, prev_xy, prior, good, gap, frame)
        self._prev = pyr

    def _predict(
        self, pyr: np.ndarray, features: np.ndarray | None, prev_xy: np.ndarray, gap: bool
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool]:
        """Each point's own step and the prior from the last frame, or from the features
        (``feature_relocalise``) when no motion is found: ``(new [P, 2], good [P],
        prior [P, 2], relocalised)``."""
        n = prev_xy.shape[0]
        if self._prev is not None:
            new, good, prior, solid = self._steps(self._prev, pyr, prev_xy, gap)
        else:  # after a reset: search around the last estimates
            new, good, prior, solid = prev_xy, np.zeros(n, bool), prev_xy.copy(), False
        cfg = self.config
        if solid or features is None or not cfg.feature_relocalise or not self._qfeat.shape[0]:
            return new, good, prior, False
        found_prior = self._relocalise(features, prev_xy)
        if found_prior is None:
            return new, good, prior, False
        if self._prev is not None:  # keep only the steps that agree with it
            cell = float(max(1.0 / self._cell_k[0], 1.0 / self._cell_k[1]))
            good &= np.linalg.norm(new - found_prior, axis=1) < RELOCALISE_CELLS * cell
        return new, good, found_prior, True

    def _prefer_background(
        self,
        g32: np.ndarray,
        features: np.ndarray | None,
        frame: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
        good: np.ndarray,
    ) -> None:
        """For a step off the background's motion, keep whichever of it and the
        background's prediction the point's appearance prefers (a road point dragged
        along by a passing car goes back to the road; a point on the car keeps its own
        step). Updates ``frame`` and ``good`` in place."""
        off = np.flatnonzero(self._off)
        if not off.size:
            return
        score = frame[1]
        at_bg = self._bg_prior[off]
        s_bg = self._score(g32, features, at_bg, off)
        back = s_bg > score[off] + _SCORE_MARGIN
        self._take(off, back, at_bg, s_bg, frame)
        good[off[back]] = False
        self._src[off[back]] = _BACKGROUND

    def _search(
        self,
        g32: np.ndarray,
        features: np.ndarray | None,
        prior: np.ndarray,
        weak: np.ndarray,
        search_all: bool,
        frame: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    ) -> None:
        """Search the templates of the ``weak`` points in view around their prior (at most
        ``_MAX_SEARCH`` per frame, taking turns; ``_MAX_SEARCH_RELOCALISED`` with
        ``search_all``) and keep what matches better. Updates ``frame`` in place."""
        assert self._size is not None
        radius = round(self.config.search_radius)
        rows = np.flatnonzero(weak & inside(prior, self._size))
        cap = _MAX_SEARCH_RELOCALISED if search_all else _MAX_SEARCH
        if rows.size > cap:  # bounded cost: take turns among the weak points
            start = self._turn % rows.size
            rows = np.sort(np.roll(rows, -start)[:cap])
            self._turn += cap
        if not (rows.size and radius > 0):
            return
        found_q, s_q = match_templates(g32, prior[rows], _normed(self._tmpl[rows]), radius)
        found_r, s_r = match_templates(g32, prior[rows], _normed(self._recent[rows]), radius)
        found = np.where((s_r > s_q)[:, None], found_r, found_q)
        s_found = self._score(g32, features, found, rows)
        better = s_found > frame[1][rows]
        self._take(rows, better, found, s_found, frame)
        self._src[rows[better]] = _FOUND

    def _settle(
        self,
        features: np.ndarray | None,
        prev_xy: np.ndarray,
        prior: np.ndarray,
        good: np.ndarray,
        gap: bool,
        frame: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    ) -> None:
        """Decide visibility, move the visible points to their candidates (the others to
        their prior) and refresh the latest templates of the well-matched ones."""
        assert self._size is not None
        cand, score, query_match, cand_patches = frame
        visible = (score >= self.config.visibility_threshold) & inside(cand, self._size)
        tracked = self._prev is not None and not gap
        if tracked:
            visible &= self._confirmed(score)
        self._xy = np.where(visible[:, None], cand, prior).astype(np.float32)
        if tracked:
            self._remember(prev_xy, visible & good)
        refresh = visible & (query_match >= _REFRESH)
        if refresh.any():
            self._recent[refresh] = cand_patches[refresh]  # visible: xy is the candidate
            if features is not None and self._rfeat.shape[0]:
                self._rfeat[refresh] = sample_features(
                    features, cand[refresh], self._cell_k, self._cell_c
                )
        self._visible = visible
        self._conf = np.where(inside(cand, self._size), score, 0.0).astype(np.float32)
