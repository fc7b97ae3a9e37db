"""A track's status never contradicts the evidence its reason cites, and the report counts what `dynamics`
counts.

The reason of an event cites the rule that redetects a missed spine (``counts as seen from 0.16``); an event
whose evidence reaches that threshold says which other condition of the rule failed, or why the spine it saw
is not this track's."""

import re

import numpy as np
import polars as pl
import pytest

from synapflow_assets.features.dynamics import spine_dynamics
from synapflow_assets.features.dynamics_plots import persistent_size_rows
from synapflow_assets.tools.report import counts_line
from synapflow_assets.tracking.event_confidence import PLACE_COLUMNS, VIRTUAL_ID, annotate_events
from synapflow_assets.tracking.evidence import EvidenceParams, answers, seen, unseen_because
from synapflow_assets.tracking.redetection import EVIDENCE_SCHEMA
from synapflow_assets.tracking.tracks import TRACK_SCHEMA
from synapflow_assets_tests.test_redetection import animal, persistent_spine, run, session_inputs, track_of

__all__ = ["animal"]  # the simulated animal of test_redetection (a module fixture)

PLACES_SCHEMA = {
    "session_index": pl.Int64,
    "spine_id": pl.Int64,
    **dict.fromkeys(("xmin", "ymin", "xmax", "ymax"), pl.Float64),
    "first_layer": pl.Int64,
    "last_layer": pl.Int64,
    "mean_score": pl.Float64,
    "n_layers": pl.Int64,
}
"""``annotate_events``'s ``places``: each detected (or redetected) spine's box, layers and score."""
ORIGIN_SCHEMA = {"spine_id": pl.Int64, "session_index": pl.Int64, "origin_index": pl.Int64, "origin_id": pl.Int64}
"""``annotate_events``'s ``origin``: the detection each redetected spine was found from."""

SEEN = re.compile(r"counts as seen from ([0-9.]+)(?:, or from ([0-9.]+) with contrast ([0-9.]+))?")


def random_params(rng: np.random.Generator) -> EvidenceParams:
    return EvidenceParams(
        response_present=float(rng.choice([0.2, round(float(rng.uniform(0.1, 0.6)), 2)])),
        response_support=0.1,
        contrast_present=None if rng.random() < 0.6 else round(float(rng.uniform(0.3, 1.2)), 2),
        redetect_within=int(rng.choice([1, 1, 2])),
    )


def random_answers(rng: np.random.Generator, n: int, threshold: float) -> np.ndarray:
    """Detector answers spread over [0, 1], with many exactly at, just below and just above ``threshold``."""
    pick = rng.integers(0, 4, n)
    return np.round(
        np.select(
            [pick == 0, pick == 1, pick == 2],
            [rng.uniform(0, 1, n), np.full(n, threshold), threshold + rng.choice([-1e-9, 1e-9, 0.01, -0.01], n)],
            np.where(rng.random(n) < 0.3, 0.0, rng.uniform(0, 1, n)),
        ).clip(0, 1),
        12,
    )


def test_the_rule_and_its_reasons_agree_over_random_evidence():
    rng = np.random.default_rng(7)
    for _ in range(200):
        p = random_params(rng)
        n = 200
        frame = pl.DataFrame(
            {
                "response": random_answers(rng, n, p.response_present),
                "contrast_ratio": np.where(rng.random(n) < 0.1, np.nan, rng.normal(0.7, 0.6, n)),
                "in_view": rng.random(n) < 0.8,
                "gap": rng.integers(1, 4, n),
            }
        )
        args = [pl.col(c) for c in ("response", "contrast_ratio", "in_view", "gap")]
        out = frame.with_columns(
            seen=seen(p, *args), answers=answers(p, *args[:2]), why=unseen_because(p, *args)
        ).to_dict(as_series=False)
        for response, contrast, in_view, gap, is_seen, answered, why in zip(*out.values(), strict=False):
            reaches = response >= p.response_present or (
                p.contrast_present is not None
                and response >= p.response_support
                and not np.isnan(contrast)
                and contrast >= p.contrast_present
            )
            assert answered == reaches
            assert is_seen == (reaches and in_view and gap <= p.redetect_within)
            assert (why is not None) == (reaches and not is_seen)


