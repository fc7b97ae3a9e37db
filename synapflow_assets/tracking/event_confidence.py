"""The confidence and reason of each event of the tracks, from what the image showed where it was looked at.

A formation or elimination gets a confidence from the detector's answer at the
spine's aligned place (a sigmoid around ``response_present``, the threshold of the rule), weighed for
formations by the detection's own score; a redetected spine, or one present
between two detections, the confidence that it is there. Every such row gets a
one-line reason with the numbers behind it, judged by the rule that redetection
applies (:func:`.evidence.seen`): the reason cites its threshold where the answer
falls short of it, names the condition that failed where the answer reaches it
(too far from a detection, outside the field of view), and says why an event
stands whose evidence the rule counts as seen (the spine redetected there
continues another track, or redetection is off). So no event reads as seen. A
redetected spine that starts its track, found from a later detection, is a
formation: it is judged in the session before, like one. A new spine whose
previous place lies outside the previous field of view is present, not formed;
a weak one-layer detection seen in one session only, with no support before nor
after, is ``unconfirmed``.
"""

from __future__ import annotations

import polars as pl

from .evidence import EvidenceParams, seen_rule, unseen_because

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


def _answer_text(answer: pl.Expr, threshold: float) -> pl.Expr:
    """The detector's answer in a reason: two decimals, on the same side of ``threshold`` as the answer (0.199
    reads 0.19, not 0.2, beside "counts as seen from 0.2")."""
    shown = answer.round(2)
    return _text(
        pl.when((answer < threshold) & (shown >= threshold))
        .then((answer * 100).floor() / 100)
        .when((answer >= threshold) & (shown < threshold))
        .then((answer * 100).ceil() / 100)
        .otherwise(shown)
    )


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
    # a redetected spine is judged where it was looked for (its own session, from the detection it was found
    # from), except one that starts its track, found from a later detection: a formation, judged like one in the
    # session before
    ordered = (
        ordered.join(origin, on=["session_index", "spine_id"], how="left")
        .with_columns(virtual_formation=(new & (pl.col("origin_index") > pl.col("session_index"))).fill_null(False))
        .with_columns(
            source_index=pl.coalesce("origin_index", "source_index"),
            source_id=pl.coalesce("origin_id", "source_id"),
            target_index=pl.when(pl.col("origin_id").is_not_null() & ~pl.col("virtual_formation"))
            .then(pl.col("session_index"))
            .otherwise(pl.col("target_index")),
        )
    )
    looked = evidence.rename({"session_index": "target_index"}).select(
        "target_index",
        "source_index",
        "source_id",
        "response",
        "contrast_ratio",
        *[pl.col(c).alias(f"{c}_seen") for c in (*PLACE_COLUMNS, "in_view", "present")],
    )
    redetected_there = origin.select(
        target_index="session_index", source_index="origin_index", source_id="origin_id", redetected_there=pl.lit(True)
    ).unique()
    source = places.select(
        "session_index", "spine_id", *[pl.col(c).alias(f"{c}_source") for c in PLACE_COLUMNS], source_score="mean_score"
    )
    out = (
        ordered.join(places, on=["session_index", "spine_id"], how="left")
        .join(looked, on=["target_index", "source_index", "source_id"], how="left")
        .join(redetected_there, on=["target_index", "source_index", "source_id"], how="left")
        .join(source, left_on=["source_index", "source_id"], right_on=["session_index", "spine_id"], how="left")
    )
    return out


def _judged(out: pl.DataFrame, p: EvidenceParams, report: list[dict]) -> pl.DataFrame:
    """Evidence score, confidence, the other session's box and the reason of events and redetections."""
    residual = {i + 1: r.get("consistency_px") for i, r in enumerate(report)}
    new = pl.col("status") == "new"
    redetected = (pl.col("spine_id") >= VIRTUAL_ID).fill_null(False)
    formed_virtual = pl.col("virtual_formation") & pl.col("response").is_not_null()
    kept = redetected & ~formed_virtual  # a redetection whose confidence is that the spine is there
    bridged = (pl.col("status") == "present") & pl.col("spine_id").is_null()
    event = pl.col("status").is_in(["new", "eliminated"]) & pl.col("response").is_not_null() & ~kept
    new = new & ~kept
    redetected_or_bridged = kept | bridged
    p_present = _sigmoid(pl.col("response").fill_null(0.0), p.response_present, p.response_scale)
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
    # what decided, by the rule that redetection applies (evidence.seen): the rule, when the answer falls short
    # of it; the condition that failed, when it does not; for an event the evidence saw, why it still stands
    why_not = unseen_because(
        p,
        pl.col("response"),
        pl.col("contrast_ratio"),
        pl.col("in_view_seen"),
        (pl.col("target_index") - pl.col("source_index")).abs(),
    )
    verdict = (
        pl.when(kept & (pl.col("status") == "new") & (pl.col("origin_index") < pl.col("session_index")))
        .then(pl.lit("seen, but its track does not continue the spine detected there in the session before"))
        .when(pl.col("present_seen").fill_null(False) & event)
        .then(
            pl.when(pl.col("redetected_there").fill_null(False))
            .then(pl.lit("seen, but the spine redetected there continues another track"))
            .otherwise(pl.lit("seen, but not redetected: redetection is off"))
        )
        .when(pl.col("present_seen").fill_null(False))
        .then(pl.lit(seen_rule(p)))
        .when(why_not.is_not_null())
        .then(pl.format("not counted as seen: {}", why_not))
        .when(bridged)
        .then(pl.lit("not seen here: kept as the spine detected at this aligned place before and after"))
        .otherwise(pl.lit(seen_rule(p)))
    )
    out = out.with_columns(
        reason=pl.when(pl.col("confidence").is_not_null()).then(
            pl.format(
                "{}: detector {} at the aligned place {} ({}), contrast {} of where it was detected, "
                "detection score {}, alignment residual {} px",
                pl.when(kept)
                .then(pl.lit("redetected"))
                .when(formed_virtual)
                .then(pl.format("new, redetected in this session (detector {})", _text(pl.col("mean_score"))))
                .when(bridged)
                .then(pl.lit("present between two detections"))
                .otherwise(pl.col("status")),
                _answer_text(pl.col("evidence_score"), p.response_present),
                pl.when(new).then(pl.lit("in the previous session")).otherwise(pl.lit("in this session")),
                verdict,
                _text(pl.col("contrast_ratio")),
                _text(pl.col("source_score")),
                _text(alignment),
            )
        )
    )
    return out


def _entered_view(out: pl.DataFrame) -> pl.DataFrame:
    """A new spine whose place in the previous session lies outside its field of view is present, not formed."""
    new = (pl.col("status") == "new") & (~pl.col("redetected") | pl.col("virtual_formation"))
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
