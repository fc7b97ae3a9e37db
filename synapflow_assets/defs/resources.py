"""Resources: where data lives and how raw files are read."""
import json
from pathlib import Path
from typing import ClassVar

import dagster as dg
from pydantic import field_validator

from ..settings import DetectionOptions, LabSettings, load_settings


class DataLake(dg.ConfigurableResource):
    """The folders of the embedded deployment, all under one root (default `data/`)."""

    root: str = "data"

    @property
    def landing(self) -> Path:
        return Path(self.root) / "landing"

    def volume_path(self, animal: str, session: str) -> Path:
        return Path(self.root) / "volumes" / animal / f"{session}.ome.zarr"

    def detections_path(self, animal: str, session: str) -> Path:
        return Path(self.root) / "detections" / animal / f"{session}.parquet"

    def spines_dir(self, animal: str) -> Path:
        return Path(self.root) / "spines" / animal

    def spines_path(self, animal: str, session: str) -> Path:
        return self.spines_dir(animal) / f"{session}.parquet"

    @property
    def model_runs(self) -> Path:
        return Path(self.root) / "models"

    @property
    def store_path(self) -> Path:
        return Path(self.root) / "features.duckdb"

    def candidates_path(self, animal: str, session: str) -> Path:
        """The detector's boxes down to the candidate threshold: evidence for spines missed in a session."""
        return Path(self.root) / "candidates" / animal / f"{session}.parquet"

    def tracks_path(self, animal: str) -> Path:
        return Path(self.root) / "tracks" / f"{animal}.parquet"

    def tracks_cache(self, animal: str) -> Path:
        return Path(self.root) / "tracks" / animal

    def spine_boxes_path(self, animal: str, session: str) -> Path:
        return Path(self.root) / "spines" / animal / f"{session}.boxes.parquet"


class _Overrides(dg.ConfigurableResource):
    """Explicit values that win over the landing folder's `synapflow.yaml` files (None: not set here)."""

    _section: ClassVar[str]

    def overrides(self) -> dict:
        options = LabSettings.model_fields[self._section].annotation.model_fields
        return {self._section: {k: v for k, v in self.model_dump().items() if k in options}}

    def settings(self, lake: "DataLake", animal: str) -> LabSettings:
        """The animal's settings: defaults, `synapflow.yaml` files, then these explicit values."""
        return load_settings(lake.landing, animal, self.overrides())


class ImagingSettings(_Overrides):
    """How raw stacks are read (section `imaging` of `synapflow.yaml`; see `ImagingOptions`);
    a session's sidecar JSON may override channel choices."""

    _section: ClassVar[str] = "imaging"
    pixel_size_um: float | None = None
    z_step_um: float | None = None
    channel: int | None = None
    n_channels: int | None = None
    min_layers: int | None = None
    estimate_pixel_size: bool | None = None
    max_layer_shift_px: float | None = None
    default_voxel_size_um: list[float] = [1.0, 0.12, 0.12]


DETECTION_SOURCES = ("model", "imported", "baseline")


class DetectionSettings(_Overrides):
    """Where 2D detections come from: `model` (the registry's champion), `imported`
    (another detector's export `<session>.detections.csv` beside the session) or `baseline`
    (the classical LoG blob detector at its own threshold, model name `log-baseline`; for
    comparison only, never chosen automatically). The other options override section `detection`
    of `synapflow.yaml` (see `DetectionOptions`: score threshold, upscale, box scale, tile)."""

    _section: ClassVar[str] = "detection"
    source: str = "model"
    score_threshold: float | None = None
    batch_size: int = 4
    upscale: float | None = None
    box_scale: float | None = None
    tile: int | None = None

    def fingerprint(self, options: DetectionOptions) -> str:
        """What decides the boxes (source and options, not the batch size), for staleness checks."""
        return json.dumps({"source": self.source, **options.model_dump()}, sort_keys=True)

    @field_validator("source")
    @classmethod
    def _known_source(cls, value: str) -> str:
        if value not in DETECTION_SOURCES:
            raise ValueError(f"unknown detection source {value!r}; expected one of {', '.join(DETECTION_SOURCES)}")
        return value

    @field_validator("upscale", "box_scale", "tile", "score_threshold")
    @classmethod
    def _positive(cls, value: float | None) -> float | None:
        if value is not None and not value > 0:
            raise ValueError(f"must be a positive number, got {value}")
        return value


class AlignmentSettings(_Overrides):
    """When consecutive sessions count as aligned (section `alignment` of `synapflow.yaml`; see
    `AlignmentOptions`)."""

    _section: ClassVar[str] = "alignment"
    max_rotation_deg: float | None = None
    max_z_shift: int | None = None
    min_peak: float | None = None
    min_global_peak: float | None = None
    min_trusted_blocks: float | None = None
    min_structure: float | None = None