def random_animal(rng: np.random.Generator, p: EvidenceParams) -> dict:
    """``annotate_events``'s inputs for random tracks: spines lost after some sessions, lost after a redetection
    (evidence two sessions from the last detection), formed, and back from outside the view; the evidence at
    each place random, its decision taken by the rule, and a spine redetected from some of it linked to another
    track (as a rebuilt tracker may do)."""
    n_sessions = int(rng.integers(3, 6))
    tracks: list[tuple[int, int, int | None, str]] = []
    places: list[tuple] = []
    evidence: list[tuple] = []
    origin: list[tuple[int, int, int, int]] = []
    spine = iter(range(1, 10_000))

    def place(t, sid, score=0.9, layers=3):
        x, y = rng.uniform(20, 200, 2)
        places.append((t, sid, x, y, x + 8, y + 8, 5, 5 + layers - 1, score, layers))

    def look(target, source, sid):
        evidence.append((target, source, sid))

    for track in range(int(rng.integers(5, 40))):
        kinds = ["lost", "lost_after_redetection", "formed", "formed_after_redetection", "linked_elsewhere"]
        kind = rng.choice([*kinds, "back_in_view"])
        if kind == "lost":
            k = int(rng.integers(1, n_sessions))
            ids = [next(spine) for _ in range(k)]
            for t, sid in enumerate(ids):
                tracks.append((t, track, sid, "present"))
                place(t, sid)
            tracks.append((k, track, None, "eliminated"))
            look(k, k - 1, ids[-1])
        elif kind == "lost_after_redetection":
            first, virtual = next(spine), VIRTUAL_ID + next(spine)
            tracks += [(0, track, first, "present"), (1, track, virtual, "present"), (2, track, None, "eliminated")]
            place(0, first)
            place(1, virtual, score=0.5)
            origin.append((virtual, 1, 0, first))
            evidence.append((1, 0, first, 0.7))  # what redetected it
            look(2, 0, first)
        elif kind == "formed":
            t0 = int(rng.integers(1, n_sessions))
            sid = next(spine)
            weak = rng.random() < 0.2
            for t in range(t0, n_sessions if not weak else t0 + 1):
                tracks.append((t, track, sid if t == t0 else next(spine), "new" if t == t0 else "present"))
                place(t, tracks[-1][2], *((0.3, 1) if weak else (0.9, 3)))
            look(t0 - 1, t0, sid)
        elif kind == "formed_after_redetection":  # redetected in the session before its formation: it starts there
            t0 = int(rng.integers(2, max(n_sessions, 3)))
            sid, virtual = next(spine), VIRTUAL_ID + next(spine)
            tracks += [(t0 - 1, track, virtual, "new"), (t0, track, sid, "present")]
            place(t0 - 1, virtual, score=0.5)
            place(t0, sid)
            origin.append((virtual, t0 - 1, t0, sid))
            evidence.append((t0 - 1, t0, sid, 0.7))
            look(t0 - 2, t0, sid)
        elif kind == "linked_elsewhere":  # the spine redetected for a lost track starts a track of its own
            first, virtual = next(spine), VIRTUAL_ID + next(spine)
            tracks += [(0, track, first, "present"), (1, track, None, "eliminated"), (1, 1000 + track, virtual, "new")]
            place(0, first)
            place(1, virtual, score=0.5)
            origin.append((virtual, 1, 0, first))
            evidence.append((1, 0, first, 0.7))
        else:
            first = next(spine)
            tracks += [(0, track, first, "present"), (1, track, None, "out_of_view"), (2, track, None, "eliminated")]
            place(0, first)
            look(2, 0, first)
    tracks_frame = pl.DataFrame(
        [(f"s{t}", t, k, s, status, s is not None) for t, k, s, status in tracks if t < n_sessions],
        schema=TRACK_SCHEMA,
        orient="row",
    )
    looked = pl.DataFrame(
        [(e[0], e[1], e[2], e[3] if len(e) > 3 else None) for e in evidence],
        schema={"session_index": pl.Int64, "source_index": pl.Int64, "source_id": pl.Int64, "forced": pl.Float64},
        orient="row",
    ).filter(pl.col("session_index") < n_sessions)
    n = len(looked)
    looked = looked.with_columns(
        xmin=pl.lit(50.0),
        ymin=pl.lit(50.0),
        xmax=pl.lit(58.0),
        ymax=pl.lit(58.0),
        first_layer=pl.lit(5, pl.Int64),
        last_layer=pl.lit(7, pl.Int64),
        in_view=pl.when(pl.col("forced").is_not_null()).then(True).otherwise(pl.Series(rng.random(n) < 0.85)),
        response=pl.coalesce("forced", pl.Series(random_answers(rng, n, p.response_present))),
        contrast_ratio=pl.Series(np.where(rng.random(n) < 0.1, np.nan, rng.normal(0.7, 0.6, n))),
    )
    gap = (pl.col("session_index") - pl.col("source_index")).abs()
    looked = looked.with_columns(
        present=seen(p, pl.col("response"), pl.col("contrast_ratio"), pl.col("in_view"), gap)
    ).select(list(EVIDENCE_SCHEMA))
    # some evidence that saw a spine (the tracker still calling it an event) gave a spine linked to another track
    elsewhere = looked.filter(pl.col("present")).with_columns(
        keep=pl.Series(rng.random(int(looked["present"].sum())) < 0.5)
    )
    elsewhere = elsewhere.filter("keep").join(
        pl.DataFrame(origin, schema=ORIGIN_SCHEMA, orient="row").rename(
            {"origin_index": "source_index", "origin_id": "source_id"}
        ),
        on=["session_index", "source_index", "source_id"],
        how="anti",
    )
    origin += [
        (VIRTUAL_ID + 5_000_000 + i, t, s, sid)
        for i, (t, s, sid) in enumerate(elsewhere.select(*looked.columns[:3]).rows())
    ]
    return {
        "tracks": tracks_frame,
        "places": pl.DataFrame(
            places,
            schema=PLACES_SCHEMA,
            orient="row",
        ),
        "origin": pl.DataFrame(origin, schema=ORIGIN_SCHEMA, orient="row"),
        "evidence": looked.cast(EVIDENCE_SCHEMA),
        "report": [{"consistency_px": float(rng.uniform(0, 1))} for _ in range(n_sessions - 1)],
    }


