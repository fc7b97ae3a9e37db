"""Whether two sessions show the same field: spines re-found under the alignment against shifted decoys.

The aligner optimises how well the images match, so an image score says how
alike two textures are: two unrelated fields of dendrites running along one
axis match well when their dendrites are laid on each other. The spines were
not used to find the alignment, so they test it: under the right transform
most spines of one session land on a spine of the other; under the same
transform shifted by a few spine sizes (decoys, in every direction, including
along the dendrites) only chance meetings remain. Two unrelated fields
aligned by their dendrites re-find spines no more often than the decoys do.

A few spines re-found more often than the decoys can still be chance: on the
MIP stand-in over days, two unrelated fields re-found 5 of 8 spines where the
decoys reach 33%. So the spines say yes only when so many re-found spines are
unlikely at the decoys' rate (binomial tail at most :data:`MAX_CHANCE`); when
they are more than the decoys but not that unlikely, they cannot decide and the
image test does. On 180 pairs of the stand-in (seeds 14 and 15, hours and days
apart), same-field pairs had tails of at most 0.010, unrelated ones at least 0.085.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import polars as pl
from scipy.spatial import cKDTree
from scipy.stats import binom

#: Fewer spines than this in either session (in the overlap): the spines cannot decide, the image test does.
MIN_SPINES = 8
#: Share of the spines that must be re-found, and by how much more than the decoys' 95th percentile.
MIN_MATCHED = 0.3
MIN_EXCESS = 0.2
#: Largest chance of re-finding as many spines at the decoys' rate for the spines to say "same field".
MAX_CHANCE = 0.01
#: Decoy shifts: 16 directions at these multiples of the match radius.
DECOY_RADII = (3.0, 4.5, 6.0, 8.0, 11.0)
DECOY_DIRECTIONS = 16


@dataclass(frozen=True)
class Correspondence:
    """Spines of the earlier session re-found in the later one, under the alignment and under decoys.

    Attributes
    ----------
    matched : float
        Share of the earlier spines mapped into the later session's view that land within ``radius_px``
        of one of its spines.
    decoy : float
        95th percentile of the same share under the decoy shifts.
    n_spines : int
        Earlier spines mapped into view (the smaller of that and the later session's spines decides
        whether the test can decide).
    radius_px : float
    """

    matched: float
    decoy: float
    n_spines: int
    radius_px: float

    @property
    def decisive(self) -> bool:
        return self.n_spines >= MIN_SPINES

    @property
    def ok(self) -> bool:
        """More spines re-found than the decoys re-find, by :data:`MIN_EXCESS` (and at least :data:`MIN_MATCHED`)."""
        return bool(self.matched >= MIN_MATCHED and self.matched >= self.decoy + MIN_EXCESS)

    @property
    def chance(self) -> float:
        """Probability of re-finding at least as many of the ``n_spines`` at the decoys' rate (binomial tail)."""
        found = round(self.matched * self.n_spines)
        return float(binom.sf(found - 1, self.n_spines, min(max(self.decoy, 0.01), 1.0)))

    @property
    def verdict(self) -> bool | None:
        """True: the same field; False: not; None: the spines cannot decide (too few, or more re-found than by
        the decoys but not unlikely enough to rule chance out)."""
        if not self.decisive:
            return None
        if not self.ok:
            return False
        return True if self.chance <= MAX_CHANCE else None

    def describe(self) -> str:
        return (
            f"{self.matched:.0%} of {self.n_spines} spines re-found under the alignment, "
            f"{self.decoy:.0%} under shifted decoys (95th percentile; chance {self.chance:.2g})"
        )


def _centres(spines: pl.DataFrame) -> np.ndarray:
    return spines.select((pl.col("ymin") + pl.col("ymax")) / 2, (pl.col("xmin") + pl.col("xmax")) / 2).to_numpy()


def spine_correspondence(
    earlier: pl.DataFrame,
    later: pl.DataFrame,
    map_points: Callable[[np.ndarray], np.ndarray],
    shape_yx: tuple[int, int],
) -> Correspondence:
    """Spines of ``earlier`` mapped by ``map_points`` into ``later`` (both with ``xmin, ymin, xmax, ymax``),
    against the same under decoy shifts.

    The match radius is half the median box side of the later session (at least 2 px).
    """
    if not len(earlier) or not len(later):
        return Correspondence(0.0, 0.0, 0, 0.0)
    sides = later.select(((pl.col("xmax") - pl.col("xmin")) + (pl.col("ymax") - pl.col("ymin"))) / 2).to_numpy()
    radius = max(0.5 * float(np.median(sides)), 2.0)
    target = _centres(later)
    mapped = map_points(_centres(earlier))
    angles = np.linspace(0, 2 * np.pi, DECOY_DIRECTIONS, endpoint=False)
    steps = np.array(DECOY_RADII)[:, None] * radius
    offsets = np.concatenate(
        [np.zeros((1, 2)), np.stack([steps * np.sin(angles), steps * np.cos(angles)], axis=-1).reshape(-1, 2)]
    )
    points = mapped[None, :, :] + offsets[:, None, :]  # (decoys + 1, spines, 2)
    ny, nx = shape_yx
    inside = (points[..., 0] >= 0) & (points[..., 0] <= ny - 1) & (points[..., 1] >= 0) & (points[..., 1] <= nx - 1)
    distance, _ = cKDTree(target).query(points.reshape(-1, 2), distance_upper_bound=radius)
    hit = np.isfinite(distance).reshape(points.shape[:2]) & inside
    counted = np.maximum(inside.sum(axis=1), 1)
    share = hit.sum(axis=1) / counted
    usable = inside[1:].sum(axis=1) >= max(1, inside[0].sum() // 2)
    decoy = float(np.percentile(share[1:][usable], 95)) if usable.any() else 0.0
    n_spines = int(min(inside[0].sum(), len(later)))
    return Correspondence(float(share[0]), decoy, n_spines, radius)
