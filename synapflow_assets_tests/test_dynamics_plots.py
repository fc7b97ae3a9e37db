"""The dynamics plots draw an animal of one session, or none yet, without a matplotlib warning."""

import warnings

import polars as pl
import pytest

from synapflow_assets.features.dynamics import spine_dynamics
from synapflow_assets.features.dynamics_plots import dynamics_png, persistent_size_rows, size_trajectories_png

ONE_SESSION = pl.DataFrame(
    {
        "animal": ["m1"] * 3,
        "session": ["day00"] * 3,
        "session_index": [0] * 3,
        "track_id": [1, 2, 3],
        "status": ["present"] * 3,
        "size": [1.0, 2.0, 3.0],
    }
)


@pytest.mark.parametrize("tracks", [ONE_SESSION, ONE_SESSION.head(0)], ids=["one session", "no session"])
def test_one_session_or_none_plots_without_a_warning(tracks):
    dynamics = spine_dynamics(tracks)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert dynamics_png(dynamics, title="m1").startswith(b"\x89PNG")
        sizes = persistent_size_rows(tracks, len(dynamics))
        assert size_trajectories_png(sizes, title="m1").startswith(b"\x89PNG")
