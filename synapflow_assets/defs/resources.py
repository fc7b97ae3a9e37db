"""Resources: where data lives and how raw files are read."""

import json
from pathlib import Path
from typing import ClassVar, cast

import dagster as dg
from pydantic import BaseModel, field_validator

from ..environment import Environment
from ..imaging.keys import InvalidKeyError, validate_key
from ..setting_sections import DetectionOptions
from ..settings import LabSettings, load_settings
from ..store.ducklake import DuckLake, store_location
from ..store.locations import StorageError, is_remote, local_cache, location


class DataLake(dg.ConfigurableResource):
    """Where the data lives: one root (default `data/`), a local folder or an object-store prefix
    (`s3://bucket/prefix`, see `store.locations`).

    Every path built from an animal or session key checks the key with the
    landing-name rule (`imaging.keys.validate_key`) and that the path stays
    under the root, so a partition key such as `../../elsewhere` can never
    make an asset write outside the data root.

    With an object-store root, `landing` may be local or on the store
    (default `<root>/landing`); the feature store is a DuckDB file, or a DuckLake
    (`ducklake:<catalog>` with `store_data`, env `SYNAPFLOW_STORE_DATA`: many
    writers, see `store.ducklake`), that must be
    named (`store`, env `SYNAPFLOW_STORE`), and the detector registry is the
    MLflow server of `MLFLOW_TRACKING_URI`; caches stay on the local disk.
    """

    root: str = "data"
    landing_root: str = ""
    store: str = ""
    store_data: str = ""

    @property
    def remote(self) -> bool:
        return is_remote(self.root)

    def _under_root(self, *parts: str):
        root = location(self.root)
        path = root.joinpath(*parts)
        if not self.remote and not path.resolve().is_relative_to(root.resolve()):
            raise InvalidKeyError(f"{path}: outside the data root {root}")
        return path

    def _animal(self, animal: str) -> str:
        return validate_key(animal, "animal")

    def _session(self, session: str) -> str:
        return validate_key(session, "session")

    @property
    def landing(self):
        return location(self.landing_root) if self.landing_root else location(self.root) / "landing"

    def volume_path(self, animal: str, session: str):
        return self._under_root("volumes", self._animal(animal), f"{self._session(session)}.ome.zarr")

    def detections_path(self, animal: str, session: str):
        return self._under_root("detections", self._animal(animal), f"{self._session(session)}.parquet")

    def spines_dir(self, animal: str):
        return self._under_root("spines", self._animal(animal))

    def spines_path(self, animal: str, session: str):
        return self.spines_dir(animal) / f"{self._session(session)}.parquet"

    @property
    def local_root(self) -> Path:
        """The local folder of what stays on this machine: the root itself, or a cache folder for a remote root."""
        return local_cache(self.root)

    @property
    def model_runs(self) -> Path:
        return self.local_root / "models"

    @property
    def registry_root(self) -> Path:
        """The data root handed to the detector registry (its embedded SQLite lives there unless
        `MLFLOW_TRACKING_URI` is set, which an object-store root requires: every worker must see one registry)."""
        if self.remote and not Environment.read().mlflow_tracking_uri:
            raise StorageError(
                f"{self.root}: an object-store data root needs an MLflow server shared by every "
                "worker; set MLFLOW_TRACKING_URI"
            )
        return self.local_root

    @property
    def store_path(self) -> Path | DuckLake:
        """The DuckDB file, or the DuckLake store of ``store=ducklake:<catalog>`` with ``store_data``."""
        if self.store:
            return store_location(self.store, self.store_data)
        if self.remote:
            raise StorageError(
                f"{self.root}: an object-store data root needs a feature-store file on a disk every "
                "writer reaches; set SYNAPFLOW_STORE (e.g. /shared/features.duckdb)"
            )
        return Path(self.root) / "features.duckdb"

    def candidates_path(self, animal: str, session: str):
        """The detector's boxes down to the candidate threshold: evidence for spines missed in a session."""
        return self._under_root("candidates", self._animal(animal), f"{self._session(session)}.parquet")

    def tracks_path(self, animal: str):
        return self._under_root("tracks", f"{self._animal(animal)}.parquet")

    def tracks_cache(self, animal: str) -> Path:
        return self.local_root / "tracks" / self._animal(animal)

    def pixel_size_record(self, animal: str):
        """The animal's pooled pixel-size estimate (`imaging.animal_scale`), recorded once."""
        return self._under_root("volumes", self._animal(animal), "pixel_size.json")

    def spine_boxes_path(self, animal: str, session: str):
        return self._under_root("spines", self._animal(animal), f"{self._session(session)}.boxes.parquet")


def lake_from_environment(root: str | None = None) -> DataLake:
    """The data lake named by `SYNAPFLOW_DATA` (or `root`), `SYNAPFLOW_LANDING`, `SYNAPFLOW_STORE` and
    `SYNAPFLOW_STORE_DATA` (defaults: `data`, its `landing/` and its `features.duckdb`)."""
    env = Environment.read()
    return DataLake(root=root or env.data, landing_root=env.landing, store=env.store, store_data=env.store_data)


class _Overrides(dg.ConfigurableResource):
    """Explicit values that win over the landing folder's `synapflow.yaml` files (None: not set here)."""

    _section: ClassVar[str]

    def overrides(self) -> dict:
        options = cast(type[BaseModel], LabSettings.model_fields[self._section].annotation).model_fields
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
    min_margin: float | None = None
    min_trusted_blocks: float | None = None
    min_structure: float | None = None
