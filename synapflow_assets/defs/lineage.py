"""Recording which upstream versions an asset partition was computed from."""

from typing import cast

import dagster as dg


def upstream_versions(
    context: dg.AssetExecutionContext, *keys: dg.AssetKey, unpartitioned: tuple[dg.AssetKey, ...] = ()
) -> dg.JsonMetadataValue:
    """Latest data version of each upstream asset for this run's partition, as metadata.

    Stored on every materialization as `upstream_versions`, so that
    `pipeline.stale_assets` can tell when an upstream changed since. Keys in
    `unpartitioned` are read without a partition.
    """
    versions = {}
    for key in keys:
        records = context.instance.fetch_materializations(
            dg.AssetRecordsFilter(
                asset_key=key, asset_partitions=None if key in unpartitioned else [context.partition_key]
            ),
            limit=1,
        ).records
        tags = records[0].asset_materialization.tags if records else {}
        versions[key.to_user_string()] = (tags or {}).get("dagster/data_version")
    return dg.MetadataValue.json(versions)


def latest_data_versions(context: dg.AssetExecutionContext, *keys: dg.AssetKey) -> dict[str, str | None]:
    """Latest data version of each upstream asset for this run's partition."""
    return cast(dict[str, str | None], upstream_versions(context, *keys).value)
