"""The environment variables SynapFlow reads, in one model: :meth:`Environment.read` reads them when asked (never
at import), so a command, a test or a Dagster run each see the environment they run in. An empty variable is an
unset one. ``docs/usage.md`` lists them (``test_environment`` keeps the list whole)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field


class Environment(BaseModel):
    """Where data, services and caches are, from the environment (field aliases are the variable names)."""

    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="ignore")

    data: str = Field("data", alias="SYNAPFLOW_DATA", description="data root: a folder or s3://bucket/prefix")
    landing: str = Field("", alias="SYNAPFLOW_LANDING", description="landing folder (default <data root>/landing)")
    store: str = Field(
        "",
        alias="SYNAPFLOW_STORE",
        description="feature store: a DuckDB file or ducklake:<catalog> (default <data root>/features.duckdb)",
    )
    store_data: str = Field("", alias="SYNAPFLOW_STORE_DATA", description="where a DuckLake store's Parquet files go")
    cache: str | None = Field(
        None,
        alias="SYNAPFLOW_CACHE",
        description="tracking pair cache, downloaded weights, ingest lock (default ~/.cache/synapflow)",
    )
    settle_seconds: float | None = Field(
        None, alias="SYNAPFLOW_SETTLE_SECONDS", description="how long a landed file must stay unchanged before ingest"
    )
    dask_address: str | None = Field(
        None, alias="SYNAPFLOW_DASK_ADDRESS", description="Dask scheduler of the distributed configuration"
    )
    detection_source: str = Field(
        "model", alias="SYNAPFLOW_DETECTION_SOURCE", description="detections of the distributed jobs: model or imported"
    )
    pg_host: str | None = Field(None, alias="SYNAPFLOW_PG_HOST", description="PostgreSQL of the Dagster instance")
    pg_port: str | None = Field(None, alias="SYNAPFLOW_PG_PORT", description="its port")
    pg_user: str | None = Field(None, alias="SYNAPFLOW_PG_USER", description="its user")
    pg_password: str | None = Field(None, alias="SYNAPFLOW_PG_PASSWORD", description="its password")
    pg_db: str | None = Field(None, alias="SYNAPFLOW_PG_DB", description="its database")
    shared_data: str | None = Field(
        None, alias="SYNAPFLOW_SHARED_DATA", description="annotated data for training (default ../shared/data)"
    )
    mlflow_ui: str | None = Field(None, alias="SYNAPFLOW_MLFLOW_UI", description="MLflow UI the links point to")
    failpoint: str | None = Field(None, alias="SYNAPFLOW_FAILPOINT", description="test hook: stop at this point")
    failpoint_once: str | None = Field(
        None, alias="SYNAPFLOW_FAILPOINT_ONCE", description="test hook: a file that makes the failpoint fire once"
    )
    failpoint_signal: str | None = Field(
        None, alias="SYNAPFLOW_FAILPOINT_SIGNAL", description="test hook: TERM to stop by SIGTERM"
    )
    mlflow_tracking_uri: str | None = Field(
        None, alias="MLFLOW_TRACKING_URI", description="MLflow server (default: SQLite under the data root)"
    )
    mlflow_registry_uri: str | None = Field(
        None, alias="MLFLOW_REGISTRY_URI", description="MLflow model registry (default: the tracking URI)"
    )
    dagster_home: str | None = Field(None, alias="DAGSTER_HOME", description="Dagster instance folder")
    s3_endpoint: str | None = Field(None, alias="AWS_ENDPOINT_URL_S3", description="S3-compatible endpoint")
    endpoint: str | None = Field(
        None, alias="AWS_ENDPOINT_URL", description="endpoint when AWS_ENDPOINT_URL_S3 is unset"
    )
    access_key_id: str = Field("", alias="AWS_ACCESS_KEY_ID", description="object-store key")
    secret_access_key: str = Field("", alias="AWS_SECRET_ACCESS_KEY", description="object-store secret")
    default_region: str | None = Field(None, alias="AWS_DEFAULT_REGION", description="object-store region")
    region: str | None = Field(None, alias="AWS_REGION", description="region when AWS_DEFAULT_REGION is unset")

    @classmethod
    def read(cls, environ: Mapping[str, str] | None = None) -> Environment:
        """The variables set (non-empty) in ``environ`` (default: the process environment)."""
        source = os.environ if environ is None else environ
        return cls.model_validate({name: source[name] for name in cls.variables() if source.get(name)})

    @classmethod
    def variables(cls) -> list[str]:
        """The variable names, in the model's order."""
        return [field.alias for field in cls.model_fields.values() if field.alias]

    @property
    def s3_endpoint_url(self) -> str | None:
        """The object store's endpoint (``AWS_ENDPOINT_URL_S3``, else ``AWS_ENDPOINT_URL``)."""
        return self.s3_endpoint or self.endpoint

    @property
    def s3_region(self) -> str:
        return self.default_region or self.region or "us-east-1"

    @property
    def cache_root(self) -> Path:
        return Path(self.cache) if self.cache else Path.home() / ".cache" / "synapflow"
