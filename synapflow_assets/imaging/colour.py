"""Colour images read as grey, the same way by ``ingest`` and ``detect``.

A fluorescence image saved in colour is a grey image under a colour look-up
table (green, magenta, or grey as R = G = B), so the signal is the largest of
its colour values: the maximum over red, green and blue (alpha ignored) gives
the grey image back for any single-hue table. The conversion is recorded in
the volume's metadata (``colour_note``), never silent.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from PIL import Image

COLOUR_NOTE = "colour image read as grey: the maximum of its red, green and blue values (alpha ignored)"

#: PIL modes of colour PNGs and how each becomes an RGB(A) or grey array first.
COLOUR_MODES = {"RGB": None, "RGBA": None, "P": "RGBA", "PA": "RGBA", "LA": "L", "CMYK": "RGB", "YCbCr": "RGB"}


def colour_to_grey(samples: np.ndarray) -> np.ndarray:
    """(..., 3 or 4) colour samples to (...) grey values of the same dtype: the maximum over R, G, B."""
    samples = np.asarray(samples)
    if samples.shape[-1] not in (3, 4):
        raise ValueError(f"expected 3 or 4 colour samples on the last axis, got shape {samples.shape}")
    return samples[..., :3].max(axis=-1)


def pil_to_grey(image: Image.Image) -> tuple[np.ndarray, str | None]:
    """A PIL image as a grey array, and the conversion note when it was in colour (None for grey)."""
    if image.mode not in COLOUR_MODES:
        return np.asarray(image), None
    target = COLOUR_MODES[image.mode]
    array = np.asarray(image.convert(target) if target else image)
    return (array if array.ndim == 2 else colour_to_grey(array)), COLOUR_NOTE
