"""Resources: where data lives and how raw files are read."""
import json
from pathlib import Path

import dagster as dg
from pydantic import field_validator


class DataLake(dg.ConfigurableResource):
    """The folders of the embedded deployment, all under one root (default ``data/``)."""

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

    def tracks_path(self, animal: str) -> Path:
        return Path(self.root) / "tracks" / f"{animal}.parquet"

    def tracks_cache(self, animal: str) -> Path:
        return Path(self.root) / "tracks" / animal

    def spine_boxes_path(self, animal: str, session: str) -> Path:
        return Path(self.root) / "spines" / animal / f"{session}.boxes.parquet"


class ImagingSettings(dg.ConfigurableResource):
    """How raw stacks are read; a session's sidecar JSON may override channel choices."""

    channel: int | None = None
    n_channels: int | None = None
    default_voxel_size_um: list[float] = [1.0, 0.12, 0.12]
    min_layers: int = 2
    max_layer_shift_px: float = 20.0

    def reader_options(self) -> dict:
        return {
            "channel": self.channel,
            "n_channels": self.n_channels,
            "default_voxel_size_um": tuple(self.default_voxel_size_um),
            "min_layers": self.min_layers,
        }


DETECTION_SOURCES = ("model", "imported", "baseline")


class DetectionSettings(dg.ConfigurableResource):
    """Where 2D detections come from: ``model`` (the registry's champion), ``imported``
    (another detector's export ``<session>.detections.csv`` beside the session) or ``baseline``
    (the classical LoG blob detector at its own threshold, model name ``log-baseline``; for
    comparison only, never chosen automatically). The shipped
    detector's best F1 on held-out layers is at a score of about 0.35. ``tile``, ``upscale`` and
    ``box_scale`` override the model's inference options (None: the model's own; the shipped
    model runs on 320 px tiles, its training crop, since its boxes scale with its input)."""

    source: str = "model"
    score_threshold: float = 0.35
    batch_size: int = 4
    upscale: float | None = None
    box_scale: float | None = None
    tile: int | None = None

    def fingerprint(self) -> str:
        """What decides the boxes (everything but the batch size), for staleness checks."""
        return json.dumps(self.model_dump(exclude={"batch_size"}), sort_keys=True)

    @field_validator("source")
    @classmethod
    def _known_source(cls, value: str) -> str:
        if value not in DETECTION_SOURCES:
            raise ValueError(f"unknown detection source {value!r}; expected one of {', '.join(DETECTION_SOURCES)}")
        return value

    @field_validator("upscale", "box_scale", "tile")
    @classmethod
    def _positive(cls, value: float | None) -> float | None:
        if value is not None and not value > 0:
            raise ValueError(f"must be a positive number, got {value}")
        return value
