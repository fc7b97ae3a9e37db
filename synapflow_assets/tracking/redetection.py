"""Tracks that look at the image before calling a spine eliminated or new.

Each missed detection would otherwise become a false elimination (and a false
formation when the spine is found again). After the tracks are built, every
elimination at session ``t`` is checked at the spine's aligned place in ``t``,
and every formation at ``t`` at its aligned place in ``t - 1``
(:mod:`tracking.evidence`). A spine the image still shows (``evidence.seen``,
within ``redetect_within`` sessions of a detection) is added to that session as
a *redetected* spine and the tracks are rebuilt, until nothing changes. Each
remaining event gets a confidence and its reason (:mod:`.event_confidence`); a
weak one-layer detection seen in one session only, with no support around it,
is ``unconfirmed`` and left out of the rates.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import polars as pl

from .aligned_place import move_boxes
from .consensus import explain_consensus
from .event_confidence import PLACE_COLUMNS, VIRTUAL_ID, annotate_events
from .evidence import EvidenceParams, SummedVolume, box_contrast, detector_response, seen, summed_volume
from .incremental import AnimalTracker, SessionInput

KEPT_VOLUMES = 3
CONTRAST_SCHEMA: dict[Any, Any] = {"source_index": pl.Int64, "source_id": pl.Int64, "contrast": pl.Float64}
"""The contrast of each detected spine where it was detected, measured once (``box_contrast``)."""
EVIDENCE_SCHEMA: dict[Any, Any] = {
    "session_index": pl.Int64,
    "source_index": pl.Int64,
    "source_id": pl.Int64,
    "xmin": pl.Float64,
    "ymin": pl.Float64,
    "xmax": pl.Float64,
    "ymax": pl.Float64,
    "first_layer": pl.Int64,
    "last_layer": pl.Int64,
    "in_view": pl.Boolean,
    "response": pl.Float64,
    "contrast_ratio": pl.Float64,
    "present": pl.Boolean,
}


@dataclass
class _Sessions:
    """The sessions with their redetected spines, and what has been looked at."""

    tracker: AnimalTracker
    sessions: list[SessionInput]
    params: EvidenceParams
    virtual: list[pl.DataFrame]
    evidence: pl.DataFrame
    volumes: dict = field(default_factory=dict)
    origin: list[pl.DataFrame] = field(default_factory=list)
    source_contrast: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=CONTRAST_SCHEMA))

    def volume(self, index: int, upcoming: Sequence[int] = ()) -> SummedVolume:
        """The session's volume as a summed-volume table; ``KEPT_VOLUMES`` are kept (evidence compares
        neighbouring sessions, and a table is 8 bytes per voxel). With ``upcoming`` (the sessions asked for next,
        in order), the one evicted is the one needed last or never (else the oldest), so a pass over many pairs
        of sessions loads each volume as few times as the room allows."""
        if index not in self.volumes:
            while len(self.volumes) >= KEPT_VOLUMES:
                self.volumes.pop(_evicted(list(self.volumes), upcoming))
            self.volumes[index] = summed_volume(np.asarray(self.sessions[index].load_volume()))
        return self.volumes[index]

    def augmented(self) -> list[SessionInput]:
        out = []
        for s, extra in zip(self.sessions, self.virtual, strict=False):
            if not len(extra):
                out.append(s)
                continue
            spines = pl.concat([s.spines, extra.select(s.spines.columns)], how="vertical_relaxed")
            tag = ",".join(str(i) for i in extra["spine_id"].to_list())
            out.append(
                replace(
                    s,
                    spines=spines,
                    version=f"{s.version}+redetected:{tag}",
                    volume_version=s.volume_version or s.version,
                    detected=s.detected or s,
                )
            )
        return out

    def origins(self) -> pl.DataFrame:
        """``spine_id, session_index, origin_index, origin_id`` of every redetected spine."""
        return (
            pl.concat(self.origin)
            if self.origin
            else pl.DataFrame(
                schema={
                    "spine_id": pl.Int64,
                    "session_index": pl.Int64,
                    "origin_index": pl.Int64,
                    "origin_id": pl.Int64,
                }
            )
        )

    def spines(self, index: int) -> pl.DataFrame:
        return pl.concat(
            [self.sessions[index].spines, self.virtual[index].select(self.sessions[index].spines.columns)],
            how="vertical_relaxed",
        )

    def move(self, boxes: pl.DataFrame, source: int, target: int) -> pl.DataFrame:
        """Boxes (``PLACE_COLUMNS``) of session ``source`` at their aligned place in ``target``."""
        return move_boxes(self.tracker, self.sessions, boxes, source, target)


def _evicted(kept: list[int], upcoming: Sequence[int]) -> int:
    """Which of the ``kept`` volumes (oldest first) to drop: the first one not in ``upcoming``, else the one
    needed last."""
    upcoming = list(upcoming)
    next_use = [upcoming.index(k) if k in upcoming else len(upcoming) for k in kept]
    return kept[int(np.argmax(next_use))]


def _queries(tracks: pl.DataFrame, origin: pl.DataFrame) -> pl.DataFrame:
    """Where to look: ``session_index`` (target), ``source_index``, ``source_id`` for every elimination and
    every gap closed without a detection (the track's last detected spine, at that session), and every
    formation after the first session (the new spine, one session earlier; for a redetected spine that starts
    its track, the later detection it was found from, ``origin``). Sources are detected spines, never
    redetected ones."""
    detected = pl.col("spine_id").is_not_null() & (pl.col("spine_id") < VIRTUAL_ID)
    ordered = tracks.sort("track_id", "session_index").with_columns(
        last_index=pl.when(detected).then(pl.col("session_index")).forward_fill().shift(1).over("track_id"),
        last_id=pl.when(detected).then(pl.col("spine_id")).forward_fill().shift(1).over("track_id"),
    )
    absent = (pl.col("status") == "eliminated") | ((pl.col("status") == "present") & pl.col("spine_id").is_null())
    eliminated = ordered.filter(absent & pl.col("last_id").is_not_null()).select(
        "session_index", source_index="last_index", source_id="last_id"
    )
    formed = ordered.filter((pl.col("status") == "new") & (pl.col("session_index") > 0) & detected).select(
        (pl.col("session_index") - 1).alias("session_index"), source_index="session_index", source_id="spine_id"
    )
    formed_virtual = (
        ordered.filter((pl.col("status") == "new") & (pl.col("session_index") > 0))
        .join(origin, on=["session_index", "spine_id"])
        .filter(pl.col("origin_index") > pl.col("session_index"))
        .select(
            (pl.col("session_index") - 1).alias("session_index"), source_index="origin_index", source_id="origin_id"
        )
    )
    return pl.concat([eliminated, formed, formed_virtual.cast(pl.Int64)]).cast(pl.Int64).unique().sort(pl.all())


def _look(state: _Sessions, queries: pl.DataFrame) -> pl.DataFrame:
    """Evidence for every query, vectorised per (source, target) pair of sessions. Each volume is looked at
    once per call (sessions in order), and the contrast where a spine was detected is measured once per spine."""
    p = state.params
    pairs = []
    for (source, target), group in queries.group_by("source_index", "session_index", maintain_order=True):
        spines = state.spines(source).join(group.select(spine_id="source_id"), on="spine_id").sort("spine_id")
        boxes = spines.select("spine_id", *PLACE_COLUMNS)
        pairs.append((source, target, boxes, state.move(boxes.drop("spine_id"), source, target)))
    asked = (
        pl.concat(
            [boxes.select(pl.lit(source, pl.Int64).alias("source_index"), source_id="spine_id") for source, *_ in pairs]
        ).unique()
        if pairs
        else pl.DataFrame(schema={"source_index": pl.Int64, "source_id": pl.Int64})
    )
    missing = asked.join(state.source_contrast, on=["source_index", "source_id"], how="anti")
    unmeasured = {
        int(source): state.spines(int(source)).join(group.select(spine_id="source_id"), on="spine_id")
        for (source,), group in missing.group_by("source_index")
    }
    here: dict[tuple[int, int], np.ndarray] = {}
    order = sorted({target for _, target, _, _ in pairs} | set(unmeasured))
    for n, index in enumerate(order):
        volume = state.volume(index, order[n + 1 :])
        if index in unmeasured:
            boxes = unmeasured[index]
            measured = boxes.select(
                pl.lit(index, pl.Int64).alias("source_index"),
                source_id="spine_id",
                contrast=pl.Series(box_contrast(volume, *_place(boxes), p.ring_px), dtype=pl.Float64),
            )
            state.source_contrast = pl.concat([state.source_contrast, measured.cast(CONTRAST_SCHEMA)])
        for source, target, _, moved in pairs:
            if target == index:
                here[source, target] = box_contrast(volume, *_place(moved), p.ring_px)
    found = []
    for source, target, boxes, moved in pairs:
        box, first, last = _place(moved)
        candidates = state.sessions[target].candidates
        response = (
            detector_response(candidates, box, first, last, p.min_candidate_iou)
            if candidates is not None
            else np.zeros(len(box))
        )
        there = (
            boxes.select(pl.lit(source, pl.Int64).alias("source_index"), source_id="spine_id")
            .join(state.source_contrast, on=["source_index", "source_id"], how="left", maintain_order="left")[
                "contrast"
            ]
            .to_numpy()
        )
        with np.errstate(invalid="ignore", divide="ignore"):
            ratio = np.where(there > 0, here[source, target] / there, np.nan)
        found.append(
            moved.select(*PLACE_COLUMNS, "in_view")
            .with_columns(
                session_index=pl.lit(target),
                source_index=pl.lit(source),
                source_id=boxes["spine_id"],
                response=pl.Series(response, dtype=pl.Float64),
                contrast_ratio=pl.Series(ratio, dtype=pl.Float64),
            )
            .with_columns(
                present=seen(
                    p,
                    pl.col("response"),
                    pl.col("contrast_ratio"),
                    pl.col("in_view"),
                    pl.lit(abs(target - source)),
                )
            )
        )
    return (
        pl.concat(found, how="diagonal_relaxed").select(EVIDENCE_SCHEMA.keys()).cast(EVIDENCE_SCHEMA)
        if found
        else pl.DataFrame(schema=EVIDENCE_SCHEMA)
    )


def _place(boxes: pl.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(xmin, ymin, xmax, ymax)`` rows, first and last layers of a table of places."""
    return (
        boxes.select("xmin", "ymin", "xmax", "ymax").to_numpy(),
        boxes["first_layer"].to_numpy(),
        boxes["last_layer"].to_numpy(),
    )


def _redetected_spines(state: _Sessions, evidence: pl.DataFrame) -> None:
    """Add a spine at the place of every present piece of evidence (to its target session)."""
    for (target,), group in evidence.filter(pl.col("present")).group_by("session_index"):
        template = state.sessions[target].spines
        start = VIRTUAL_ID + target * (1 << 24) + len(state.virtual[target])
        new = group.sort("source_index", "source_id").with_columns(
            spine_id=pl.int_range(start, start + len(group), dtype=pl.Int64),
            n_layers=(pl.col("last_layer") - pl.col("first_layer") + 1),
            mean_score=pl.col("response"),
            x_px=(pl.col("xmin") + pl.col("xmax")) / 2,
            y_px=(pl.col("ymin") + pl.col("ymax")) / 2,
            z_px=(pl.col("first_layer") + pl.col("last_layer")) / 2,
            peak_layer=((pl.col("first_layer") + pl.col("last_layer")) // 2),
        )
        missing = [c for c in template.columns if c not in new.columns]
        new = (
            new.with_columns([pl.lit(None).alias(c) for c in missing])
            .select(template.columns)
            .cast({c: template.schema[c] for c in template.columns}, strict=False)
        )
        state.origin.append(
            new.select("spine_id", session_index=pl.lit(target, pl.Int64)).with_columns(
                origin_index=group.sort("source_index", "source_id")["source_index"],
                origin_id=group.sort("source_index", "source_id")["source_id"],
            )
        )
        state.virtual[target] = pl.concat([state.virtual[target], new], how="vertical_relaxed")


def track_with_evidence(
    tracker: AnimalTracker,
    sessions: list[SessionInput],
    params: EvidenceParams = EvidenceParams(),
    *,
    redetect: bool = True,
    consensus: pl.DataFrame | None = None,
) -> tuple[pl.DataFrame, list[dict]]:
    """:meth:`AnimalTracker.track`, then redetection from image evidence until nothing changes.

    With ``redetect`` False the tracks are the tracker's, and the evidence
    only sets the confidences. ``consensus`` (from
    :func:`.consensus.with_consensus`, whose sessions these are) gives the
    reasons and confidences of the spines found by temporal consensus.

    Returns
    -------
    tracks : polars.DataFrame
        ``build_tracks``'s columns (``spine_id`` null for a redetected spine)
        plus ``redetected`` (bool), the place looked at or seen
        (``PLACE_COLUMNS``, in that session's pixels), ``evidence_score`` (the
        detector's best answer there), ``contrast_ratio``, ``confidence`` in
        [0, 1] of the status of every event row (``new``, ``eliminated``) and
        redetected row, and ``reason``. Status ``unconfirmed``: a weak
        one-session detection without support.
    report : list of dict
        One alignment report per consecutive pair.
    """
    state = _Sessions(
        tracker, sessions, params, [s.spines.head(0) for s in sessions], pl.DataFrame(schema=EVIDENCE_SCHEMA)
    )
    tracks, report = tracker.track(sessions)
    # until nothing changes: each round that goes on redetects at least one spine not looked at before, and a
    # spine is redetected only near a detection, so there are at most 2 * redetect_within rounds per detected
    # spine (the bound is never reached; evidence left unused would contradict the events' reasons)
    detected = sum(len(s.spines) for s in sessions)
    for _ in range(2 * params.redetect_within * detected + 1 if redetect else 0):
        queries = _queries(tracks, state.origins()).join(
            state.evidence, on=["session_index", "source_index", "source_id"], how="anti"
        )
        if not len(queries):
            break
        looked = _look(state, queries)
        state.evidence = pl.concat([state.evidence, looked])
        if not looked["present"].any():
            break
        _redetected_spines(state, looked)
        tracks, report = tracker.track(state.augmented())
    origin = state.origins()
    pending = _queries(tracks, origin).join(
        state.evidence, on=["session_index", "source_index", "source_id"], how="anti"
    )
    if len(pending):  # not acted on: with ``redetect`` False, the evidence only sets the confidences
        state.evidence = pl.concat([state.evidence, _look(state, pending)])
    places = pl.concat(
        [
            state.spines(i)
            .select("spine_id", *PLACE_COLUMNS, "mean_score", "n_layers")
            .with_columns(session_index=pl.lit(i, pl.Int64))
            for i in range(len(state.sessions))
        ],
        how="vertical_relaxed",
    )
    annotated = annotate_events(
        tracks, places=places, origin=origin, evidence=state.evidence, params=params, report=report
    )
    if consensus is not None:
        annotated = explain_consensus(
            annotated,
            consensus,
            [s.key for s in sessions],
            midpoint=params.response_present,
            scale=params.response_scale,
        )
    return annotated, report
