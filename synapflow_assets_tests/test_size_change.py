"""The size change of a track with its 95% interval from the measurement noise (a constructed table)."""

import math

import polars as pl
import pytest

from synapflow_assets.features.size_change import HEAD_VOLUME_CV, log_ratio_half_width, relative_sizes, size_changes


def constructed() -> pl.DataFrame:
    """Track 1 constant, track 2 doubles, track 3 halves and is lost in the last session, track 4 in view once,
    track 5 not measured (NaN) in the first session."""
    rows = [
        (1, 0, "present", 0.20),
        (1, 1, "present", 0.20),
        (1, 2, "present", 0.20),
        (2, 0, "present", 0.10),
        (2, 1, "present", 0.15),
        (2, 2, "present", 0.20),
        (3, 0, "present", 0.30),
        (3, 1, "present", 0.15),
        (3, 2, "eliminated", None),
        (4, 2, "new", 0.25),
        (5, 0, "present", float("nan")),
        (5, 1, "present", 0.10),
        (5, 2, "present", 0.10),
    ]
    return pl.DataFrame(
        [(t, f"day{4 * i:02d}", i, s, v) for t, i, s, v in rows],
        schema=["track_id", "session", "session_index", "status", "head_volume_um3"],
        orient="row",
    )


def test_a_constant_spine_is_unchanged_and_a_doubled_one_grew_beyond_the_noise():
    changes = {r["track_id"]: r for r in size_changes(constructed()).iter_rows(named=True)}
    assert sorted(changes) == [1, 2, 3, 5]  # track 4 is in view once: no change
    constant, doubled, halved = changes[1], changes[2], changes[3]
    assert (
        constant["size_change"] == pytest.approx(0) and constant["size_change_low"] < 0 < constant["size_change_high"]
    )
    assert doubled["size_change"] == pytest.approx(1.0) and doubled["size_change_low"] > 0
    assert (doubled["first_session"], doubled["last_session"], doubled["n_sessions"]) == ("day00", "day08", 3)
    # first and last session in view: the eliminated session of track 3 does not count
    assert halved["size_change"] == pytest.approx(-0.5) and halved["last_session"] == "day04"
    assert halved["size_change_high"] < 0
    assert changes[5]["first_session"] == "day04" and changes[5]["size_change"] == pytest.approx(0)
    # the interval: exp(+-1.96 sqrt(2) sqrt(ln(1 + cv^2))) around the ratio, here about [0.62, 1.47] for a doubling
    half = 1.959964 * math.sqrt(2 * math.log1p(HEAD_VOLUME_CV**2))
    assert doubled["size_change_low"] == pytest.approx(2 * math.exp(-half) - 1, rel=1e-5)
    assert doubled["size_change_high"] == pytest.approx(2 * math.exp(half) - 1, rel=1e-5)
    assert log_ratio_half_width(cv=0.0) == 0.0


def test_noisier_measurements_give_wider_intervals_and_animals_are_kept_apart():
    two = pl.concat([constructed().with_columns(animal=pl.lit(a)) for a in ("m1", "m2")])
    changes = size_changes(two, cv=0.3)
    assert changes.height == 8 and changes["animal"].to_list() == ["m1"] * 4 + ["m2"] * 4
    doubled = changes.filter(pl.col("track_id") == 2).row(0, named=True)
    assert doubled["size_change_low"] < 0.62 and doubled["size_change_high"] > 1.47
    with pytest.raises(ValueError, match="no size column 'volume'"):
        size_changes(constructed(), column="volume")


def test_relative_sizes_keep_only_spines_in_view_in_every_session():
    relative = relative_sizes(constructed())
    assert relative["track_id"].unique().sort().to_list() == [1, 2]
    doubled = relative.filter(pl.col("track_id") == 2)
    assert doubled["relative"].to_list() == pytest.approx([1.0, 1.5, 2.0])
    assert (doubled["relative_low"] < doubled["relative"]).all() and (
        doubled["relative"] < doubled["relative_high"]
    ).all()


@pytest.mark.parametrize("n_sessions", [3, 1, 0], ids=["three sessions", "one session", "none"])
def test_the_morphology_pictures_draw_without_a_warning(n_sessions):
    import warnings

    from synapflow_assets.features.morphology_plots import median_interval, morphology_png, relative_size_png

    tracks = constructed().filter(pl.col("session_index") < n_sessions)  # NaN: not drawn
    features = tracks.filter(pl.col("head_volume_um3").is_not_null()).with_columns(
        head_diameter_um=pl.col("head_volume_um3") * 3, neck_length_um=pl.lit(0.5)
    )
    sessions = [f"day{4 * i:02d}" for i in range(n_sessions)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert morphology_png(features, sessions, title="m1").startswith(b"\x89PNG")
        relative = relative_sizes(tracks)
        assert relative_size_png(relative, sessions, half_width=log_ratio_half_width(), title="m1").startswith(
            b"\x89PNG"
        )
    if n_sessions == 3:
        medians = median_interval(relative)
        assert medians["median"].to_list() == pytest.approx([1.0, 1.25, 1.5])
        assert (medians["median_low"] <= medians["median"]).all() and (
            medians["median"] <= medians["median_high"]
        ).all()
