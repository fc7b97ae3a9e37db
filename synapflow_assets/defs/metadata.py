"""Metadata helpers shared by the assets: tables the UI shows as tables, rounded numbers, pictures."""

import base64
import io
import json
from typing import Any

import dagster as dg
import polars as pl
from PIL import Image

from ..store.locations import is_remote, picture_path, write_bytes

_TYPES: dict[pl.DataType | type[pl.DataType], str] = {
    pl.String: "string",
    pl.Int64: "int",
    pl.Int32: "int",
    pl.Float64: "float",
    pl.Boolean: "bool",
}


OWNERS = ["team:synapflow"]


def materialized(context: dg.AssetExecutionContext, *, metadata: dict[str, Any], **result: Any) -> dg.MaterializeResult:
    """The result of an asset, its metadata attached to the materialization only (``add_asset_metadata``): returned
    in the result, Dagster would store it twice, in the step's output event and in the materialization."""
    context.add_asset_metadata(metadata)
    return dg.MaterializeResult(**result)


def labels(stage: str) -> dict:
    """Owners and tags of an asset: the imaging modality and its stage in the method."""
    return {"owners": OWNERS, "tags": {"modality": "two-photon", "stage": stage}}


def column_schema(table: pl.DataFrame) -> dg.TableSchema:
    """The columns of a polars table as a Dagster schema (`dagster/column_schema`)."""
    return dg.TableSchema(
        columns=[dg.TableColumn(name, _TYPES.get(dtype, str(dtype).lower())) for name, dtype in table.schema.items()]
    )


def table_metadata(table: pl.DataFrame) -> dg.TableMetadataValue:
    """A polars table as a Dagster table (shown as a table in the UI)."""
    return dg.MetadataValue.table(
        records=[dg.TableRecord(row) for row in table.iter_rows(named=True)], schema=column_schema(table)
    )


def rounded(value, digits: int = 3) -> float | None:
    """A float for metadata, rounded (None stays None)."""
    return None if value is None else round(float(value), digits)


def settings_metadata(fingerprint: str) -> dg.JsonMetadataValue:
    """The settings a partition was computed with (a sorted-JSON fingerprint), as JSON metadata."""
    return dg.MetadataValue.json(json.loads(fingerprint))


def settings_fingerprint(value) -> str | None:
    """The fingerprint back from `settings` metadata (JSON, or the string older runs recorded)."""
    return value if value is None or isinstance(value, str) else json.dumps(value, sort_keys=True)


PREVIEW_BYTES = 8_000
"""The most an inline preview takes (before base64). The event log holds it twice (the step's output and the
materialization), so a picture costs at most about 21 kB of event log; the full picture is a file."""

PREVIEW_WIDTH = 256
"""The width of the preview of an image (overlays); plots pass their own width (see `preview`)."""


def _encoded(image: Image.Image, kind: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=kind, optimize=True, **options)
    return buffer.getvalue()


def preview(png: bytes, max_width: int = PREVIEW_WIDTH, max_bytes: int = PREVIEW_BYTES) -> tuple[bytes, str]:
    """A small copy of a picture for the UI and its MIME type: at most `max_width` wide (never enlarged), a
    16-colour PNG when that fits in `max_bytes` (plots stay sharp), else the best JPEG quality that fits
    (projections), else the picture shrunk until it fits."""
    with Image.open(io.BytesIO(png)) as opened:
        image = opened.convert("RGB")
    width = min(image.width, max_width)
    while True:
        if width < image.width:
            image = image.resize((width, max(1, round(image.height * width / image.width))), Image.Resampling.LANCZOS)
        data = _encoded(image.quantize(colors=16), "PNG")
        if len(data) <= max_bytes:
            return data, "image/png"
        for quality in (60, 50, 40, 30, 20):
            data = _encoded(image, "JPEG", quality=quality)
            if len(data) <= max_bytes:
                return data, "image/jpeg"
        width = image.width * 3 // 4
        if width < 16:  # a degenerate picture (a thin strip): what fits best
            return data, "image/jpeg"


def picture_metadata(
    name: str, png: bytes, title: str, output: Any, *, preview_width: int | None = PREVIEW_WIDTH
) -> dict[str, dg.MetadataValue]:
    """Write a picture as a PNG file beside an output (`store.locations.picture_path`: one path per partition,
    so a rerun replaces it) and the metadata that show it: a small inline preview (`preview`, shown by the UI)
    under `name` and the link to the file under `<name>_file`; with `preview_width` None only the link, under
    `name`. The link is a path for a local data root, a URL on an object store."""
    path = write_bytes(png, picture_path(output, name))
    link = dg.MetadataValue.url(str(path)) if is_remote(path) else dg.MetadataValue.path(str(path))
    if preview_width is None:
        return {name: link}
    data, kind = preview(png, preview_width)
    shown = dg.MetadataValue.md(f"![{title}](data:{kind};base64,{base64.b64encode(data).decode()})")
    return {name: shown, f"{name}_file": link}
