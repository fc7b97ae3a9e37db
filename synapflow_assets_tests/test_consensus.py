"""Temporal consensus: a spine the detector answers only weakly, at one aligned place in two sessions, is a spine
in both; weak answers from noise or haze, which change between sessions, make nothing."""

from dataclasses import replace

import numpy as np
import polars as pl
import pytest

from synapflow_assets.tracking.consensus import CONSENSUS_ID, ConsensusParams, weak_spines, with_consensus
from synapflow_assets.tracking.incremental import AnimalTracker
from synapflow_assets.tracking.redetection import track_with_evidence

from .test_redetection import animal, persistent_spine, session_inputs  # noqa: F401 - the fixture

WEAK = 0.3
N_NOISE = 20
"""Weak boxes of noise per session (256 x 256 x 16): over 10x the density of weak boxes off spines in the raw-like
dynamics benchmark (72 in 18 sessions of 512 x 512 x 32)."""


def true_box(animal, session: int, spine: int) -> np.ndarray:  # noqa: F811
    boxes = animal[2][session].filter(pl.col("spine_id") == spine)
    return boxes.select(
        pl.col("xmin").median(), pl.col("ymin").median(), pl.col("xmax").median(), pl.col("ymax").median()
    ).to_numpy()[0]


def test_a_spine_answered_weakly_in_two_sessions_is_a_spine_in_both(animal, tmp_path):  # noqa: F811
    spine = persistent_spine(animal, 0)
    # never detected: the detector answers 0.3 there in every session (redetection has no detection to start from)
    inputs = session_inputs(animal, drop={0: [spine], 1: [spine], 2: [spine]})
    tracker = AnimalTracker(tmp_path / "cache")
    agreed_sessions, agreed = with_consensus(tracker, inputs)
    assert sorted(agreed["session_index"].to_list()) == [0, 1, 2]
    assert agreed["score"].to_list() == [WEAK] * 3 and (agreed["spine_id"] >= CONSENSUS_ID).all()
    for t in (0, 1, 2):
        found = agreed_sessions[t].spines.filter(pl.col("spine_id") >= CONSENSUS_ID)
        assert len(found) == 1
        centre = np.array([(found["xmin"][0] + found["xmax"][0]) / 2, (found["ymin"][0] + found["ymax"][0]) / 2])
        box = true_box(animal, t, spine)
        assert np.hypot(*(centre - (box[:2] + box[2:]) / 2)) < 2.0
    tracks, _ = track_with_evidence(tracker, agreed_sessions, consensus=agreed)
    first = tracks.filter((pl.col("session_index") == 0) & (pl.col("spine_id") >= CONSENSUS_ID))
    rows = tracks.filter(pl.col("track_id") == first["track_id"][0]).sort("session_index")
    assert rows["status"].to_list() == ["present", "present", "present"]
    assert "temporal consensus" in rows["reason"][0] and rows["confidence"][0] > 0.9
    # without consensus the spine is in no session
    plain, _ = track_with_evidence(AnimalTracker(tmp_path / "plain"), inputs)
    for t in (0, 1, 2):
        assert len(plain.filter(pl.col("session_index") == t)) == len(tracks.filter(pl.col("session_index") == t)) - 1


def test_weak_answers_of_noise_and_haze_make_no_spine(animal, tmp_path):  # noqa: F811
    inputs = session_inputs(animal)
    rng = np.random.default_rng(3)
    noisy = []
    for t, s in enumerate(inputs):
        # noise: weak boxes at places drawn anew in every session; haze: a band of weak boxes in session 1 only
        xy = rng.uniform(20, 230, (N_NOISE, 2))
        noise = pl.DataFrame(
            {
                "layer": rng.integers(0, 16, N_NOISE),
                "xmin": xy[:, 0] - 4,
                "ymin": xy[:, 1] - 4,
                "xmax": xy[:, 0] + 4,
                "ymax": xy[:, 1] + 4,
                "score": rng.uniform(0.2, 0.34, N_NOISE),
            }
        )
        haze = pl.DataFrame(
            {
                "layer": np.repeat(np.arange(4, 9), 12),
                "xmin": np.tile(np.arange(12) * 20.0 + 8, 5),
                "ymin": np.full(60, 120.0),
                "xmax": np.tile(np.arange(12) * 20.0 + 16, 5),
                "ymax": np.full(60, 128.0),
                "score": np.full(60, WEAK),
            }
        )
        extra = [noise] + ([haze] if t == 1 else [])
        noisy.append(replace(s, candidates=pl.concat([s.candidates, *extra], how="diagonal_relaxed")))
    assert sum(len(weak_spines(s)) for s in noisy) > 60  # there were weak spines to agree
    _, agreed = with_consensus(AnimalTracker(tmp_path / "cache"), noisy)
    assert len(agreed) == 0


