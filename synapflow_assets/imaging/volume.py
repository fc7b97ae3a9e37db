"""The in-memory form of one imaging session."""

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class Volume:
    """One session's z-stack.

    Attributes
    ----------
    data : ndarray, shape (z, y, x)
        Grey values of one channel, in the dtype of the file.
    voxel_size_um : tuple of float
        Physical voxel size (z, y, x) in micrometres.
    source : Path
        The file or folder it was read from.
    voxel_size_source : str
        Where the voxel size came from: ``"ome"``, ``"imagej"``, ``"scanimage"``,
        ``"sidecar"`` or ``"default"``.
    acquired_at : datetime or None
        Acquisition time from metadata or sidecar, when known.
    metadata : dict
        Extra facts worth showing (format, channel chosen, compression).
    """

    data: np.ndarray
    voxel_size_um: tuple[float, float, float]
    source: Path
    voxel_size_source: str = "default"
    acquired_at: datetime | None = None
    metadata: dict = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.data.shape)
