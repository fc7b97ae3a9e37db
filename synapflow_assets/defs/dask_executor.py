"""dagster-dask's executor with its task arguments serialized by Dagster's own serdes.

dagster-dask 0.29 hands Dagster's records (`DagsterRun` holds a
`RunOpConcurrency` record) to `Client.submit`; dask walks named tuples in
task arguments and Dagster records forbid iteration, so every submit fails.
Here each step is submitted as one serdes string and its events come back the
same way; placement and the rescheduling of a lost worker's task stay Dask's.
Only an `existing` cluster is supported.

A step is submitted once the steps it depends on have finished, never with
their futures as arguments: Dask recomputes a lost result that a pending task
still needs, so a worker killed during a detection step would otherwise also
rerun the raw_volume step whose events it held, rewriting the volume while the
retried detection reads it.
"""

import time

import dagster as dg
import dask.distributed
from dagster._core.errors import raise_execution_interrupts
from dagster._core.execution.api import create_execution_plan, execute_plan
from dagster._core.instance import DagsterInstance
from dagster._serdes import deserialize_value, serialize_value
from dagster._utils import iterate_with_context
from dagster._utils.hosted_user_process import recon_job_from_origin
from dagster_dask.executor import DaskExecutor, get_dask_resource_requirements


def run_steps_on_worker(payload: str) -> str:
    """Execute the steps of `payload` in this worker process; their events, serialized."""
    request: dict = deserialize_value(payload, as_type=dict)
    dagster_run = request["run"]
    selection = dagster_run.resolved_op_selection
    job = _kept(
        ("job", serialize_value(request["origin"]), tuple(sorted(selection or ()))),
        lambda: recon_job_from_origin(request["origin"]).get_subset(op_selection=selection),
    )
    instance = _kept(
        ("instance", serialize_value(request["instance"])), lambda: DagsterInstance.from_ref(request["instance"])
    )
    plan = create_execution_plan(
        job, run_config=request["run_config"], step_keys_to_execute=request["steps"], known_state=request["known_state"]
    )
    pools = {key: plan.get_step_by_key(key).pool for key in request["steps"]}
    for key, pool in pools.items():
        if pool:
            claim_slot(instance, pool, dagster_run.run_id, key)
    try:
        events = list(execute_plan(plan, job, instance, dagster_run, run_config=request["run_config"]))
    finally:
        for key, pool in pools.items():
            if pool:
                instance.event_log_storage.free_concurrency_slot_for_step(dagster_run.run_id, key)
    return serialize_value(events)


_KEPT: dict = {}


def _kept(key, make):
    """One job and one instance per worker process, reused by its later steps (rebuilding them per step
    cost about 0.7 s)."""
    if key not in _KEPT:
        _KEPT[key] = make()
    return _KEPT[key]


def claim_slot(instance: DagsterInstance, pool: str, run_id: str, step_key: str, *, poll_seconds: float = 0.5) -> None:
    """Wait for a slot of `pool` (e.g. one feature-store writer at a time). A step retried after its worker
    died finds its slot still claimed under the same run and step, so it never waits for itself."""
    storage = instance.event_log_storage
    if pool not in storage.get_concurrency_keys():
        storage.initialize_concurrency_limit_to_default(pool)
    while not storage.claim_concurrency_slot(pool, run_id, step_key).is_claimed:
        time.sleep(poll_seconds)


class SerializedDaskExecutor(DaskExecutor):
    def execute(self, plan_context, execution_plan):
        if self.cluster_type != "existing":
            raise dg.DagsterInvariantViolationError("SerializedDaskExecutor runs on an existing Dask cluster only")
        instance_ref = plan_context.instance.get_ref()
        origin = plan_context.reconstructable_job.get_python_origin()
        steps = {step.key: step for level in execution_plan.get_steps_to_execute_by_level() for step in level}
        upstream = {
            key: {k for step_input in step.step_inputs for k in step_input.dependency_keys if k in steps}
            for key, step in steps.items()
        }
        finished: set[str] = set()
        submitted: dict = {}

        def submit_ready(client) -> list:
            ready = [key for key in steps if key not in submitted and upstream[key] <= finished]
            for key in ready:
                payload = serialize_value(
                    {
                        "origin": origin,
                        "run": plan_context.dagster_run,
                        "run_config": plan_context.run_config,
                        "steps": [key],
                        "instance": instance_ref,
                        "known_state": execution_plan.known_state,
                    }
                )
                submitted[key] = client.submit(
                    run_steps_on_worker,
                    payload,
                    key=f"{plan_context.dagster_run.run_id}.{key}",
                    pure=False,
                    resources=get_dask_resource_requirements(steps[key].tags),
                )
            return [submitted[key] for key in ready]

        with dask.distributed.Client(**self.build_dict(plan_context.job_name)) as client:
            completed = dask.distributed.as_completed(with_results=True)
            for future in submit_ready(client):
                completed.add(future)
            for future, result in iterate_with_context(raise_execution_interrupts, completed):
                finished.add(future.key.removeprefix(f"{plan_context.dagster_run.run_id}."))
                future.release()
                yield from deserialize_value(result)
                for new in submit_ready(client):
                    completed.add(new)


@dg.executor(name="dask", config_schema={"address": str})
def serialized_dask_executor(init_context):
    """Run each step as a task on the Dask scheduler at `address`."""
    return SerializedDaskExecutor("existing", {"address": init_context.executor_config["address"]})
