"""Overlay pictures of boxes on a projection, for the UI."""

import io

import numpy as np
from PIL import Image, ImageDraw


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


def two_session_png(
    previous: np.ndarray,
    current: np.ndarray,
    boxes: np.ndarray,
    labels: list[str],
    statuses: list[str] | None = None,
    max_size: int = 512,
) -> bytes:
    """Previous projection (registered into the current frame) in magenta, current in green, boxes coloured by
    status (:data:`STATUS_COLOURS`: present yellow, new cyan, eliminated red) and labelled (e.g. track ids)."""

    def scaled(image):
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
    for box, label, status in zip(np.asarray(boxes, dtype=float).reshape(-1, 4) * scale, labels, statuses):
        colour = STATUS_COLOURS.get(status, (255, 255, 255))
        draw.rectangle(box.tolist(), outline=colour)
        draw.text((box[0], box[3] + 1), label, fill=colour)
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()
