"""Metadata helpers shared by the assets: tables the UI shows as tables, rounded numbers."""

import json

import dagster as dg
import polars as pl

_TYPES: dict[pl.DataType | type[pl.DataType], str] = {
    pl.String: "string",
    pl.Int64: "int",
    pl.Int32: "int",
    pl.Float64: "float",
    pl.Boolean: "bool",
}


OWNERS = ["team:synapflow"]


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
