"""Temporal evidence: a missed spine the image still shows stays present; a weak lone detection is not a
formation; every event carries a confidence; the rates carry 95% intervals."""

import numpy as np
import polars as pl
import pytest

from synapflow_assets.features.dynamics import INTERVAL_COLUMNS, spine_dynamics
from synapflow_assets.imaging.registration import register_layers
from synapflow_assets.synthetic import SimulationParams, simulate_animal
from synapflow_assets.tracking.evidence import box_contrast, detector_response, summed_volume
from synapflow_assets.tracking.incremental import AnimalTracker, SessionInput
from synapflow_assets.tracking.redetection import track_with_evidence
from synapflow_assets.tracking.spines import summarize_spines

PARAMS = SimulationParams(
    shape=(16, 256, 256),
    max_drift_px=10,
    max_drift_layers=1,
    max_rotation_deg=1,
    elimination_prob=0.1,
    formation_rate=0.1,
)
CANDIDATE_SCORE = 0.3
"""The detector's answer below its threshold at a spine it missed (the evidence)."""


@pytest.fixture(scope="module")
def animal():
    sessions = simulate_animal(PARAMS, n_sessions=3, seed=11)
    volumes = [register_layers(s.volume)[0] for s in sessions]
    boxes = [s.boxes for s in sessions]
    return sessions, volumes, boxes


def session_inputs(
    animal,
    *,
    drop: dict[int, list[int]] | None = None,
    silent: dict[int, list[int]] | None = None,
    extra: dict[int, pl.DataFrame] | None = None,
) -> list[SessionInput]:
    """Sessions whose detections are the true boxes, minus the spines in ``drop`` (missed by the detector,
    which still answers there below threshold unless the spine is also in ``silent``), plus ``extra`` boxes."""
    sessions, volumes, boxes = animal
    inputs = []
    for t, (sim, volume, true_boxes) in enumerate(zip(sessions, volumes, boxes, strict=False)):
        missed = (drop or {}).get(t, [])
        detections = true_boxes.filter(~pl.col("spine_id").is_in(missed)).with_columns(score=pl.lit(0.9))
        if extra and t in extra:
            detections = pl.concat([detections, extra[t]], how="diagonal_relaxed")
        spines = summarize_spines(detections.rename({"spine_id": "id"}), sim.voxel_size_um)
        candidates = pl.concat(
            [
                detections,
                true_boxes.filter(
                    pl.col("spine_id").is_in(missed) & ~pl.col("spine_id").is_in((silent or {}).get(t, []))
                ).with_columns(score=pl.lit(CANDIDATE_SCORE)),
            ],
            how="diagonal_relaxed",
        )
        inputs.append(
            SessionInput(
                f"day{4 * t:02d}",
                spines,
                volume.shape,
                f"s{t}-{missed}-{t in (extra or {})}",
                lambda v=volume: v,
                volume_version=f"s{t}",
                candidates=candidates.select("layer", "xmin", "ymin", "xmax", "ymax", "score"),
            )
        )
    return inputs


def persistent_spine(animal, session: int) -> int:
    """A spine present in every session, well inside the field."""
    sessions, _, boxes = animal
    ids = set.intersection(
        *[set(s.spines.filter(pl.col("status") == "present")["spine_id"].to_list()) for s in sessions[1:]]
    )
    ids &= set(sessions[0].spines.filter(pl.col("status") == "present")["spine_id"].to_list())
    inside = (
        boxes[session]
        .group_by("spine_id")
        .agg(pl.col("xmin").min(), pl.col("ymin").min(), pl.col("xmax").max(), pl.col("ymax").max(), pl.len())
    )
    inside = inside.filter(
        pl.col("spine_id").is_in(sorted(ids))
        & (pl.col("xmin") > 30)
        & (pl.col("ymin") > 30)
        & (pl.col("xmax") < 226)
        & (pl.col("ymax") < 226)
        & (pl.col("len") >= 2)
    )
    return int(inside.sort("spine_id")["spine_id"][0])


def track_of(tracks: pl.DataFrame, inputs: list[SessionInput], session: int, spine_id: int) -> pl.DataFrame:
    """All rows of the track holding ``spine_id`` in ``session``."""
    row = tracks.filter((pl.col("session_index") == session) & (pl.col("spine_id") == spine_id))
    assert len(row) == 1
    return tracks.filter(pl.col("track_id") == row["track_id"][0]).sort("session_index")


def run(tmp_path, inputs, **kwargs):
    return track_with_evidence(AnimalTracker(tmp_path / "cache"), inputs, **kwargs)[0]


