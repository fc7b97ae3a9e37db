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
section stale: ``imaging`` -> ``raw_volume``, ``detection`` -> ``detections_2d``, ``depth`` -> ``spines_3d``,
``alignment``, ``evidence`` and ``linking`` -> ``spine_tracks`` (and what depends on them).
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any, ClassVar

import yaml
from annotated_types import Ge, Gt, Le, Lt
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .features.plausibility import PlausibilityLimits
from .imaging.errors import InputError
from .imaging.validation import MAX_DECODED_MB
from .store.locations import as_path
from .tracking.align import AlignParams
from .tracking.consensus import ConsensusParams
from .tracking.depth import DepthLinkParams
from .tracking.evidence import EvidenceParams
from .tracking.time import TimeLinkParams

SETTINGS_FILE = "synapflow.yaml"
DEFAULT_SCORE_THRESHOLD = 0.35
"""The one default score threshold of ``detect``, the pipeline and the benchmarks (the shipped detector's best F1)."""

MAX_SETTINGS_BYTES = 64 * 1024
"""A settings file is a few lines; anything larger is refused before it is parsed."""

_ALIGN = AlignParams()
_EVIDENCE = EvidenceParams()
_CONSENSUS = ConsensusParams()
_LINK = TimeLinkParams()
_DEPTH = DepthLinkParams()


def _number(
    default: Any,
    description: str,
    *,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
) -> Any:
    """A finite real option within its bounds; a bool or a string is refused."""
    return Field(default, description=description, strict=True, allow_inf_nan=False, ge=ge, gt=gt, le=le, lt=lt)


def _integer(default: Any, description: str, *, ge: int | None = None, le: int | None = None) -> Any:
    """A whole-number option within its bounds; a bool, a float or a string is refused."""
    return Field(default, description=description, strict=True, ge=ge, le=le)


def _switch(default: bool, description: str) -> Any:
    """A true/false option; a number or a string is refused."""
    return Field(default, description=description, strict=True)


_EXPONENT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")
"""``1e-3``: a number in YAML 1.2, a string to PyYAML (YAML 1.1 wants ``1.0e-3``)."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _exponent_numbers(cls, values: Any) -> Any:
        if not isinstance(values, dict):
            return values
        return {k: float(v) if isinstance(v, str) and _EXPONENT.fullmatch(v) else v for k, v in values.items()}

    _UNVERSIONED: ClassVar[frozenset[str]] = frozenset()

    def fingerprint(self) -> str:
        """The section's values as sorted JSON: what a materialization records and staleness compares (limits
        that change no result are left out)."""
        return json.dumps(self.model_dump(exclude=set(self._UNVERSIONED)), sort_keys=True)


class ImagingOptions(_Section):
    """How a session's file is read."""

    pixel_size_um: float | None = _number(None, "x/y pixel size (um); overrides the file's metadata", ge=0.005, le=5)
    z_step_um: float | None = _number(None, "z step (um); overrides the file's metadata", ge=0.05, le=50)
    channel: int | None = _integer(None, "channel of a multi-channel file; default: the brightest", ge=0, le=63)
    n_channels: int | None = _integer(
        None, "channels interleaved page by page, when the file does not say", ge=1, le=64
    )
    min_layers: int = _integer(1, "files with fewer layers are refused (1 accepts single planes)", ge=1, le=10000)
    estimate_pixel_size: bool = _switch(
        True,
        "estimate the x/y pixel size from the dendrite width when neither the settings nor the file state it",
    )
    max_layer_shift_px: float = _number(20.0, "largest motion between consecutive layers taken as real", gt=0, le=1000)
    max_decoded_mb: int = _integer(
        MAX_DECODED_MB,
        "largest decoded size of one session (MB), checked from the file's header before any pixel is read",
        ge=16,
        le=262144,
    )

    _UNVERSIONED = frozenset({"max_decoded_mb"})  # a limit: it decides whether a file is read, not what comes out


class DetectionOptions(_Section):
    """How the detector runs on a session."""

    score_threshold: float = _number(DEFAULT_SCORE_THRESHOLD, "minimal box score", gt=0, le=1)
    upscale: float | None = _number(None, "test-time zoom (default: the model's)", ge=0.25, le=8)
    box_scale: float | None = _number(None, "box-size factor (default: the model's)", ge=0.1, le=10)
    tile: int | None = _integer(None, "tile size in pixels (default: the model's)", ge=32, le=8192)
    candidate_threshold: float = _number(
        0.1,
        "boxes down to this score are kept as evidence for spines missed in a session (section evidence)",
        gt=0,
        le=1,
    )


