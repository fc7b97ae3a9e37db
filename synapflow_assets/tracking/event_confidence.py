"""The confidence and reason of each event of the tracks, from what the image showed where it was looked at.

A formation or elimination gets a confidence from the detector's answer at the
spine's aligned place (a sigmoid around ``response_midpoint``), weighed for
formations by the detection's own score; a redetected spine, or one present
between two detections, the confidence that it is there. Every such row gets a
one-line reason with the numbers behind it. A new spine whose previous place
lies outside the previous field of view is present, not formed; a weak
one-layer detection seen in one session only, with no support before nor
after, is ``unconfirmed``.
"""

from __future__ import annotations

import polars as pl

from .evidence import EvidenceParams

VIRTUAL_ID = 1 << 40
"""Redetected spines get ids from here on (never a detector's spine id)."""

PLACE_COLUMNS = ["xmin", "ymin", "xmax", "ymax", "first_layer", "last_layer"]

OTHER_COLUMNS = ["other_session_index", "other_xmin", "other_ymin", "other_xmax", "other_ymax", "other_layer"]
"""For an event or a redetected spine: the session and place it is compared with (where it was detected, or
for a formation the place looked at in the session before)."""


def _sigmoid(x: pl.Expr, centre: float, scale: float) -> pl.Expr:
    return 1 / (1 + ((centre - x) / scale).exp())


def _text(expr: pl.Expr) -> pl.Expr:
    """A number in a reason: two decimals, ``n/a`` when missing."""
    return expr.round(2).cast(pl.String).fill_null("n/a")


def annotate_events(
    tracks: pl.DataFrame,
    *,
    places: pl.DataFrame,
    origin: pl.DataFrame,
    evidence: pl.DataFrame,
    params: EvidenceParams,
    report: list[dict],
) -> pl.DataFrame:
    """Evidence, confidence and reason of every event and redetection; spines that entered the field of view
    are present, weak one-session tracks unconfirmed.

    Parameters
    ----------
    tracks : polars.DataFrame
        ``build_tracks``'s rows over the sessions with their redetected spines (ids from :data:`VIRTUAL_ID`).
    places : polars.DataFrame
        Every spine of every session: ``session_index``, ``spine_id``, :data:`PLACE_COLUMNS`, ``mean_score``,
        ``n_layers``.
    origin : polars.DataFrame
        ``session_index``, ``spine_id``, ``origin_index``, ``origin_id``: for a redetected spine, the
        detected spine whose aligned place it was found at.
    evidence : polars.DataFrame
        What the image showed at each place looked at (``redetection.EVIDENCE_SCHEMA``).
    params : EvidenceParams
    report : list of dict
        One alignment report per consecutive pair of sessions (for the residual in the reason).

    Returns
    -------
    polars.DataFrame
        See :func:`.redetection.track_with_evidence`.
    """
    out = _judged(_with_evidence(tracks, places, origin, evidence), params, report)
    out = _entered_view(out)
    return (
        _unconfirmed(out, params)
        .select(
            *tracks.columns,
            "redetected",
            *PLACE_COLUMNS,
            "evidence_score",
            "contrast_ratio",
            "confidence",
            "reason",
            *OTHER_COLUMNS,
        )
        .sort("session_index", "track_id")
    )


