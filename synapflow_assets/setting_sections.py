"""The sections of the per-lab settings (``synapflow.yaml``, see :mod:`.settings`): one pydantic model per
stage, its options' defaults (taken from the stage's parameter dataclass), bounds and descriptions, and the
stage's parameters built from it (``params()``)."""

from __future__ import annotations

import json
import math
import re
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .features.plausibility import PlausibilityLimits
from .imaging.validation import MAX_DECODED_MB
from .tracking.align import AlignParams
from .tracking.consensus import ConsensusParams
from .tracking.depth import DepthLinkParams
from .tracking.evidence import EvidenceParams
from .tracking.time import TimeLinkParams

DEFAULT_SCORE_THRESHOLD = 0.35
"""The one default score threshold of ``detect``, the pipeline and the benchmarks (the shipped detector's best F1)."""

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
    max_gain_per_day: float = _number(
        _PLAUSIBLE.max_gain_per_day, "formation over d days (at least 1) must be <= this * d", ge=0, le=1
    )
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