def contradictions(tracks: pl.DataFrame, p: EvidenceParams) -> pl.DataFrame:
    """Events (``new``, ``eliminated``) whose own evidence reaches the threshold their reason cites as seen, or
    that reach ``response_present`` without saying why they stand."""
    events = tracks.filter(pl.col("status").is_in(["new", "eliminated"]))
    cited = events["reason"].str.extract_groups(SEEN.pattern).struct.unnest().cast(pl.Float64)
    score, contrast = events["evidence_score"].fill_null(0.0), events["contrast_ratio"].fill_nan(None).fill_null(0.0)
    reaches = (score >= cited["1"]).fill_null(False) | ((score >= cited["2"]) & (contrast >= cited["3"])).fill_null(
        False
    )
    shown = events["reason"].str.extract(r"detector ([0-9.]+) at the aligned place").cast(pl.Float64)
    reaches = reaches | (shown >= cited["1"]).fill_null(False)  # as the reason prints it, too
    explained = events["reason"].str.contains("not counted as seen: ") | events["reason"].str.contains("seen, but ")
    unexplained = (score >= p.response_present) & ~explained
    return events.filter(reaches | unexplained | events["reason"].is_null())


def test_no_event_contradicts_the_evidence_its_reason_cites_over_random_tables():
    rng = np.random.default_rng(2024)
    events = explained = 0
    for _ in range(150):
        p = random_params(rng)
        case = random_animal(rng, p)
        out = annotate_events(case.pop("tracks"), params=p, **case)
        bad = contradictions(out, p)
        assert not len(bad), bad.select("status", "evidence_score", "contrast_ratio", "reason").rows()
        judged = out.filter(pl.col("status").is_in(["new", "eliminated"]), ~pl.col("redetected"))
        events += len(judged)
        explained += int(judged["reason"].str.contains("not counted as seen|seen, but").sum())
        # the reasons that cite a failed condition name the one that failed
        why = judged.filter(pl.col("reason").str.contains("not counted as seen"))
        gaps = why["reason"].str.extract(r"(\d+) sessions away from the detection").cast(pl.Int64)
        assert (gaps.is_null() | (gaps > p.redetect_within)).all()
    assert events > 2000 and explained > 100


