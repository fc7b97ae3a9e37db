"""Image evidence for a spine at a given place of a session: the detector's low-threshold response and a
protrusion test, both vectorised over the spines asked about.

A spine that the detector missed in one session is still in the image: the
detector usually still answers there below its threshold, and the place is
brighter than its surroundings by about as much as where the spine was
detected. A spine that is gone leaves neither.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from ..geometry import box_iou, iou
from .candidate_pairs import can_use_tree, overlapping_pairs

#: Up to this many (box, candidate) pairs the IoUs are a dense matrix; above, only overlapping pairs.
_DENSE_PAIRS = 1_000_000


@dataclass(frozen=True)
class EvidenceParams:
    """How much evidence keeps a spine, and how little rejects a detection.

    Attributes
    ----------
    min_candidate_iou : float
        A candidate box (the detector's boxes down to
        ``detection.candidate_threshold``) answers for a spine when it overlaps
        the spine's aligned box by at least this IoU (as a detection matches
        its object at AP50), on a layer of its z-range (+-1). At 0.3,
        neighbouring spines answered for 11% of true eliminations; at 0.5, 4%.
    response_present, response_scale : float
        The detector's best answer at the aligned place is turned into the
        probability that the spine is there by a logistic with midpoint
        ``response_present`` and scale ``response_scale`` (the confidence of an
        elimination is one minus it). The same ``response_present`` is the
        threshold from which a missed spine counts as present, so a status is
        always the more likely one by its own confidence: an elimination is
        never called at a confidence below 0.5, nor a redetection kept. Calibrated
        on the dynamics benchmark (raw-like dense and sparse, clean dense; 364
        eliminations): a place answered 0.05-0.10 held a spine in 11% of cases,
        0.10-0.15 in 20%, 0.15-0.20 in 75%, above 0.20 in 85-98%, so the
        midpoint is 0.16. A threshold of 0.2 above it eliminated spines that
        answered 0.15-0.2 at 0.18-0.36 confidence: on the MIP stand-in hours
        apart (seed 12, 3 x 8), survival / formation / elimination error
        0.040 / 0.034 / 0.019 against 0.028 / 0.017 / 0.011 at 0.16 (seed 13:
        0.034 / 0.018 / 0.011 against 0.028 / 0.011 / 0.009). What it costs:
        over days the survival error rose by 0.002-0.010 (seeds 11-13), and
        on raw-like dense z-stacks from 0.046 to 0.053 (sparse: 0.063 to
        0.058), where a neighbour answers more often at a lost spine's place.
    formation_doubt : float
        Share of formations with no detector answer one session earlier that
        were spines already there, too faint for the detector even at its low
        threshold (23% of 180 in the benchmark): a formation is never more
        certain than one minus this.
    response_support : float
        Weakest candidate that counts as support (for ``contrast_present`` and
        for a weak one-session spine).
    contrast_present : float or None
        Protrusion ratio (contrast at the aligned place / contrast where the
        spine was detected) from which a missed spine with support counts as
        present; None: the ratio is reported, not used to decide.
    weak_score : float
        A spine seen in one session only, on one layer, whose detector score is
        below this and that has no support in the sessions around it, is
        ``unconfirmed`` and left out of the rates.
    ring_px : float
        Width of the ring around a box that the box is compared with.
    redetect_within : int
        A missed spine is redetected only this many sessions from its last
        detection (a bound on chains of redetections: a neighbour that
        answers at the place of a spine that is gone would otherwise keep it
        forever). Evidence further away is reported, not used to decide. At 1,
        a dim spine missed in two sessions in a row was eliminated with the
        detector answering 0.22-0.35 at its place: on the MIP time-lapse
        stand-in (3 x 8 sessions hours apart) survival was off by 0.059; at 8,
        by 0.011 (elimination 0.022 -> 0.010), and the variant over days and
        the dynamics benchmark were not worse.
    """

    min_candidate_iou: float = 0.5
    response_present: float = 0.16
    response_scale: float = 0.025
    formation_doubt: float = 0.2
    response_support: float = 0.1
    contrast_present: float | None = None
    weak_score: float = 0.5
    ring_px: float = 4.0
    redetect_within: int = 8


def answers(params: EvidenceParams, response: pl.Expr, contrast_ratio: pl.Expr) -> pl.Expr:
    """Whether the image answers for a spine at a place: the detector's best answer there reaches
    ``response_present``, or (with ``contrast_present``) it reaches ``response_support`` with that protrusion."""
    out = response.fill_null(0.0) >= params.response_present
    if params.contrast_present is not None:
        out = out | (
            (response.fill_null(0.0) >= params.response_support)
            & (contrast_ratio.fill_nan(None).fill_null(0.0) >= params.contrast_present)
        )
    return out


def seen(params: EvidenceParams, response: pl.Expr, contrast_ratio: pl.Expr, in_view: pl.Expr, gap: pl.Expr) -> pl.Expr:
    """The rule that redetects a missed spine (the only one: redetection decides with it, and the reasons of the
    events cite it): the image answers (:func:`answers`) at its aligned place, the place is in the field of view,
    and it is at most ``redetect_within`` sessions (``gap``) from the detection it is compared with."""
    return answers(params, response, contrast_ratio) & in_view.fill_null(False) & (gap <= params.redetect_within)


def seen_rule(params: EvidenceParams) -> str:
    """The threshold of :func:`answers` as a reason cites it (``counts as seen from 0.16``)."""
    text = f"counts as seen from {params.response_present:g}"
    if params.contrast_present is not None:
        text += f", or from {params.response_support:g} with contrast {params.contrast_present:g}"
    return text


def unseen_because(
    params: EvidenceParams, response: pl.Expr, contrast_ratio: pl.Expr, in_view: pl.Expr, gap: pl.Expr
) -> pl.Expr:
    """Why an answer that reaches the threshold did not count as seen (null where it did, or where it does not
    reach the threshold): the other conditions of :func:`seen`."""
    within = params.redetect_within
    return (
        pl.when(~answers(params, response, contrast_ratio))
        .then(None)
        .when(~in_view.fill_null(False))
        .then(pl.lit("the aligned place is outside the field of view"))
        .when(gap > within)
        .then(
            pl.format(
                "{} sessions away from the detection it is compared with; a missed spine is redetected only "
                "within {} of a detection",
                gap,
                pl.lit("1 session" if within == 1 else f"{within} sessions"),
            )
        )
    )


def detector_response(
    candidates: pl.DataFrame, boxes: np.ndarray, first_layer: np.ndarray, last_layer: np.ndarray, min_iou: float
) -> np.ndarray:
    """Highest candidate score over each box's layers (+-1) among candidates overlapping it by ``min_iou``.

    Parameters
    ----------
    candidates : polars.DataFrame
        ``layer, xmin, ymin, xmax, ymax, score`` of one session.
    boxes : (n, 4) array of ``xmin, ymin, xmax, ymax``
    first_layer, last_layer : (n,) arrays

    Returns
    -------
    (n,) array, 0 where nothing answers.
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    if not len(boxes) or not len(candidates):
        return np.zeros(len(boxes))
    candidate_boxes = candidates.select("xmin", "ymin", "xmax", "ymax").to_numpy().astype(np.float64)
    score = candidates["score"].to_numpy()
    layer = candidates["layer"].to_numpy()
    first_layer, last_layer = np.asarray(first_layer), np.asarray(last_layer)
    if len(boxes) * len(candidate_boxes) > _DENSE_PAIRS and min_iou > 0 and can_use_tree(boxes, candidate_boxes):
        # only overlapping boxes reach a positive IoU; 0 where nothing answers, as the dense maximum
        i, j = overlapping_pairs(boxes, candidate_boxes)
        near = (layer[j] >= first_layer[i] - 1) & (layer[j] <= last_layer[i] + 1)
        answer = near & (iou(boxes[i], candidate_boxes[j]) >= min_iou)
        best = np.zeros(len(boxes))
        np.maximum.at(best, i[answer], np.maximum(score[j[answer]], 0.0))
        return best
    overlap = box_iou(boxes, candidate_boxes)
    near = (layer[None, :] >= first_layer[:, None] - 1) & (layer[None, :] <= last_layer[:, None] + 1)
    scores = np.where(near & (overlap >= min_iou), score[None, :], 0.0)
    return scores.max(axis=1)


