"""The data versions of the upstream assets a step reads."""

import dagster as dg


def latest_data_versions(
    context: dg.AssetExecutionContext, *keys: dg.AssetKey, unpartitioned: tuple[dg.AssetKey, ...] = ()
) -> dict[str, str | None]:
    """Latest data version of each upstream asset for this run's partition (keys in `unpartitioned` are read
    without a partition): what a step's own data version and the feature store's lineage columns are made of.
    Dagster records the same versions on each materialization (`dagster/input_data_version/...` tags)."""
    versions = {}
    for key in keys:
        records = context.instance.fetch_materializations(
            dg.AssetRecordsFilter(
                asset_key=key, asset_partitions=None if key in unpartitioned else [context.partition_key]
            ),
            limit=1,
        ).records
        tags = records[0].asset_materialization.tags if records and records[0].asset_materialization else {}
        versions[key.to_user_string()] = (tags or {}).get("dagster/data_version")
    return versions