def test_an_event_is_the_more_likely_status_by_its_own_confidence():
    """The threshold of the rule is the midpoint of the confidence: an elimination decided by the rule (its
    evidence short of the threshold) is more likely than not, and so is a redetected spine."""
    rng = np.random.default_rng(11)
    eliminated = redetected = 0
    for _ in range(100):
        p = random_params(rng)
        case = random_animal(rng, p)
        out = annotate_events(case.pop("tracks"), params=p, **case)
        by_rule = out.filter(
            (pl.col("status") == "eliminated")
            & ~pl.col("redetected")
            & ~pl.col("reason").str.contains("not counted as seen|seen, but")
        )
        assert (by_rule["evidence_score"] < p.response_present).all()
        assert (by_rule["confidence"] > 0.5).all(), by_rule.select("evidence_score", "confidence").rows()
        kept = out.filter(pl.col("redetected") & (pl.col("status") == "present"))
        assert (kept["confidence"] >= 0.5).all(), kept.select("evidence_score", "confidence").rows()
        eliminated += len(by_rule)
        redetected += len(kept)
    assert eliminated > 200 and redetected > 20


def test_a_spine_kept_between_two_detections_never_cites_the_rule_it_fails():
    """A track that skips a session (detected before and after at the same aligned place) is present there; its
    reason cites the seen rule only where the image answers by it, and otherwise says it was not seen."""
    rng = np.random.default_rng(5)
    p = EvidenceParams()
    n = 60
    answers_ = random_answers(rng, n, p.response_present)
    tracks = pl.DataFrame(
        [(f"s{t}", t, k, None if t == 1 else 3 * k + t + 1, "present", t != 1) for k in range(n) for t in range(3)],
        schema=TRACK_SCHEMA,
        orient="row",
    )
    places = pl.DataFrame(
        [(t, 3 * k + t + 1, 10.0, 10.0, 18.0, 18.0, 5, 7, 0.9, 3) for k in range(n) for t in (0, 2)],
        schema=PLACES_SCHEMA,
        orient="row",
    )
    looked = pl.DataFrame(
        {
            "session_index": [1] * n,
            "source_index": [0] * n,
            "source_id": [3 * k + 1 for k in range(n)],
            **{c: [v] * n for c, v in zip(PLACE_COLUMNS, (10.0, 10.0, 18.0, 18.0, 5, 7), strict=True)},
            "in_view": [True] * n,
            "response": answers_,
            "contrast_ratio": rng.normal(0.7, 0.6, n),
        }
    )
    looked = looked.with_columns(
        present=seen(p, pl.col("response"), pl.col("contrast_ratio"), pl.col("in_view"), pl.lit(1))
    ).cast(EVIDENCE_SCHEMA)
    origin = pl.DataFrame(schema=ORIGIN_SCHEMA)
    out = annotate_events(
        tracks, places=places, origin=origin, evidence=looked, params=p, report=[{"consistency_px": 0.3}] * 2
    )
    kept = out.filter(pl.col("session_index") == 1)
    assert kept["status"].to_list() == ["present"] * n
    assert kept["reason"].str.starts_with("present between two detections").all()
    cited = kept["reason"].str.contains("counts as seen from")
    below = kept["evidence_score"] < p.response_present
    assert not (cited & below).any(), kept.filter(cited & below).select("evidence_score", "reason").rows()
    assert kept.filter(below)["reason"].str.contains("not seen here").all() and below.sum() > 10
    assert (cited == ~below).all()