@dataclass(frozen=True)
class SummedVolume:
    """A volume's summed-volume table (inclusive prefix sums over z, y, x) and its structure brightness."""

    table: np.ndarray
    level: float

    @property
    def shape(self) -> tuple[int, int, int]:
        nz, ny, nx = self.table.shape
        return nz - 1, ny - 1, nx - 1


def summed_volume(volume: np.ndarray) -> SummedVolume:
    """Prefix sums of ``volume`` (z, y, x) and its structure brightness: the 99.5th minus the 50th
    percentile (of every 4th pixel), the unit that makes contrasts comparable across sessions."""
    nz, ny, nx = volume.shape
    table = np.zeros((nz + 1, ny + 1, nx + 1))
    table[1:, 1:, 1:] = volume
    # in place, layer by layer (no whole-volume temporaries); the same sums in the same order as cumsum(0, 1, 2)
    for z in range(1, nz + 1):
        table[z] += table[z - 1]
    for z in range(1, nz + 1):
        np.cumsum(table[z], axis=0, out=table[z])
        np.cumsum(table[z], axis=1, out=table[z])
    high, low = np.percentile(np.asarray(volume[:, ::4, ::4], dtype=np.float64), [99.5, 50])
    return SummedVolume(table, float(max(high - low, 1e-6)))


