"""Temporal consensus: weak detections at one aligned place in consecutive sessions are a spine.

A dim spine often gets only a weak answer from the detector (below its score
threshold), session after session, and is missed in all of them: counts fall
short and, where it is found once, it turns into a formation and an
elimination. A weak answer alone is also what noise gets. Two weak answers at
the same aligned place in consecutive sessions are not: noise and haze change
between sessions, a spine stays. On the dynamics benchmark's raw-like animals
the detector misses 29% of the true spine-sessions at 0.35; two thirds of those
get a 0.2-0.35 box on their spine, and 96% (dense) / 84% (sparse) of the
0.2-0.35 boxes lie on a true spine.

Weak boxes (``min_score`` up to the detection threshold, from the session's
candidates) that do not lie on a detected spine are linked through depth into
weak spines; a weak spine whose aligned box in the next session overlaps a
weak spine there (IoU ``min_iou``, layers overlapping) makes both spines of
their sessions, with ids from :data:`CONSENSUS_ID`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import polars as pl
from scipy.optimize import linear_sum_assignment

from ..geometry import box_cover, box_iou
from .aligned_place import move_boxes
from .box_tables import link_table
from .duplicates import duplicate_keeper, merge_duplicate_boxes
from .incremental import AnimalTracker, SessionInput
from .spines import SPINE_COLUMNS, summarize_spines

#: Ids of spines found by consensus start here (below the redetected spines' ``VIRTUAL_ID``).
CONSENSUS_ID = 1 << 36
CONSENSUS_SCHEMA = pl.Schema(
    {
        "session_index": pl.Int64(),
        "spine_id": pl.Int64(),
        "score": pl.Float64(),
        "other_session_index": pl.Int64(),
        "other_score": pl.Float64(),
    }
)


@dataclass(frozen=True)
class ConsensusParams:
    """When weak detections of two sessions make a spine.

    Attributes
    ----------
    min_score : float or None
        Weakest candidate box that counts (None: consensus off). Below 0.2 the
        detector's answers on the benchmark lay off spines more often.
    min_iou : float
        IoU of a weak spine's aligned box with the weak spine of the next session
        (as ``EvidenceParams.min_candidate_iou``). Boxes of one spine in two
        aligned sessions overlap by more; two boxes of noise meet this only
        when their centres fall within about a sixth of a box side of each
        other, on neighbouring layers.
    on_spine_cover : float
        A weak box covering this share of a detected spine's box (or covered by
        it) on its layers (+-1) is that spine's, not another one.
    """

    min_score: float | None = 0.2
    min_iou: float = 0.5
    on_spine_cover: float = 0.3


def weak_spines(session: SessionInput, params: ConsensusParams = ConsensusParams()) -> pl.DataFrame:
    """The session's weak spines: candidate boxes from ``params.min_score`` that lie on no detected spine, linked
    through depth (``SPINE_COLUMNS``; ids local to the session)."""
    empty = session.spines.head(0).select(SPINE_COLUMNS)
    candidates = session.candidates
    if params.min_score is None or candidates is None or not len(candidates):
        return empty
    weak = candidates.filter(pl.col("score") >= params.min_score)
    spines = session.spines
    if len(weak) and len(spines):
        cover = box_cover(
            weak.select("xmin", "ymin", "xmax", "ymax").to_numpy(),
            spines.select("xmin", "ymin", "xmax", "ymax").to_numpy(),
        )
        layer = weak["layer"].to_numpy()[:, None]
        near = (layer >= spines["first_layer"].to_numpy()[None] - 1) & (
            layer <= spines["last_layer"].to_numpy()[None] + 1
        )
        weak = weak.filter(pl.Series(~((cover >= params.on_spine_cover) & near).any(axis=1)))
    if not len(weak):
        return empty
    voxel = session.voxel_size_um or (1.0, session.pixel_size_um or 1.0, session.pixel_size_um or 1.0)
    linked = link_table(weak.with_columns(stack=pl.lit(session.key)))
    linked = merge_duplicate_boxes(linked, duplicate_keeper(summarize_spines(linked, voxel)))
    return summarize_spines(linked, voxel).cast({c: empty.schema[c] for c in SPINE_COLUMNS}, strict=False)


def _agreeing(
    tracker: AnimalTracker, sessions: list[SessionInput], weak: list[pl.DataFrame], i: int, p: ConsensusParams
) -> pl.DataFrame:
    """Pairs of weak spines of sessions ``i`` and ``i + 1`` at one aligned place (one-to-one)."""
    a, b = weak[i], weak[i + 1]
    if not len(a) or not len(b):
        return pl.DataFrame(schema={"a": pl.Int64, "b": pl.Int64})
    moved = move_boxes(
        tracker, sessions, a.select("xmin", "ymin", "xmax", "ymax", "first_layer", "last_layer"), i, i + 1
    )
    iou = box_iou(
        moved.select("xmin", "ymin", "xmax", "ymax").to_numpy(), b.select("xmin", "ymin", "xmax", "ymax").to_numpy()
    )
    first, last = moved["first_layer"].to_numpy()[:, None], moved["last_layer"].to_numpy()[:, None]
    layers = (first <= b["last_layer"].to_numpy()[None] + 1) & (last >= b["first_layer"].to_numpy()[None] - 1)
    iou = np.where(layers & moved["in_view"].to_numpy()[:, None], iou, 0.0)
    rows, cols = linear_sum_assignment(-iou)
    keep = iou[rows, cols] >= p.min_iou
    return pl.DataFrame({"a": rows[keep], "b": cols[keep]}, schema={"a": pl.Int64, "b": pl.Int64})


def with_consensus(
    tracker: AnimalTracker, sessions: list[SessionInput], params: ConsensusParams = ConsensusParams()
) -> tuple[list[SessionInput], pl.DataFrame]:
    """The sessions with the weak spines that agree with one in a neighbouring session added to their spines.

    Returns
    -------
    sessions : list of SessionInput
        Each with its consensus spines appended (ids ``CONSENSUS_ID + (index << 24) + k``) and its version
        extended, so that pairs whose spines changed are re-linked.
    consensus : polars.DataFrame
        One row per consensus spine (:data:`CONSENSUS_SCHEMA`): its score and the strongest agreeing weak
        spine's session and score.
    """
    weak = [weak_spines(s, params) for s in sessions]
    pairs = []
    for i in range(len(sessions) - 1):
        agree = _agreeing(tracker, sessions, weak, i, params)
        if not len(agree):
            continue
        score_a, score_b = (
            weak[i]["mean_score"].to_numpy()[agree["a"]],
            weak[i + 1]["mean_score"].to_numpy()[agree["b"]],
        )
        pairs += [
            pl.DataFrame(
                {
                    "session_index": i,
                    "row": agree["a"],
                    "score": score_a,
                    "other_session_index": i + 1,
                    "other_score": score_b,
                }
            ),
            pl.DataFrame(
                {
                    "session_index": i + 1,
                    "row": agree["b"],
                    "score": score_b,
                    "other_session_index": i,
                    "other_score": score_a,
                }
            ),
        ]
    if not pairs:
        return sessions, pl.DataFrame(schema=CONSENSUS_SCHEMA)
    chosen = (
        pl.concat(pairs, how="vertical_relaxed")
        .sort("other_score", descending=True)
        .unique(["session_index", "row"], keep="first")
        .sort("session_index", "row")
        .with_columns(spine_id=CONSENSUS_ID + pl.col("session_index") * (1 << 24) + pl.col("row"))
    )
    out = list(sessions)
    for (i,), group in chosen.group_by("session_index"):
        extra = weak[i][group["row"].to_numpy()].with_columns(spine_id=group["spine_id"])
        s = sessions[i]
        spines = pl.concat([s.spines, extra], how="diagonal_relaxed").select(s.spines.columns)
        tag = ",".join(str(k) for k in group["row"].to_list())
        out[i] = replace(
            s, spines=spines, version=f"{s.version}+consensus:{tag}", volume_version=s.volume_version or s.version
        )
    return out, chosen.select(CONSENSUS_SCHEMA.keys()).cast(CONSENSUS_SCHEMA)


def explain_consensus(
    tracks: pl.DataFrame, consensus: pl.DataFrame, keys: list[str], *, midpoint: float, scale: float
) -> pl.DataFrame:
    """Reason and confidence of the present rows of consensus spines (rows that are events keep theirs): the
    probability that a place answered ``min(score, other_score)`` holds a spine, by the logistic of
    ``EvidenceParams.response_present`` and ``response_scale``."""
    if not len(consensus):
        return tracks
    names = pl.DataFrame(
        {"other_session_index": range(len(keys)), "other_session": keys},
        schema_overrides={"other_session_index": pl.Int64},
    )
    info = consensus.join(names, on="other_session_index", how="left").select(
        "session_index",
        "spine_id",
        _consensus_reason=pl.format(
            "present: a weak detection ({}) that agrees with one ({}) at the aligned place in {} (temporal consensus)",
            pl.col("score").round(2),
            pl.col("other_score").round(2),
            pl.col("other_session"),
        ),
        _consensus_confidence=1 / (1 + (-(pl.min_horizontal("score", "other_score") - midpoint) / scale).exp()),
    )
    plain = (pl.col("status") == "present") & pl.col("reason").is_null() & pl.col("_consensus_reason").is_not_null()
    return (
        tracks.join(info, on=["session_index", "spine_id"], how="left")
        .with_columns(
            reason=pl.when(plain).then("_consensus_reason").otherwise("reason"),
            confidence=pl.when(plain).then("_consensus_confidence").otherwise("confidence"),
        )
        .drop("_consensus_reason", "_consensus_confidence")
    )
