"""Operators that combine per-layer values of a 3D spine into one value."""

import numpy as np
import polars as pl

#: Names accepted by :func:`combine_layers`.
OPERATORS = ("median", "mean", "max", "inlier_median")


def operator_expr(column: str, operator: str = "median") -> pl.Expr:
    """Polars aggregation of a per-layer column over the layers of a spine.

    Parameters
    ----------
    column : str
        Column with one value per layer (NaN / null values are ignored).
    operator : {"median", "mean", "max", "inlier_median"}
        ``inlier_median`` is the median of the values within one standard
        deviation of their mean (the plain median when fewer than 3 values).

    Returns
    -------
    polars.Expr
        An aggregation for ``group_by(...).agg``.
    """
    v = pl.col(column).fill_nan(None).drop_nulls()
    if operator == "median":
        return v.median()
    if operator == "mean":
        return v.mean()
    if operator == "max":
        return v.max()
    if operator == "inlier_median":
        inlier = (v - v.mean()).abs() <= v.std(ddof=0) + 1e-12
        return pl.when(v.len() >= 3).then(v.filter(inlier).median()).otherwise(v.median())
    raise ValueError(f"unknown operator {operator!r}; use one of {OPERATORS}")


def combine_layers(table: pl.DataFrame, column: str, operator: str = "median", by: str = "id") -> pl.DataFrame:
    """One value per spine: ``operator`` over the layers of each ``by`` group.

    Returns
    -------
    polars.DataFrame
        ``by`` and ``column`` (Float64, NaN where a spine has no finite value).
    """
    out = table.group_by(by).agg(operator_expr(column, operator).cast(pl.Float64).alias(column))
    return out.with_columns(pl.col(column).fill_null(np.nan)).sort(by)