def test_a_spine_missed_in_the_middle_session_but_in_the_image_stays_present(animal, tmp_path):
    spine = persistent_spine(animal, 1)
    inputs = session_inputs(animal, drop={1: [spine]})
    plain = AnimalTracker(tmp_path / "plain").track(inputs)[0]
    tracks = run(tmp_path, inputs)
    rows = track_of(tracks, inputs, 0, spine)
    print(rows.select("session_index", "status", "redetected", "confidence", "reason"))
    assert rows["status"].to_list() == ["present", "present", "present"]
    assert rows["redetected"].to_list() == [False, True, False]
    assert rows["spine_id"][1] is None and rows["confidence"][1] > 0.7
    assert "redetected" in rows["reason"][1]
    # without evidence the gap is closed too, but only because session 2 shows the spine again
    assert len(track_of(plain, inputs, 0, spine)) == 3
    # the tracker alone turns the same miss into an elimination when it comes in the newest session
    for tracked, expected in (
        (AnimalTracker(tmp_path / "p2").track(inputs[:2])[0], "eliminated"),
        (run(tmp_path / "e2", inputs[:2]), "present"),
    ):
        assert track_of(tracked, inputs, 0, spine)["status"].to_list()[-1] == expected


def test_a_spine_missed_in_the_newest_session_is_not_eliminated_when_the_image_shows_it(animal, tmp_path):
    spine = persistent_spine(animal, 2)
    inputs = session_inputs(animal, drop={2: [spine]})
    rows = track_of(run(tmp_path, inputs), inputs, 0, spine)
    assert rows["status"].to_list() == ["present", "present", "present"]
    assert rows["redetected"].to_list()[-1]
    gone = session_inputs(animal, drop={2: [spine]}, silent={2: [spine]})
    rows = track_of(run(tmp_path / "gone", gone), gone, 0, spine)
    assert rows["status"].to_list() == ["present", "present", "eliminated"]
    assert rows["confidence"][-1] > 0.9 and "eliminated: detector 0.0" in rows["reason"][-1]


def test_a_spine_missed_in_an_earlier_session_is_not_a_formation(animal, tmp_path):
    spine = persistent_spine(animal, 0)
    inputs = session_inputs(animal, drop={0: [spine]})
    rows = track_of(run(tmp_path, inputs), inputs, 1, spine)
    assert rows["status"].to_list() == ["present", "present", "present"]
    assert rows["redetected"].to_list() == [True, False, False]


def test_a_weak_lone_detection_in_an_empty_region_is_not_a_formation(animal, tmp_path):
    _sessions, volumes, _ = animal
    background = volumes[1].astype(float).mean(axis=0)
    y, x = np.unravel_index(
        np.argmin(np.where(np.pad(np.ones((216, 216)), 20) > 0, background, np.inf)), background.shape
    )
    lone = pl.DataFrame(
        {
            "spine_id": [10_000],
            "layer": [8],
            "xmin": [x - 4.0],
            "ymin": [y - 4.0],
            "xmax": [x + 4.0],
            "ymax": [y + 4.0],
            "type": ["stubby"],
            "score": [0.4],
        }
    )
    inputs = session_inputs(animal, extra={1: lone})
    tracks = run(tmp_path, inputs)
    row = tracks.filter((pl.col("session_index") == 1) & (pl.col("spine_id") == 10_000))
    assert row["status"].to_list() == ["unconfirmed"] and "unconfirmed" in row["reason"][0]
    assert not len(tracks.filter(pl.col("track_id") == row["track_id"][0], pl.col("session_index") == 2))
    truth = spine_dynamics(run(tmp_path / "clean", session_inputs(animal)).with_columns(animal=pl.lit("a")))
    with_lone = spine_dynamics(tracks.with_columns(animal=pl.lit("a")))
    assert with_lone["gained"].to_list() == truth["gained"].to_list()
    assert with_lone["n_in_view"].to_list() == truth["n_in_view"].to_list()
    # the same detection seen strongly (score 0.9, three layers) is a formation
    strong = pl.concat([lone.with_columns(layer=pl.lit(k), score=pl.lit(0.9)) for k in (7, 8, 9)])
    tracks = run(tmp_path / "strong", session_inputs(animal, extra={1: strong}))
    assert tracks.filter((pl.col("session_index") == 1) & (pl.col("spine_id") == 10_000))["status"].to_list() == ["new"]


