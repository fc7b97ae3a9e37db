"""Voxel size, channel count and acquisition time from TIFF metadata.

Three flavours of TIFF metadata are understood:

* OME-XML (``Pixels`` ``PhysicalSizeX/Y/Z`` with their units and the
  ``Image`` ``AcquisitionDate``);
* ImageJ (``XResolution``/``YResolution`` tags in pixels per unit, the
  ``spacing`` and ``unit`` entries of the ImageJ description);
* ScanImage (``key = value`` text in the description or software tags, e.g.
  ``SI.hStackManager.stackZStepSize = 1`` and
  ``SI.hChannels.channelSave = [1;2]``), parsed with regular expressions.

Every function returns only what the metadata states; the caller decides the
priority between sources. Sizes are in micrometres.
"""
from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from datetime import datetime

# Length units (lower-cased) -> micrometres per unit.
_UNIT_TO_UM = {
    "um": 1.0, "µm": 1.0, "μm": 1.0, "\\u00b5m": 1.0, "micron": 1.0,
    "microns": 1.0, "micrometer": 1.0, "micrometre": 1.0, "micrometers": 1.0,
    "nm": 1e-3, "nanometer": 1e-3, "nanometre": 1e-3,
    "mm": 1e3, "millimeter": 1e3, "cm": 1e4, "m": 1e6, "pm": 1e-6,
    "å": 1e-4, "angstrom": 1e-4,
}

_AXES = ("z", "y", "x")


def unit_to_um(unit: str | None) -> float | None:
    """Micrometres per ``unit``, or None when the unit is not a known length.

    Parameters
    ----------
    unit : str or None
        A length unit as written in metadata (``"µm"``, ``"micron"``,
        ``"\\u00B5m"``, ``"nm"`` ...). ``"pixel"`` or None give None.

    Returns
    -------
    float or None
    """
    if unit is None:
        return None
    return _UNIT_TO_UM.get(str(unit).strip().lower())


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def parse_datetime(text: str | None) -> datetime | None:
    """Parse an ISO-8601 timestamp (``Z`` suffix allowed); None if unparseable."""
    if not text:
        return None
    try:
        return datetime.fromisoformat(str(text).strip().replace("Z", "+00:00"))
    except ValueError:
        return None


def ome_info(ome_xml: str | None) -> tuple[dict[str, float], datetime | None]:
    """Voxel size and acquisition date of the first OME ``Image``.

    Parameters
    ----------
    ome_xml : str or None
        The OME-XML document.

    Returns
    -------
    sizes : dict
        ``{"z"|"y"|"x": micrometres}`` for the axes the XML states with a
        known unit (OME's default unit is µm). Values are not validated.
    acquired_at : datetime or None
        ``AcquisitionDate`` when present and parseable.
    """
    if not ome_xml:
        return {}, None
    try:
        root = ET.fromstring(ome_xml.encode("utf-8") if isinstance(ome_xml, str) else ome_xml)
    except ET.ParseError:
        return {}, None
    image = next((e for e in root.iter() if _local(e.tag) == "Image"), None)
    if image is None:
        return {}, None
    acquired = None
    pixels = None
    for child in image:
        if _local(child.tag) == "AcquisitionDate":
            acquired = parse_datetime(child.text)
        elif _local(child.tag) == "Pixels":
            pixels = child
    sizes: dict[str, float] = {}
    if pixels is not None:
        for axis in _AXES:
            value = pixels.get(f"PhysicalSize{axis.upper()}")
            if value is None:
                continue
            factor = unit_to_um(pixels.get(f"PhysicalSize{axis.upper()}Unit", "µm"))
            try:
                number = float(value)
            except ValueError:
                continue
            if factor is not None:
                sizes[axis] = number * factor
    return sizes, acquired


def imagej_voxel_size(imagej_metadata: dict | None, page) -> dict[str, float]:
    """Voxel size from ImageJ metadata and the resolution tags of ``page``.

    Parameters
    ----------
    imagej_metadata : dict or None
        ``TiffFile.imagej_metadata``.
    page : tifffile.TiffPage
        The first page; its ``XResolution``/``YResolution`` are pixels per unit.

    Returns
    -------
    dict
        ``{"z"|"y"|"x": micrometres}``; empty when the unit is missing,
        ``pixel`` or unknown (1 pixel per unit then means "not calibrated").
    """
    if not imagej_metadata:
        return {}
    factor = unit_to_um(imagej_metadata.get("unit"))
    if factor is None:
        return {}
    sizes: dict[str, float] = {}
    for axis, tag in (("x", "XResolution"), ("y", "YResolution")):
        item = page.tags.get(tag)
        if item is None:
            continue
        try:
            num, den = item.value
            sizes[axis] = (den / num) * factor if num else math.inf
        except (TypeError, ValueError):
            continue
    spacing = imagej_metadata.get("spacing")
    if spacing is not None:
        try:
            sizes["z"] = float(spacing) * factor
        except (TypeError, ValueError):
            pass
    return sizes


