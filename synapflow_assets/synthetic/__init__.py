"""Seeded simulator of chronic two-photon imaging of dendritic spines, with ground truth.

Plain numpy/scipy/polars; see ``SimulationParams`` for the physical parameters.
"""

from .chronic import SimulatedSession, project_session, simulate_animal
from .files import read_truth, simulate_landing, write_session
from .params import SPINE_TYPES, SimulationParams

__all__ = [
    "SPINE_TYPES",
    "SimulatedSession",
    "SimulationParams",
    "project_session",
    "read_truth",
    "simulate_animal",
    "simulate_landing",
    "write_session",
]
