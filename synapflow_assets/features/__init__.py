"""Spine features from registered volumes and linked boxes (plain numpy/scipy/polars, no Dagster).

Public API
----------
spine_features
    One row per 3D spine of a session: position, size, head-to-dendrite
    distance (+ reason code), head diameter, neck length, head volume, shaft-normalised
    size, type (+ source), peak intensity, dendrite brightness (units: ``FEATURE_UNITS``).
session_density
    Dendrite length (um) and spines per um of a session.
spine_dynamics
    Formation / elimination / turnover / survival / new-persistent / size
    change per (animal, session) from time tracks.
layer_sizes, spine_sizes
    The SynapFlow integrated-fluorescence size per layer and per spine.
layer_distances, spine_distances
    Head centre, junction and head-to-dendrite distance per layer and per spine.
spine_morphology
    Head diameter, neck length, head volume (um^3) and shaft-normalised size per spine.
"""

from .dendrite import session_density
from .distance import layer_distances, spine_distances
from .dynamics import spine_dynamics
from .head_shape import spine_morphology
from .operators import OPERATORS, combine_layers
from .per_spine import FEATURE_COLUMNS, FEATURE_UNITS, spine_features
from .shape_type import assign_types, type_from_shape
from .size import layer_sizes, spine_sizes

__all__ = [
    "FEATURE_COLUMNS",
    "FEATURE_UNITS",
    "OPERATORS",
    "assign_types",
    "combine_layers",
    "layer_distances",
    "layer_sizes",
    "session_density",
    "spine_distances",
    "spine_dynamics",
    "spine_features",
    "spine_morphology",
    "spine_sizes",
    "type_from_shape",
]
