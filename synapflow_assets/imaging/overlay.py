"""Overlay pictures of boxes on a projection, for the UI."""

import io

import numpy as np
from PIL import Image, ImageDraw, ImageFont


def overlay_png(image: np.ndarray, boxes: np.ndarray, labels: list[str] | None = None, max_size: int = 512) -> bytes:
    """An 8-bit RGB PNG of ``image`` with ``boxes`` (n, 4: xmin, ymin, xmax, ymax in pixels) drawn on it."""
    scale = min(1.0, max_size / max(image.shape))
    small = np.asarray(
        Image.fromarray(image.astype(np.float32)).resize(
            (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
        )
    )
    low, high = np.percentile(small, [1, 99.8])
    grey = (np.clip((small - low) / max(high - low, 1e-6), 0, 1) * 255).astype(np.uint8)
    picture = Image.fromarray(grey).convert("RGB")
    draw = ImageDraw.Draw(picture)
    for k, box in enumerate(np.asarray(boxes, dtype=float).reshape(-1, 4) * scale):
        draw.rectangle(box.tolist(), outline=(255, 200, 0))
        if labels is not None:
            draw.text((box[2] + 1, box[1]), labels[k], fill=(0, 255, 255))
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()


STATUS_COLOURS = {
    "present": (255, 255, 0),
    "new": (0, 255, 255),
    "eliminated": (255, 60, 60),
    "unconfirmed": (160, 160, 160),
}


SESSION_COLOURS = {"previous": (255, 0, 255), "current": (0, 255, 0), "both": (255, 255, 255)}
"""Channel colours of :func:`two_session_png`: the earlier session magenta, the later green, both white."""


def legend_strip(width: int, entries: list[tuple[tuple[int, int, int], str, bool]]) -> Image.Image:
    """A black strip ``width`` pixels wide with one swatch and label per entry, wrapped onto as many rows as
    needed; an entry ``(colour, label, filled)`` draws a filled square (an image channel) or an outline (a box)."""
    font = ImageFont.load_default()
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    rows: list[list[tuple[int, tuple[int, int, int], str, bool]]] = [[]]
    x = 4
    for colour, label, filled in entries:
        size = 14 + int(measure.textlength(label, font=font)) + 10
        if rows[-1] and x + size > width:
            rows.append([])
            x = 4
        rows[-1].append((x, colour, label, filled))
        x += size
    strip = Image.new("RGB", (width, 14 * len(rows) + 4), (0, 0, 0))
    draw = ImageDraw.Draw(strip)
    for k, row in enumerate(rows):
        top = 3 + 14 * k
        for x, colour, label, filled in row:
            draw.rectangle((x, top, x + 9, top + 9), outline=colour, fill=colour if filled else None, width=2)
            draw.text((x + 13, top - 1), label, fill=(230, 230, 230), font=font)
    return strip


def two_session_png(
    previous: np.ndarray,
    current: np.ndarray,
    boxes: np.ndarray,
    labels: list[str],
    statuses: list[str] | None = None,
    max_size: int = 512,
    *,
    names: tuple[str, str] = ("previous session", "current session"),
    legend: bool = True,
) -> bytes:
    """Previous projection (registered into the current frame) in magenta, current in green, boxes coloured by
    status (:data:`STATUS_COLOURS`: present yellow, new cyan, eliminated red) and labelled (e.g. track ids),
    with a legend of those colours below the picture (``names`` label the two sessions; the statuses listed
    are those drawn)."""

    def scaled(image: np.ndarray) -> np.ndarray:
        small = np.asarray(
            Image.fromarray(image.astype(np.float32)).resize(
                (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
            )
        )
        low, high = np.percentile(small, [1, 99.8])
        return (np.clip((small - low) / max(high - low, 1e-6), 0, 1) * 255).astype(np.uint8)

    scale = min(1.0, max_size / max(current.shape))
    a, b = scaled(previous), scaled(current)
    picture = Image.fromarray(np.stack([a, b, a], axis=-1))
    draw = ImageDraw.Draw(picture)
    statuses = statuses or ["present"] * len(labels)
    for box, label, status in zip(
        np.asarray(boxes, dtype=float).reshape(-1, 4) * scale, labels, statuses, strict=False
    ):
        colour = STATUS_COLOURS.get(status, (255, 255, 255))
        draw.rectangle(box.tolist(), outline=colour)
        draw.text((box[0], box[3] + 1), label, fill=colour)
    if legend:
        drawn = [s for s in STATUS_COLOURS if s in set(statuses)]
        strip = legend_strip(
            picture.width,
            [
                (SESSION_COLOURS["previous"], names[0], True),
                (SESSION_COLOURS["current"], names[1], True),
                (SESSION_COLOURS["both"], "both", True),
                *((STATUS_COLOURS[s], s, False) for s in drawn),
            ],
        )
        framed = Image.new("RGB", (picture.width, picture.height + strip.height))
        framed.paste(picture, (0, 0))
        framed.paste(strip, (0, picture.height))
        picture = framed
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()
