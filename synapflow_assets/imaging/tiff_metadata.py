"""Voxel size, channel count and acquisition time from TIFF metadata.

Three flavours of TIFF metadata are understood:

* OME-XML (``Pixels`` ``PhysicalSizeX/Y/Z`` with their units and the
  ``Image`` ``AcquisitionDate``);
* ImageJ (``XResolution``/``YResolution`` tags in pixels per unit, the
  ``spacing`` and ``unit`` entries of the ImageJ description);
* ScanImage (``key = value`` settings in the description, software or artist
  tags, e.g. ``SI.hStackManager.stackZStepSize = 1`` and
  ``SI.hChannels.channelSave = [1;2]``, or ScanImage 3's ``state.acq.*``, and
  the ``FrameData`` of modern ScanImage files), read by tifffile into a dict.

Every function returns only what the metadata states; the caller decides the
priority between sources. Sizes are in micrometres.
"""

from __future__ import annotations

import contextlib
import math
import re
import xml.etree.ElementTree as ET
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import tifffile

# Length units (lower-cased) -> micrometres per unit.
_UNIT_TO_UM = {
    "um": 1.0,
    "µm": 1.0,
    "μm": 1.0,
    "\\u00b5m": 1.0,
    "micron": 1.0,
    "microns": 1.0,
    "micrometer": 1.0,
    "micrometre": 1.0,
    "micrometers": 1.0,
    "nm": 1e-3,
    "nanometer": 1e-3,
    "nanometre": 1e-3,
    "mm": 1e3,
    "millimeter": 1e3,
    "cm": 1e4,
    "m": 1e6,
    "pm": 1e-6,
    "å": 1e-4,
    "angstrom": 1e-4,
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


def imagej_voxel_size(imagej_metadata: dict | None, page: tifffile.TiffPage) -> dict[str, float]:
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
        with contextlib.suppress(TypeError, ValueError):
            sizes["z"] = float(spacing) * factor
    return sizes


_SI_MARK = re.compile(r"\bSI\d*\.|scanimage|state\.acq\.", re.IGNORECASE)


def scanimage_settings(tif: tifffile.TiffFile) -> dict | None:
    """ScanImage settings of a TIFF as one dict, or None when it is not a ScanImage file.

    Parameters
    ----------
    tif : tifffile.TiffFile

    Returns
    -------
    dict or None
        ``key = value`` lines of the description, software and artist tags of
        the first page (:func:`tifffile.matlabstr2py`), then the ``FrameData``
        of modern ScanImage files (:attr:`tifffile.TiffFile.scanimage_metadata`);
        the first source stating a key wins. None when no tag names ScanImage
        (``SI.``, ``scanimage`` or ``state.acq.``) and tifffile does not see a
        ScanImage file.
    """
    import tifffile

    page = tif.pages.first
    texts = [
        item.value
        for item in (page.tags.get(tag) for tag in ("ImageDescription", "Software", "Artist"))
        if item is not None and isinstance(item.value, str)
    ]
    is_scanimage = getattr(tif, "is_scanimage", False)
    if not (is_scanimage or any(_SI_MARK.search(text) for text in texts)):
        return None
    settings: dict = {}
    for text in texts:
        try:
            parsed = tifffile.matlabstr2py(text + "\n")
        except Exception:
            continue
        for key, value in parsed.items():
            settings.setdefault(key, value)
    if is_scanimage:
        try:
            frame = (tif.scanimage_metadata or {}).get("FrameData", {})
        except Exception:
            frame = {}
        for key, value in frame.items():
            settings.setdefault(key, value)
    return settings


def _setting(settings: dict, *names: str) -> Any:
    """The value of the first key (in ``settings`` order) that is one of ``names`` or ends with ``.name``."""
    for key, value in settings.items():
        if any(key == name or key.endswith("." + name) for name in names):
            return value
    return None


def _numbers(value: Any) -> list[float]:
    if isinstance(value, (list, tuple)):
        return [number for item in value for number in _numbers(item)]
    if isinstance(value, bool):
        return []
    try:
        return [float(value)]
    except (TypeError, ValueError):
        return []


def scanimage_info(settings: dict | None) -> dict:
    """Z step, pixel size and saved channel count from ScanImage settings.

    Parameters
    ----------
    settings : dict or None
        As returned by :func:`scanimage_settings`.

    Returns
    -------
    dict
        Keys (each only when found): ``is_scanimage`` (bool), ``z`` (step in
        µm, absolute value, the actual step preferred), ``y`` and ``x`` (pixel
        size in µm: the imaging field of view, ``imagingFovUm`` or else
        ``imagingFovDeg`` times ``objectiveResolution``, over
        ``linesPerFrame`` and ``pixelsPerLine``), ``n_channels`` (int).
    """
    if settings is None:
        return {}
    info: dict = {"is_scanimage": True}
    step = _numbers(_setting(settings, "actualStackZStepSize")) or _numbers(
        _setting(settings, "stackZStepSize", "state.acq.zStepSize")
    )
    if step:
        info["z"] = abs(step[0])
    channels = _setting(settings, "hChannels.channelSave")
    if channels is not None:
        if _numbers(channels):
            info["n_channels"] = len(_numbers(channels))
    else:
        legacy = _numbers(_setting(settings, "state.acq.numberOfChannelsSave"))
        if legacy:
            info["n_channels"] = int(legacy[0])
    info.update(_scanimage_pixel_size(settings))
    return info


def _scanimage_pixel_size(settings: dict) -> dict[str, float]:
    pixels = _numbers(_setting(settings, "hRoiManager.pixelsPerLine"))
    lines = _numbers(_setting(settings, "hRoiManager.linesPerFrame"))
    fov, scale = _setting(settings, "hRoiManager.imagingFovUm"), 1.0
    if fov is None:
        fov = _setting(settings, "hRoiManager.imagingFovDeg")
        objective = _numbers(_setting(settings, "SI.objectiveResolution"))
        if fov is None or not objective:
            return {}
        scale = objective[0]
    corners = _numbers(fov)
    if not (pixels and lines) or len(corners) < 4 or len(corners) % 2:
        return {}
    xs, ys = corners[0::2], corners[1::2]
    width, height = (max(xs) - min(xs)) * scale, (max(ys) - min(ys)) * scale
    if not (width > 0 and height > 0):
        return {}
    return {"x": width / int(pixels[0]), "y": height / int(lines[0])}
