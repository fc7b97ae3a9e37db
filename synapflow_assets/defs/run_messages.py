"""One line per failed step or failed asset check of a run, for the console and the daemon's log."""

import dagster as dg


def step_failure_line(failure: dg.DagsterEvent, run_id: str) -> str:
    """One line for a failed step: a ``Failure``'s description, or the first line of an unexpected
    error with its type and where the full traceback is."""
    if failure.step_failure_data.user_failure_data is not None:
        description = failure.step_failure_data.user_failure_data.description or "failed"
        return description.strip().splitlines()[0]
    error = failure.step_failure_data.error
    if error is None:
        return f"failed (see run {run_id} in the Dagster UI)"
    cause = error.cause if error.cls_name == "DagsterExecutionStepExecutionError" and error.cause else error
    lines = [line.strip() for line in cause.message.strip().splitlines() if line.strip()]
    text = lines[0] if lines else cause.cls_name or "error"
    return f"{text} (unexpected {cause.cls_name}: full traceback in run {run_id} in the Dagster UI)"


def failure_message(result: dg.ExecuteInProcessResult) -> str:
    """One line: the error of the first failed step of a run, and where its full log is."""
    failure = next((e for e in result.all_events if e.is_step_failure), None)
    if failure is None:
        return f"run failed (see run {result.run_id} in the Dagster UI)"
    return step_failure_line(failure, result.run_id)


def failed_checks(result: dg.ExecuteInProcessResult, partition: str) -> list[str]:
    """One line per asset check of a run that did not pass: ``partition: asset check: why``."""
    lines = []
    for event in result.all_events:
        if event.event_type != dg.DagsterEventType.ASSET_CHECK_EVALUATION:
            continue
        evaluation = event.event_specific_data
        if isinstance(evaluation, dg.AssetCheckEvaluation) and not evaluation.passed:
            why = evaluation.description or ", ".join(f"{k}={v.value}" for k, v in evaluation.metadata.items())
            lines.append(f"{partition}: {evaluation.asset_key.to_user_string()} check {evaluation.check_name}: {why}")
    return lines
