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
from pathlib import Path

import yaml
from annotated_types import Ge, Gt, Le, Lt
from pydantic import BaseModel, ConfigDict, ValidationError

from .imaging.errors import InputError
from .setting_sections import (
    AlignmentOptions,
    DepthOptions,
    DetectionOptions,
    EvidenceOptions,
    ImagingOptions,
    LinkingOptions,
    PlausibilityOptions,
)
from .store.locations import as_path

SETTINGS_FILE = "synapflow.yaml"
MAX_SETTINGS_BYTES = 64 * 1024
"""A settings file is a few lines; anything larger is refused before it is parsed."""


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
