"""The distributed configuration: the same assets, their steps executed on a Dask cluster.

Selected by configuration, not code: `SYNAPFLOW_DASK_ADDRESS` (the scheduler,
e.g. `tcp://127.0.0.1:8786`), `SYNAPFLOW_DATA` (the data root every worker
sees) and a PostgreSQL instance (`deploy/postgres/dagster.yaml` as
`DAGSTER_HOME`). Needs the `scale` extra (dagster-dask, dagster-postgres).
`make scale-test` runs a lab through it and compares the feature store with
the embedded run.
"""

import dagster as dg

from ..environment import Environment
from .catalog import build_definitions
from .dask_executor import serialized_dask_executor
from .graph import PROCESS_SESSIONS, UPDATE_ANIMALS
from .resources import DetectionSettings


def _executor() -> dg.ExecutorDefinition:
    address = Environment.read().dask_address
    if not address:
        raise RuntimeError("SYNAPFLOW_DASK_ADDRESS is not set: the address of the Dask scheduler (tcp://host:port)")
    return serialized_dask_executor.configured({"address": address})


def distributed_definitions() -> dg.Definitions:
    """The definitions (`catalog.build_definitions`) whose jobs run each step as a task on the Dask cluster."""
    detection = DetectionSettings(source=Environment.read().detection_source)
    return build_definitions(resources={"detection": detection}, executor=_executor())


def process_sessions() -> dg.JobDefinition:
    """`process_sessions` on the cluster (a module-level function, so that workers can rebuild the job)."""
    return distributed_definitions().resolve_job_def(PROCESS_SESSIONS)


def update_animals() -> dg.JobDefinition:
    return distributed_definitions().resolve_job_def(UPDATE_ANIMALS)


def database_url() -> str:
    """The Dagster database of the distributed configuration, without its password."""
    env = Environment.read()
    return f"postgresql://{env.pg_user or '?'}@{env.pg_host or '?'}:{env.pg_port or '?'}/{env.pg_db or '?'}"


def open_distributed_instance() -> dg.DagsterInstance:
    """The PostgreSQL instance of `DAGSTER_HOME`, checked: an unreachable server or wrong credentials raise one
    clear error naming the database (never the password)."""
    secret = Environment.read().pg_password or "\0"
    _check_database(secret)
    try:
        instance = dg.DagsterInstance.get()
        instance.get_runs(limit=1)
    except Exception as error:
        reason = next((line.strip() for line in str(error).splitlines() if line.strip()), type(error).__name__)
        raise RuntimeError(
            f"cannot use the Dagster database {database_url()}: {reason.replace(secret, '***')}"
        ) from None
    return instance


def _check_database(secret: str) -> None:
    import psycopg2

    env = Environment.read()
    try:
        psycopg2.connect(
            host=env.pg_host,
            port=env.pg_port,
            user=env.pg_user,
            password=secret,
            dbname=env.pg_db,
            connect_timeout=10,
        ).close()
    except psycopg2.Error as error:
        reason = " ".join(str(error).split()).replace(secret, "***")
        raise RuntimeError(f"cannot use the Dagster database {database_url()}: {reason}") from None
