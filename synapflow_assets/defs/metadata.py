"""Metadata helpers shared by the assets: tables the UI shows as tables, rounded numbers."""
import dagster as dg
import polars as pl

_TYPES = {pl.String: "string", pl.Int64: "int", pl.Int32: "int", pl.Float64: "float", pl.Boolean: "bool"}


def table_metadata(table: pl.DataFrame) -> dg.TableMetadataValue:
    """A polars table as a Dagster table (shown as a table in the UI)."""
    schema = dg.TableSchema(columns=[dg.TableColumn(name, _TYPES.get(dtype, "string")) for name, dtype in table.schema.items()])
    return dg.MetadataValue.table(records=[dg.TableRecord(row) for row in table.iter_rows(named=True)], schema=schema)


def rounded(value, digits: int = 3) -> float | None:
    """A float for metadata, rounded (None stays None)."""
    return None if value is None else round(float(value), digits)