def box_contrast(
    volume: SummedVolume, boxes: np.ndarray, first_layer: np.ndarray, last_layer: np.ndarray, ring_px: float
) -> np.ndarray:
    """Mean intensity inside each box minus the mean of a ``ring_px`` ring around it, over the box's layers,
    in units of the session's structure brightness (no loop over spines or pixels).

    Boxes are clipped to the volume; a box wholly outside gives NaN.
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    if not len(boxes):
        return np.zeros(0)
    nz, ny, nx = volume.shape
    table = volume.table
    z0 = np.clip(np.asarray(first_layer), 0, nz - 1).astype(int)
    z1 = np.clip(np.asarray(last_layer), 0, nz - 1).astype(int) + 1

    def box_sum(x0: np.ndarray, y0: np.ndarray, x1: np.ndarray, y1: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x0, x1 = np.clip(np.floor(x0), 0, nx).astype(int), np.clip(np.ceil(x1), 0, nx).astype(int)
        y0, y1 = np.clip(np.floor(y0), 0, ny).astype(int), np.clip(np.ceil(y1), 0, ny).astype(int)
        total = (
            table[z1, y1, x1]
            - table[z0, y1, x1]
            - table[z1, y0, x1]
            - table[z1, y1, x0]
            + table[z0, y0, x1]
            + table[z0, y1, x0]
            + table[z1, y0, x0]
            - table[z0, y0, x0]
        )
        return total, (x1 - x0) * (y1 - y0) * (z1 - z0)

    inner, inner_n = box_sum(*boxes.T)
    outer, outer_n = box_sum(boxes[:, 0] - ring_px, boxes[:, 1] - ring_px, boxes[:, 2] + ring_px, boxes[:, 3] + ring_px)
    with np.errstate(invalid="ignore", divide="ignore"):
        contrast = inner / inner_n - (outer - inner) / (outer_n - inner_n)
    contrast[(inner_n <= 0) | (outer_n - inner_n <= 0)] = np.nan
    return contrast / volume.level
