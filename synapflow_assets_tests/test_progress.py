"""Progress in a log (stderr not a terminal): plain lines, and a heartbeat while a long step runs."""

import time

from synapflow_assets.progress import Progress


def test_a_log_gets_a_line_at_least_every_heartbeat_while_a_step_runs(capsys):
    with Progress(3, "partitions", unit="partition", heartbeat_s=0.2) as bar:
        assert bar.bar.disable  # pytest's stderr is no terminal
        bar.step(1, "m1/day04")
        bar.line("  running m1/day04")
        time.sleep(0.7)
    lines = capsys.readouterr().out.splitlines()
    beats = [line for line in lines if line.startswith("  partitions: 1/3, running m1/day04 for ")]
    assert lines[0] == "  running m1/day04" and 2 <= len(beats) <= 4, lines


def test_no_heartbeat_while_lines_keep_coming(capsys):
    with Progress(0, "inputs", heartbeat_s=0.3) as bar:
        for k in range(5):
            bar.step(k, f"input {k}")
            bar.line(f"input {k} done")
            time.sleep(0.1)
    assert capsys.readouterr().out.splitlines() == [f"input {k} done" for k in range(5)]