def test_a_weak_box_on_a_detected_spine_is_that_spine_and_consensus_can_be_off(animal, tmp_path):  # noqa: F811
    inputs = session_inputs(animal)
    on_spines = [
        replace(
            s,
            candidates=pl.concat(
                [s.candidates, s.candidates.with_columns(score=pl.lit(WEAK), xmin=pl.col("xmin") + 1)]
            ),
        )
        for s in inputs
    ]
    assert all(len(weak_spines(s)) == 0 for s in on_spines)
    spine = persistent_spine(animal, 0)
    dropped = session_inputs(animal, drop={0: [spine], 1: [spine]})
    _, agreed = with_consensus(AnimalTracker(tmp_path / "off"), dropped, ConsensusParams(min_score=None))
    assert len(agreed) == 0
    _, agreed = with_consensus(AnimalTracker(tmp_path / "high"), dropped, ConsensusParams(min_score=WEAK + 0.01))
    assert len(agreed) == 0


def test_the_lab_settings_turn_consensus_off_or_stricter():
    import pydantic

    from synapflow_assets.setting_sections import EvidenceOptions

    assert EvidenceOptions().consensus() == ConsensusParams()
    assert EvidenceOptions(consensus_score=None).consensus().min_score is None
    assert EvidenceOptions(consensus_score=0.3).consensus().min_score == 0.3
    for bad in (0.0, 1.5, float("inf"), True):
        with pytest.raises(pydantic.ValidationError):
            EvidenceOptions(consensus_score=bad)


def test_an_animal_with_consensus_spines_is_up_to_date_after_its_ingest(tmp_path):
    """The tracks record the versions of the sessions they read, not of the sessions with their consensus spines:
    a second ingest runs nothing (a stand-in MIP series, the champion detector and its candidates); a changed
    ``linking`` setting runs the animal's assets again and nothing else."""
    import dagster as dg

    from synapflow_assets.defs.resources import AlignmentSettings, DataLake
    from synapflow_assets.defs.staleness import tracks_stale
    from synapflow_assets.pipeline import process_landed
    from synapflow_assets.synthetic.mip_timelapse import simulate_mip_timelapse

    simulate_mip_timelapse(tmp_path / "landing", series=1, sessions=3, seed=5)
    lake = DataLake(root=str(tmp_path))
    with dg.instance_for_test() as instance:
        first = process_landed(instance, lake)
        assert not first.failed and "series01 (spine_tracks, spine_dynamics)" in first.materialized
        tracks = pl.read_parquet(lake.tracks_path("series01"))
        assert tracks.filter(pl.col("spine_id") >= CONSENSUS_ID).height > 0
        assert not tracks_stale(instance, lake, "series01", AlignmentSettings())
        assert process_landed(instance, lake).materialized == []
        # a linking setting is part of what decides the tracks: only the animal's assets run again
        (lake.landing / "series01" / "synapflow.yaml").write_text("linking:\n  max_centre_distance_box: 0.3\n")
        assert tracks_stale(instance, lake, "series01", AlignmentSettings())
        assert process_landed(instance, lake).materialized == ["series01 (spine_tracks, spine_dynamics)"]
        assert not tracks_stale(instance, lake, "series01", AlignmentSettings())