def _with_evidence(
    tracks: pl.DataFrame, places: pl.DataFrame, origin: pl.DataFrame, evidence: pl.DataFrame
) -> pl.DataFrame:
    """Each track row with where the image was looked at: the source spine (the one it continues, or for a
    new spine itself) and the detector's answer and contrast at the aligned place in the target session."""
    new = pl.col("status") == "new"
    ordered = tracks.sort("track_id", "session_index").with_columns(
        source_index=pl.when(new)
        .then(pl.col("session_index"))
        .otherwise(
            pl.when(pl.col("spine_id").is_not_null() & (pl.col("spine_id") < VIRTUAL_ID))
            .then(pl.col("session_index"))
            .forward_fill()
            .shift(1)
            .over("track_id")
        ),
        source_id=pl.when(new)
        .then(pl.col("spine_id"))
        .otherwise(
            pl.when(pl.col("spine_id") < VIRTUAL_ID).then(pl.col("spine_id")).forward_fill().shift(1).over("track_id")
        ),
        target_index=pl.when(new).then(pl.col("session_index") - 1).otherwise(pl.col("session_index")),
    )
    ordered = ordered.join(origin, on=["session_index", "spine_id"], how="left").with_columns(
        source_index=pl.coalesce("origin_index", "source_index"),
        source_id=pl.coalesce("origin_id", "source_id"),
        target_index=pl.when(pl.col("origin_id").is_not_null())
        .then(pl.col("session_index"))
        .otherwise(pl.col("target_index")),
    )
    looked = evidence.rename({"session_index": "target_index"}).select(
        "target_index",
        "source_index",
        "source_id",
        "response",
        "contrast_ratio",
        *[pl.col(c).alias(f"{c}_seen") for c in (*PLACE_COLUMNS, "in_view")],
    )
    source = places.select(
        "session_index", "spine_id", *[pl.col(c).alias(f"{c}_source") for c in PLACE_COLUMNS], source_score="mean_score"
    )
    out = (
        ordered.join(places, on=["session_index", "spine_id"], how="left")
        .join(looked, on=["target_index", "source_index", "source_id"], how="left")
        .join(source, left_on=["source_index", "source_id"], right_on=["session_index", "spine_id"], how="left")
    )
    return out


