"""Per-lab settings: one model for the defaults, the validation and the documentation of every option a
lab may need to set, read from ``synapflow.yaml`` files in the landing folder.

``landing/synapflow.yaml`` applies to every animal, ``landing/<animal>/synapflow.yaml`` to one animal
(its values win), and explicit command-line flags or resource config win over both. Example::

    imaging:
      pixel_size_um: 0.1       # x/y, overrides the file's metadata
      channel: 1               # of a multi-channel file (default: the brightest)
    detection:
      score_threshold: 0.3
    alignment:
      min_margin: 1.5

Each section has its own fingerprint, so a changed setting makes exactly the assets that use that
section stale: ``imaging`` -> ``raw_volume``, ``detection`` -> ``detections_2d``, ``alignment`` ->
``spine_tracks``, ``evidence`` -> ``spine_tracks`` (and what depends on them).
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .features.plausibility import PlausibilityLimits
from .imaging.errors import InputError
from .store.locations import as_path
from .tracking.align import AlignParams
from .tracking.evidence import EvidenceParams

SETTINGS_FILE = "synapflow.yaml"
DEFAULT_SCORE_THRESHOLD = 0.35
"""The one default score threshold of ``detect``, the pipeline and the benchmarks (the shipped detector's best F1)."""

_ALIGN = AlignParams()
_EVIDENCE = EvidenceParams()


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    def fingerprint(self) -> str:
        """The section's values as sorted JSON: what a materialization records and staleness compares."""
        return json.dumps(self.model_dump(), sort_keys=True)


class ImagingOptions(_Section):
    """How a session's file is read."""

    pixel_size_um: float | None = Field(None, gt=0, description="x/y pixel size (um); overrides the file's metadata")
    z_step_um: float | None = Field(None, gt=0, description="z step (um); overrides the file's metadata")
    channel: int | None = Field(None, ge=0, description="channel of a multi-channel file; default: the brightest")
    n_channels: int | None = Field(
        None, ge=1, description="channels interleaved page by page, when the file does not say"
    )
    min_layers: int = Field(1, ge=1, description="files with fewer layers are refused (1 accepts single planes)")
    estimate_pixel_size: bool = Field(
        True,
        description="estimate the x/y pixel size from the dendrite width when "
        "neither the settings nor the file state it",
    )
    max_layer_shift_px: float = Field(20.0, gt=0, description="largest motion between consecutive layers taken as real")


class DetectionOptions(_Section):
    """How the detector runs on a session."""

    score_threshold: float = Field(DEFAULT_SCORE_THRESHOLD, gt=0, le=1, description="minimal box score")
    upscale: float | None = Field(None, gt=0, description="test-time zoom (default: the model's)")
    box_scale: float | None = Field(None, gt=0, description="box-size factor (default: the model's)")
    tile: int | None = Field(None, gt=0, description="tile size in pixels (default: the model's)")
    candidate_threshold: float = Field(
        0.1,
        gt=0,
        le=1,
        description="boxes down to this score are kept as evidence for spines missed in a session (section evidence)",
    )


class AlignmentOptions(_Section):
    """How consecutive sessions are aligned and when an alignment is trusted (see ``AlignParams``)."""

    max_rotation_deg: float = Field(
        _ALIGN.max_rotation_deg, ge=0, description="largest rotation between sessions searched (degrees)"
    )
    max_z_shift: int = Field(_ALIGN.max_z_shift, ge=0, description="largest z-shift between sessions searched (layers)")
    min_peak: float = Field(_ALIGN.min_peak, gt=0, description="block correlation peak (sigma) for a trusted block")
    min_global_peak: float = Field(_ALIGN.min_global_peak, gt=0, description="global correlation peak (sigma)")
    min_margin: float = Field(
        _ALIGN.min_margin,
        gt=0,
        description="the pair's correlation peak over the best peak of the same field flipped (no correspondence)",
    )
    min_trusted_blocks: float = Field(
        _ALIGN.min_trusted_blocks,
        ge=0,
        le=1,
        description="share of the blocks holding structure that must match (0: not required)",
    )
    min_structure: float = Field(
        _ALIGN.min_structure, gt=0, le=1, description="share of foreground pixels for a block to hold structure"
    )

    def params(self) -> AlignParams:
        return AlignParams(**self.model_dump())


class EvidenceOptions(_Section):
    """When the image overrides a missed detection (see ``EvidenceParams``)."""

    enabled: bool = Field(True, description="look at the image before calling a spine eliminated or new")
    response_present: float = Field(
        _EVIDENCE.response_present,
        gt=0,
        le=1,
        description="detector answer at the aligned place that keeps a missed spine present",
    )
    response_support: float = Field(
        _EVIDENCE.response_support, gt=0, le=1, description="weakest detector answer that counts as support"
    )
    contrast_present: float | None = Field(
        _EVIDENCE.contrast_present,
        gt=0,
        description=(
            "contrast ratio that, with support, also keeps a missed spine present (off by default: it kept 10-20% "
            "of true eliminations in the benchmark)"
        ),
    )
    weak_score: float = Field(
        _EVIDENCE.weak_score, gt=0, le=1, description="one-session, one-layer detections below this score need support"
    )
    ring_px: float = Field(_EVIDENCE.ring_px, gt=0, description="ring around a box for the contrast test")
    redetect_within: int = Field(
        _EVIDENCE.redetect_within,
        ge=1,
        description="sessions from its last detection within which a missed spine can be redetected",
    )

    def params(self) -> EvidenceParams | None:
        return EvidenceParams(**self.model_dump(exclude={"enabled"})) if self.enabled else None


_PLAUSIBLE = PlausibilityLimits()


class PlausibilityOptions(_Section):
    """When an animal's numbers are implausible (warnings on `spine_dynamics`, see ``PlausibilityLimits``)."""

    max_split_share: float = Field(
        _PLAUSIBLE.max_split_share, ge=0, le=1, description="share of events that may overlap another track"
    )
    min_split_events: int = Field(
        _PLAUSIBLE.min_split_events, ge=1, description="overlapping events from which the split check fires"
    )
    max_count_jump: float = Field(
        _PLAUSIBLE.max_count_jump, gt=0, description="relative change of a session's spine count from its neighbours"
    )
    max_loss_per_day: float = Field(
        _PLAUSIBLE.max_loss_per_day, ge=0, le=1, description="survival over d days (at least 1) must be >= 1 - this * d"
    )
    min_survival: float = Field(_PLAUSIBLE.min_survival, ge=0, le=1, description="the survival floor never goes below")
    density_per_um: tuple[float, float] = Field(_PLAUSIBLE.density_per_um, description="plausible spines per um")

    def limits(self) -> PlausibilityLimits:
        return PlausibilityLimits(**self.model_dump())


class LabSettings(BaseModel):
    """Everything a lab may set without code, by section."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    imaging: ImagingOptions = ImagingOptions()
    detection: DetectionOptions = DetectionOptions()
    alignment: AlignmentOptions = AlignmentOptions()
    evidence: EvidenceOptions = EvidenceOptions()
    plausibility: PlausibilityOptions = PlausibilityOptions()

    def tracking_fingerprint(self) -> str:
        """What decides the tracks: the ``alignment`` and ``evidence`` sections."""
        return json.dumps(
            {"alignment": self.alignment.model_dump(), "evidence": self.evidence.model_dump()}, sort_keys=True
        )


def _merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for key, value in extra.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def _read(path: Path) -> dict:
    try:
        content = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as error:
        raise InputError(path, f"cannot read the settings file ({str(error).splitlines()[0]})") from None
    if not isinstance(content, dict):
        raise InputError(path, "a settings file must be a mapping of sections (imaging, detection, alignment)")
    try:
        LabSettings(**content)
    except ValidationError as error:
        raise InputError(
            path,
            "invalid settings: "
            + "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in error.errors()),
        ) from None
    return content


def settings_files(landing: Path, animal: str | None = None) -> list[Path]:
    """The settings files that apply to ``animal`` (all animals first), those that exist."""
    landing = as_path(landing)
    candidates = [landing / SETTINGS_FILE] + ([landing / animal / SETTINGS_FILE] if animal else [])
    return [path for path in candidates if path.is_file()]


def load_settings(landing: Path | None = None, animal: str | None = None, overrides: dict | None = None) -> LabSettings:
    """The settings of one animal: defaults, then ``landing/synapflow.yaml``, then
    ``landing/<animal>/synapflow.yaml``, then ``overrides`` (``{section: {option: value}}``; None values
    are ignored).

    Raises
    ------
    InputError
        A settings file or an override that is not valid, naming the file and the option.
    """
    merged: dict = {}
    for path in settings_files(landing, animal) if landing is not None else []:
        merged = _merge(merged, _read(path))
    explicit = {
        section: {k: v for k, v in values.items() if v is not None} for section, values in (overrides or {}).items()
    }
    merged = _merge(merged, {section: values for section, values in explicit.items() if values})
    try:
        return LabSettings(**merged)
    except ValidationError as error:
        raise InputError(
            Path("command line"),
            "invalid settings: "
            + "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in error.errors()),
        ) from None