class DepthOptions(_Section):
    """How the boxes of one session's layers are linked into 3D spines (see ``DepthLinkParams``)."""

    max_cost: float = _number(_DEPTH.max_cost, "largest accepted cost -GIoU of boxes on nearby layers", ge=-1, le=1)
    inactive_wait: int = _integer(
        _DEPTH.inactive_wait, "layers a spine may be missing and still be continued", ge=0, le=1000
    )
    max_centre_distance_px: float | None = _number(
        _DEPTH.max_centre_distance_px, "largest distance between box centres on linked layers (px; none: any)", gt=0
    )
    min_layers: int = _integer(_DEPTH.min_layers, "3D spines seen on fewer layers are dropped", ge=1, le=10000)
    fill_gaps: int = _integer(_DEPTH.fill_gaps, "bridged gaps of at most this many layers get boxes", ge=0, le=1000)
    smooth_layers: int = _integer(
        _DEPTH.smooth_layers, "half-width in layers of the smoothing of boxes through depth", ge=0, le=1000
    )

    def params(self) -> DepthLinkParams:
        return DepthLinkParams(**self.model_dump())


class AlignmentOptions(_Section):
    """How consecutive sessions are aligned and when an alignment is trusted (see ``AlignParams``)."""

    max_rotation_deg: float = _number(
        _ALIGN.max_rotation_deg, "largest rotation between sessions searched (degrees)", ge=0, le=45
    )
    max_z_shift: int = _integer(_ALIGN.max_z_shift, "largest z-shift between sessions searched (layers)", ge=0, le=200)
    min_peak: float = _number(_ALIGN.min_peak, "block correlation peak (sigma) for a trusted block", gt=0, le=1000)
    min_global_peak: float = _number(_ALIGN.min_global_peak, "global correlation peak (sigma)", gt=0, le=1000)
    min_margin: float = _number(
        _ALIGN.min_margin,
        "the pair's correlation peak over the best peak of the same field flipped (no correspondence)",
        gt=0,
        le=100,
    )
    min_trusted_blocks: float = _number(
        _ALIGN.min_trusted_blocks,
        "share of the blocks holding structure that must match (0: not required)",
        ge=0,
        le=1,
    )
    min_structure: float = _number(
        _ALIGN.min_structure, "share of foreground pixels for a block to hold structure", gt=0, le=1
    )

    def params(self) -> AlignParams:
        return AlignParams(**self.model_dump())


class EvidenceOptions(_Section):
    """When the image overrides a missed detection (see ``EvidenceParams``)."""

    enabled: bool = _switch(True, "look at the image before calling a spine eliminated or new")
    response_present: float = _number(
        _EVIDENCE.response_present,
        "detector answer at the aligned place that keeps a missed spine present (an event's confidence 0.5 there)",
        gt=0,
        le=1,
    )
    response_support: float = _number(
        _EVIDENCE.response_support, "weakest detector answer that counts as support", gt=0, le=1
    )
    contrast_present: float | None = _number(
        _EVIDENCE.contrast_present,
        "contrast ratio that, with support, also keeps a missed spine present (off by default: it kept 10-20% "
        "of true eliminations in the benchmark)",
        gt=0,
        le=100,
    )
    weak_score: float = _number(
        _EVIDENCE.weak_score, "one-session, one-layer detections below this score need support", gt=0, le=1
    )
    ring_px: float = _number(_EVIDENCE.ring_px, "ring around a box for the contrast test", gt=0, le=100)
    redetect_within: int = _integer(
        _EVIDENCE.redetect_within,
        "sessions from its last detection within which a missed spine can be redetected",
        ge=1,
        le=1000,
    )
    consensus_score: float | None = _number(
        _CONSENSUS.min_score,
        "weakest detector answer that, at one aligned place in two consecutive sessions, makes a spine in both "
        "(temporal consensus; null: off)",
        gt=0,
        le=1,
    )

    def params(self) -> EvidenceParams | None:
        return EvidenceParams(**self.model_dump(exclude={"enabled", "consensus_score"})) if self.enabled else None

    def consensus(self) -> ConsensusParams:
        return ConsensusParams(min_score=self.consensus_score)


class LinkingOptions(_Section):
    """When a spine of one session is the same spine in the next (see ``TimeLinkParams``)."""

    max_cost: float = _number(
        _LINK.max_cost, "largest accepted cost 1.5 x (-GIoU) + 0.3 x z cost of the aligned boxes", ge=-1.5, le=10
    )
    max_centre_distance_um: float = _number(
        _LINK.max_centre_distance_um, "largest distance between the aligned centres (um)", gt=0, le=100
    )
    max_centre_distance_box: float = _number(
        _LINK.max_centre_distance_box,
        "largest distance between the aligned centres, as a share of the larger box's side",
        gt=0,
        le=100,
    )
    max_gap: int = _integer(_LINK.max_gap, "sessions a spine may be missed and still be linked again", ge=0, le=1000)

    def params(self) -> TimeLinkParams:
        return TimeLinkParams(**self.model_dump())


_PLAUSIBLE = PlausibilityLimits()