def _judged(out: pl.DataFrame, p: EvidenceParams, report: list[dict]) -> pl.DataFrame:
    """Evidence score, confidence, the other session's box and the reason of events and redetections."""
    residual = {i + 1: r.get("consistency_px") for i, r in enumerate(report)}
    new = pl.col("status") == "new"
    redetected = (pl.col("spine_id") >= VIRTUAL_ID).fill_null(False)
    bridged = (pl.col("status") == "present") & pl.col("spine_id").is_null()
    event = pl.col("status").is_in(["new", "eliminated"]) & pl.col("response").is_not_null() & ~redetected
    new = new & ~redetected
    redetected_or_bridged = redetected | bridged
    p_present = _sigmoid(pl.col("response").fill_null(0.0), p.response_midpoint, p.response_scale)
    strength = _sigmoid(pl.col("mean_score").fill_null(0.0), p.weak_score - 0.1, 0.05)
    other = {c: pl.when(new).then(pl.col(f"{c}_seen")).otherwise(pl.col(f"{c}_source")) for c in PLACE_COLUMNS}
    out = out.with_columns(
        redetected=redetected,
        evidence_score=pl.when(event | redetected_or_bridged).then(pl.col("response").fill_null(0.0)),
        contrast_ratio=pl.when(event | redetected_or_bridged).then(pl.col("contrast_ratio").fill_nan(None)),
        confidence=pl.when(redetected_or_bridged)
        .then(p_present)
        .when(~event)
        .then(None)
        .when(pl.col("status") == "eliminated")
        .then(1 - p_present)
        .otherwise((1 - pl.max_horizontal(p_present, pl.lit(p.formation_doubt))) * strength),
        other_session_index=pl.when(event | redetected_or_bridged).then(
            pl.when(new).then(pl.col("target_index")).otherwise(pl.col("source_index"))
        ),
        **{
            f"other_{c}": pl.when(event | redetected_or_bridged).then(other[c])
            for c in ("xmin", "ymin", "xmax", "ymax")
        },
        other_layer=pl.when(event | redetected_or_bridged).then((other["first_layer"] + other["last_layer"]) // 2),
        **{c: pl.coalesce(c, f"{c}_seen") for c in PLACE_COLUMNS},
    )
    alignment = pl.col("session_index").replace_strict(residual, default=None, return_dtype=pl.Float64)
    out = out.with_columns(
        reason=pl.when(pl.col("confidence").is_not_null()).then(
            pl.format(
                "{}: detector {} at the aligned place {} (counts as seen from {}), contrast {} of where it was "
                "detected, "
                "detection score {}, alignment residual {} px",
                pl.when(redetected)
                .then(pl.lit("redetected"))
                .when(bridged)
                .then(pl.lit("present between two detections"))
                .otherwise(pl.col("status")),
                _text(pl.col("evidence_score")),
                pl.when(new).then(pl.lit("in the previous session")).otherwise(pl.lit("in this session")),
                pl.lit(f"{p.response_present:g}"),
                _text(pl.col("contrast_ratio")),
                _text(pl.col("source_score")),
                _text(alignment),
            )
        )
    )
    return out


def _entered_view(out: pl.DataFrame) -> pl.DataFrame:
    """A new spine whose place in the previous session lies outside its field of view is present, not formed."""
    new = (pl.col("status") == "new") & ~pl.col("redetected")
    entered = new & pl.col("in_view_seen").not_().fill_null(False)
    out = out.with_columns(
        status=pl.when(entered).then(pl.lit("present")).otherwise(pl.col("status")),
        confidence=pl.when(entered).then(None).otherwise(pl.col("confidence")),
        reason=pl.when(entered)
        .then(
            pl.lit(
                "present: entered the field of view (its place in the previous session "
                "lies outside it), not a formation"
            )
        )
        .otherwise(pl.col("reason")),
    )
    return out


def _unconfirmed(out: pl.DataFrame, p: EvidenceParams) -> pl.DataFrame:
    """Tracks seen in one session only, weakly, without support: ``unconfirmed`` (and their gaps dropped); the
    ids of redetections are cleared."""
    weak = _weak_single_sessions(out, p)
    unconfirmed = pl.col("track_id").is_in(weak.implode()) & pl.col("spine_id").is_not_null()
    out = out.with_columns(
        status=pl.when(unconfirmed).then(pl.lit("unconfirmed")).otherwise(pl.col("status")),
        confidence=pl.when(unconfirmed).then(None).otherwise(pl.col("confidence")),
        reason=pl.when(unconfirmed)
        .then(
            pl.format(
                "unconfirmed: seen in this session only, on {} layer, detection score {} (below {}), no "
                "detector answer "
                "around it in the sessions before and after",
                pl.col("n_layers"),
                _text(pl.col("mean_score")),
                pl.lit(f"{p.weak_score:g}"),
            )
        )
        .otherwise(pl.col("reason")),
    )
    out = out.filter(~(pl.col("track_id").is_in(weak.implode()) & pl.col("spine_id").is_null()))
    return out.with_columns(spine_id=pl.when(pl.col("redetected")).then(None).otherwise(pl.col("spine_id")))


def _weak_single_sessions(tracks: pl.DataFrame, params: EvidenceParams) -> pl.Series:
    """Tracks seen (by the detector) in one session only, on one layer, with a weak score and no evidence
    in the session before (formations) nor after (eliminations) it."""
    per = tracks.group_by("track_id").agg(
        seen=pl.col("spine_id").is_not_null().sum(),
        redetected=pl.col("redetected").any(),
        layers=pl.col("n_layers").filter(pl.col("spine_id").is_not_null()).first(),
        score=pl.col("mean_score").filter(pl.col("spine_id").is_not_null()).first(),
        before=pl.col("evidence_score").filter(pl.col("status") == "new").max(),
        after=pl.col("evidence_score").filter(pl.col("status") == "eliminated").max(),
    )
    return per.filter(
        (pl.col("seen") == 1)
        & ~pl.col("redetected")
        & (pl.col("layers") <= 1)
        & (pl.col("score") < params.weak_score)
        & (pl.col("before").fill_null(0.0) < params.response_support)
        & (pl.col("after").fill_null(0.0) < params.response_support)
    )["track_id"]