def test_every_event_has_a_confidence_and_a_reason_and_rates_have_intervals(animal, tmp_path):
    inputs = session_inputs(animal)
    tracks = run(tmp_path, inputs)
    events = tracks.filter(pl.col("status").is_in(["new", "eliminated"]))
    assert len(events) > 3
    assert events["confidence"].is_between(0, 1).all() and events["reason"].is_not_null().all()
    assert tracks.filter(pl.col("status") == "present", ~pl.col("redetected"))["confidence"].is_null().all()
    dynamics = spine_dynamics(tracks.with_columns(animal=pl.lit("a")))
    later = dynamics.filter(pl.col("session_index") > 0)
    for rate, low, high in (
        ("formation_rate", "formation_low", "formation_high"),
        ("elimination_rate", "elimination_low", "elimination_high"),
        ("survival_fraction", "survival_low", "survival_high"),
    ):
        assert (later[low] <= later[rate]).all() and (later[rate] <= later[high]).all()
        assert (later[high] - later[low] > 0).all()
    assert dynamics.equals(spine_dynamics(tracks.with_columns(animal=pl.lit("a"))))  # seeded: a rerun is identical
    assert set(INTERVAL_COLUMNS) <= set(dynamics.columns)


def test_doubtful_events_move_the_intervals_towards_what_they_doubt():
    statuses = ["present"] * 40 + ["eliminated"] * 10
    tracks = pl.DataFrame(
        {
            "animal": "a",
            "session": ["s0"] * 50 + ["s1"] * 50,
            "session_index": [0] * 50 + [1] * 50,
            "track_id": list(range(50)) * 2,
            "status": ["present"] * 50 + statuses,
        }
    )
    sure = spine_dynamics(tracks.with_columns(confidence=pl.when(pl.col("status") == "eliminated").then(1.0)))
    doubtful = spine_dynamics(tracks.with_columns(confidence=pl.when(pl.col("status") == "eliminated").then(0.5)))
    assert sure["elimination_rate"][1] == doubtful["elimination_rate"][1] == 0.2
    assert 0.08 < sure["elimination_low"][1] < 0.2 < sure["elimination_high"][1] < 0.35  # spines sampled: +-2 sd
    # each doubtful elimination is a kept spine half the time: the interval reaches down to about 0.1
    assert doubtful["elimination_low"][1] < 0.06 < sure["elimination_low"][1]
    assert doubtful["survival_high"][1] > sure["survival_high"][1]


def test_detector_response_and_contrast_are_local(animal):
    _, volumes, boxes = animal
    b = boxes[0].filter(pl.col("layer") == boxes[0]["layer"].median())
    box = b.select("xmin", "ymin", "xmax", "ymax").to_numpy()[:5]
    layers = b["layer"].to_numpy()[:5]
    candidates = (
        b.head(5)
        .select("layer", "xmin", "ymin", "xmax", "ymax")
        .with_columns(score=pl.Series([0.1, 0.2, 0.3, 0.4, 0.5]))
    )
    assert np.allclose(detector_response(candidates, box, layers, layers, 0.3), [0.1, 0.2, 0.3, 0.4, 0.5])
    assert np.allclose(detector_response(candidates, box + 40, layers, layers, 0.3), 0)
    assert np.allclose(detector_response(candidates, box, layers + 5, layers + 5, 0.3), 0)
    table = summed_volume(volumes[0])
    on_spines = box_contrast(table, box, layers, layers, 4.0)
    expected = [
        volumes[0][z, int(np.floor(y0)) : int(np.ceil(y1)), int(np.floor(x0)) : int(np.ceil(x1))].mean()
        for (x0, y0, x1, y1), z in zip(box, layers, strict=False)
    ]
    assert np.all(np.isfinite(on_spines)) and np.median(on_spines) > 0
    inner = box_contrast(table, box, layers, layers, 4.0) * table.level
    assert np.all(inner < np.array(expected))  # a mean minus a positive ring mean


def test_evidence_settings_switch_redetection_off_and_make_tracks_stale(animal, tmp_path):
    from synapflow_assets.settings import LabSettings

    off = LabSettings(evidence={"enabled": False})
    assert off.evidence.params() is None and LabSettings().evidence.params() is not None
    assert off.tracking_fingerprint() != LabSettings().tracking_fingerprint()
    spine = persistent_spine(animal, 2)
    inputs = session_inputs(animal, drop={2: [spine]})
    rows = track_of(run(tmp_path, inputs, redetect=False), inputs, 0, spine)
    assert rows["status"].to_list() == ["present", "present", "eliminated"]
    assert rows["confidence"][-1] < 0.1 and not rows["redetected"].any()  # the evidence still says it is there