class PlausibilityOptions(_Section):
    """When an animal's numbers are implausible (warnings on `spine_dynamics`, see ``PlausibilityLimits``)."""

    max_split_share: float = _number(
        _PLAUSIBLE.max_split_share, "share of events that may overlap another track", ge=0, le=1
    )
    min_split_events: int = _integer(
        _PLAUSIBLE.min_split_events, "overlapping events from which the split check fires", ge=1, le=100000
    )
    max_count_jump: float = _number(
        _PLAUSIBLE.max_count_jump, "relative change of a session's spine count from its neighbours", gt=0, le=100
    )
    max_loss_per_day: float = _number(
        _PLAUSIBLE.max_loss_per_day, "survival over d days (at least 1) must be >= 1 - this * d", ge=0, le=1
    )
    min_survival: float = _number(_PLAUSIBLE.min_survival, "the survival floor never goes below", ge=0, le=1)
    density_per_um: tuple[float, float] = Field(
        _PLAUSIBLE.density_per_um, description="plausible spines per um (low, high; each 0-100)"
    )

    @field_validator("density_per_um", mode="before")
    @classmethod
    def _density_range(cls, value: Any) -> Any:
        pair = list(value) if isinstance(value, list | tuple) else None
        if (
            pair is None
            or len(pair) != 2
            or not all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in pair)
            or not 0 <= pair[0] <= pair[1] <= 100
        ):
            raise ValueError("must be two finite numbers low <= high within 0-100")
        return tuple(float(v) for v in pair)

    def limits(self) -> PlausibilityLimits:
        return PlausibilityLimits(**self.model_dump())


class LabSettings(BaseModel):
    """Everything a lab may set without code, by section."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    imaging: ImagingOptions = ImagingOptions()
    detection: DetectionOptions = DetectionOptions()
    depth: DepthOptions = DepthOptions()
    alignment: AlignmentOptions = AlignmentOptions()
    evidence: EvidenceOptions = EvidenceOptions()
    linking: LinkingOptions = LinkingOptions()
    plausibility: PlausibilityOptions = PlausibilityOptions()

    def tracking_fingerprint(self) -> str:
        """What decides the tracks: the ``alignment``, ``evidence`` and ``linking`` sections."""
        return json.dumps(
            {
                "alignment": self.alignment.model_dump(),
                "evidence": self.evidence.model_dump(),
                "linking": self.linking.model_dump(),
            },
            sort_keys=True,
        )


def _merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for key, value in extra.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def allowed_range(section: str, option: str) -> str | None:
    """The values an option accepts, in words (``a number from 0.005 to 5``), or None when it has no bounds."""
    model = LabSettings.model_fields[section].annotation if section in LabSettings.model_fields else None
    field = getattr(model, "model_fields", {}).get(option)
    if field is None:
        return None
    if field.annotation in (bool, bool | None):
        return "true or false"
    ge = next((m.ge for m in field.metadata if isinstance(m, Ge)), None)
    gt = next((m.gt for m in field.metadata if isinstance(m, Gt)), None)
    le = next((m.le for m in field.metadata if isinstance(m, Le)), None)
    lt = next((m.lt for m in field.metadata if isinstance(m, Lt)), None)
    if ge is not None and le is not None:
        bounds = [f"from {ge:g} to {le:g}"]
    else:
        bounds = [
            f"{words} {value:g}"
            for words, value in (("at least", ge), ("greater than", gt), ("at most", le), ("less than", lt))
            if value is not None
        ]
    if not bounds:
        return None
    kind = "a whole number" if field.annotation in (int, int | None) else "a finite number"
    return f"{kind} {', '.join(bounds)}"


def _problems(error: ValidationError) -> str:
    """One clause per invalid option: where, what was given, what is allowed."""
    clauses = []
    for item in error.errors():
        loc = [str(p) for p in item["loc"]]
        clause = f"{'.'.join(loc)}: {item['msg']}"
        if len(loc) >= 2 and item["type"] != "extra_forbidden":
            given = item.get("input")
            if isinstance(given, bool | int | float | str | None):
                clause += f" (got {given!r})"
            if (where := allowed_range(loc[0], loc[1])) is not None:
                clause += f"; allowed: {where}"
        clauses.append(clause)
    return "invalid settings: " + "; ".join(clauses)


def _read(path: Path) -> dict:
    """One settings file, parsed and validated; every problem is one :class:`InputError` line naming it."""
    try:
        with open(path, "rb") as stream:
            raw = stream.read(MAX_SETTINGS_BYTES + 1)
    except OSError as error:
        raise InputError(path, f"cannot read the settings file ({error.strerror or error})") from None
    if len(raw) > MAX_SETTINGS_BYTES:
        raise InputError(path, f"a settings file of over {MAX_SETTINGS_BYTES // 1024} KiB is refused (a few lines)")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise InputError(path, f"not UTF-8 text (byte 0x{raw[error.start]:02x} at offset {error.start})") from None
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml: bounded nesting, no Python recursion
    try:
        content = yaml.load(text, Loader=loader) or {}
    except yaml.YAMLError as error:
        raise InputError(path, f"cannot read the settings file ({str(error).splitlines()[0]})") from None
    except RecursionError:
        raise InputError(path, "cannot read the settings file (nested too deeply)") from None
    if not isinstance(content, dict):
        raise InputError(path, "a settings file must be a mapping of sections (imaging, detection, alignment)")
    try:
        LabSettings(**content)
    except ValidationError as error:
        raise InputError(path, _problems(error)) from None
    except RecursionError:
        raise InputError(path, "invalid settings: nested too deeply") from None
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
        raise InputError(Path("command line"), _problems(error)) from None
