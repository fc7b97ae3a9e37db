"""The inputs of ``detect``: PNG or TIFF layers and stacks, read as ``ingest`` reads them."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def read_input(
    path: Path, *, channel: int | None = None, pixel_size_um: float | None = None
) -> tuple[np.ndarray, bool, list[str], float | None]:
    """Read one input of ``detect``: PNG / 2D TIFF -> one layer; multi-layer TIFF or a folder of PNG layers -> stack.

    Colour images are read as grey exactly as ``ingest`` reads them, and the pixel size comes from the same
    sources (``--pixel-size``, the file, else the estimate from the dendrite width).

    Parameters
    ----------
    path : Path
    channel : int, optional
        Channel of multi-channel TIFFs (default: the brightest).
    pixel_size_um : float, optional
        Pixel size to use instead of the file's.

    Returns
    -------
    (ndarray, bool, list of str, float or None)
        The layer or stack, whether it is a stack, notes on how it was read, and its pixel size (None: unknown).
    """
    from ..imaging.readers import PNG_IMAGE, read_volume, reader_for

    notes = []
    if path.is_file() and reader_for(path) is PNG_IMAGE:
        from PIL import Image

        from ..imaging.colour import pil_to_grey
        from ..imaging.scale import estimate_pixel_size

        with Image.open(path) as image:
            array, note = pil_to_grey(image)
        notes = [note] if note else []
        if pixel_size_um is None:
            pixel_size_um = estimate_pixel_size(array).pixel_size_um
            notes.append(
                f"pixel size {pixel_size_um:.3g} um estimated from the dendrite width"
                if pixel_size_um
                else "no pixel size: none stated and no dendrite to estimate it from"
            )
        return array, False, notes, pixel_size_um
    volume = read_volume(path, min_layers=1, channel=channel, pixel_size_um=pixel_size_um)
    if volume.metadata.get("colour_note"):
        notes.append(volume.metadata["colour_note"])
    if volume.metadata.get("n_channels", 1) > 1:
        notes.append(
            f"channel {volume.metadata['channel']} of {volume.metadata['n_channels']} "
            f"({volume.metadata['channel_choice']})"
        )
    pixel = volume.voxel_size_um[2] if volume.voxel_size_source != "default" else None
    if volume.voxel_size_source == "estimated":
        notes.append(f"pixel size {pixel:.3g} um estimated from the dendrite width")
    array = np.asarray(volume.data)
    if array.ndim == 3 and array.shape[0] == 1:
        return array[0], False, notes, pixel
    return array, True, notes, pixel