_SI_Z = re.compile(
    r"(?:actualStackZStepSize|stackZStepSize|state\.acq\.zStepSize)\s*=\s*'?\s*"
    r"([-+]?\d*\.?\d+(?:[eE][-+]?\d+)?)"
)
_SI_Z_ACTUAL = re.compile(
    r"actualStackZStepSize\s*=\s*([-+]?\d*\.?\d+(?:[eE][-+]?\d+)?)"
)
_SI_CHANNELS = re.compile(r"hChannels\.channelSave\s*=\s*(\[[^\]]*\]|\d+)")
_SI_LEGACY_CHANNELS = re.compile(r"state\.acq\.numberOfChannelsSave\s*=\s*(\d+)")
_NUMBER = r"[-+]?\d*\.?\d+(?:[eE][-+]?\d+)?"
_SI_FOV = re.compile(r"hRoiManager\.imagingFov(Um|Deg)\s*=\s*\[([^\]]*)\]")
_SI_PIXELS = re.compile(r"hRoiManager\.pixelsPerLine\s*=\s*(\d+)")
_SI_LINES = re.compile(r"hRoiManager\.linesPerFrame\s*=\s*(\d+)")
_SI_OBJECTIVE = re.compile(r"\bSI\.objectiveResolution\s*=\s*(" + _NUMBER + ")")
_SI_MARK = re.compile(r"\bSI\d*\.|scanimage|state\.acq\.", re.IGNORECASE)


def scanimage_text(tif) -> str:
    """All text where ScanImage keeps its settings, joined by newlines.

    Parameters
    ----------
    tif : tifffile.TiffFile

    Returns
    -------
    str
        Description, software and artist tags of the first page, plus the
        ``FrameData`` of modern ScanImage files rendered as ``key = value``.
    """
    page = tif.pages.first
    parts = []
    for tag in ("ImageDescription", "Software", "Artist"):
        item = page.tags.get(tag)
        if item is not None and isinstance(item.value, str):
            parts.append(item.value)
    if getattr(tif, "is_scanimage", False):
        try:
            frame = (tif.scanimage_metadata or {}).get("FrameData", {})
            parts.extend(f"{key} = {_matlab(value)}" for key, value in frame.items())
        except Exception:  # noqa: BLE001 - metadata is optional
            pass
    return "\n".join(parts)


def _matlab(value) -> str:
    if isinstance(value, (list, tuple)):
        return "[" + ";".join(str(v) for v in value) + "]"
    return str(value)


def scanimage_info(text: str) -> dict:
    """Z step and saved channel count from ScanImage ``key = value`` text.

    Parameters
    ----------
    text : str
        As returned by :func:`scanimage_text`.

    Returns
    -------
    dict
        Keys (each only when found): ``is_scanimage`` (bool), ``z`` (step in
        µm, absolute value, the actual step preferred), ``y`` and ``x`` (pixel
        size in µm: the imaging field of view, ``imagingFovUm`` or else
        ``imagingFovDeg`` times ``objectiveResolution``, over
        ``linesPerFrame`` and ``pixelsPerLine``), ``n_channels`` (int).
    """
    info: dict = {}
    if not text or not _SI_MARK.search(text):
        return info
    info["is_scanimage"] = True
    match = _SI_Z_ACTUAL.search(text) or _SI_Z.search(text)
    if match:
        info["z"] = abs(float(match.group(1)))
    match = _SI_CHANNELS.search(text)
    if match:
        numbers = re.findall(r"\d+", match.group(1))
        if numbers:
            info["n_channels"] = len(numbers)
    else:
        match = _SI_LEGACY_CHANNELS.search(text)
        if match:
            info["n_channels"] = int(match.group(1))
    info.update(_scanimage_pixel_size(text))
    return info


def _scanimage_pixel_size(text: str) -> dict[str, float]:
    fovs = {unit: value for unit, value in _SI_FOV.findall(text)}
    pixels, lines = _SI_PIXELS.search(text), _SI_LINES.search(text)
    if not (pixels and lines) or not fovs:
        return {}
    scale = 1.0
    corners_text = fovs.get("Um")
    if corners_text is None:
        objective = _SI_OBJECTIVE.search(text)
        if not objective:
            return {}
        corners_text, scale = fovs["Deg"], float(objective.group(1))
    numbers = [float(v) for v in re.findall(_NUMBER, corners_text)]
    if len(numbers) < 4 or len(numbers) % 2:
        return {}
    xs, ys = numbers[0::2], numbers[1::2]
    width, height = (max(xs) - min(xs)) * scale, (max(ys) - min(ys)) * scale
    if not (width > 0 and height > 0):
        return {}
    return {"x": width / int(pixels.group(1)), "y": height / int(lines.group(1))}