def test_a_spine_redetected_then_missed_again_is_not_called_eliminated_as_if_seen(animal, tmp_path):
    """Detected, missed twice with the detector answering 0.3 both times: with ``redetect_within=1`` redetected
    in the session next to the detection, not in the one after; the reason says so. At the default bound (8
    sessions) it stays present in both."""
    spine = persistent_spine(animal, 1)
    inputs = session_inputs(animal, drop={1: [spine], 2: [spine]})
    kept = track_of(run(tmp_path / "default", inputs), inputs, 0, spine)
    assert kept["status"].to_list() == ["present"] * 3 and kept["redetected"].to_list() == [False, True, True]
    tracks = run(tmp_path, inputs, params=EvidenceParams(redetect_within=1))
    rows = track_of(tracks, inputs, 0, spine)
    assert rows["status"].to_list() == ["present", "present", "eliminated"]
    assert rows["redetected"].to_list() == [False, True, False]
    last = rows.row(2, named=True)
    assert last["evidence_score"] == pytest.approx(0.3) and last["confidence"] < 0.1
    assert "counts as seen from" not in last["reason"]
    assert "not counted as seen: 2 sessions away from the detection it is compared with" in last["reason"]
    assert not len(contradictions(tracks, EvidenceParams()))


def test_with_redetection_off_a_seen_spine_says_it_was_not_redetected(animal, tmp_path):
    spine = persistent_spine(animal, 2)
    inputs = session_inputs(animal, drop={2: [spine]})
    tracks = run(tmp_path, inputs, redetect=False)
    last = track_of(tracks, inputs, 0, spine).row(2, named=True)
    assert last["status"] == "eliminated" and "seen, but not redetected: redetection is off" in last["reason"]
    assert not len(contradictions(tracks, EvidenceParams()))


def test_random_misses_on_the_simulated_animal_leave_no_contradicting_event(animal, tmp_path):
    _sessions, _, boxes = animal
    rng = np.random.default_rng(3)
    drop = {t: [s for s in b["spine_id"].unique().sort().to_list() if rng.random() < 0.25] for t, b in enumerate(boxes)}
    tracks = run(tmp_path, session_inputs(animal, drop=drop))
    events = tracks.filter(pl.col("status").is_in(["new", "eliminated"]), ~pl.col("redetected"))
    assert len(events) > 5
    assert not len(contradictions(tracks, EvidenceParams()))


def test_the_reports_persistent_spines_are_in_view_in_every_session_of_dynamics():
    statuses = {
        # track: status per session (a corrected track that is not a spine keeps its detections and sizes)
        1: ["present", "present", "present"],
        2: ["present", "eliminated"],
        3: ["unconfirmed", "unconfirmed", "unconfirmed"],
        4: ["present", "out_of_view", "present"],
        5: ["present", "present", "present"],
    }
    tracks = pl.DataFrame(
        [
            ("a", f"d{t}", t, k, status, None if status in ("eliminated", "out_of_view") else 1.0 + t)
            for k, row in statuses.items()
            for t, status in enumerate(row)
        ],
        schema=["animal", "session", "session_index", "track_id", "status", "size"],
        orient="row",
    )
    dynamics = spine_dynamics(tracks)
    sizes = persistent_size_rows(tracks.drop("animal"), len(dynamics))
    assert sorted(sizes.filter(pl.col("size").is_not_null())["track_id"].unique()) == [1, 5]
    assert sizes.height == tracks.height  # every session keeps its rows (the plot's axis)
    line = counts_line(dynamics, sizes)
    assert "in all 3 sessions, as plotted): 2." in line and "4 in d0, 3 in d2" in line
    # an animal whose spines were all corrected to `unconfirmed`: nothing in view, nothing persistent
    gone = tracks.with_columns(status=pl.lit("unconfirmed"))
    dynamics = spine_dynamics(gone)
    assert dynamics["n_in_view"].to_list() == [0, 0, 0]
    sizes = persistent_size_rows(gone.drop("animal"), len(dynamics))
    assert sizes["size"].is_null().all() and "as plotted): 0." in counts_line(dynamics, sizes)
