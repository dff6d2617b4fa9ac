"""What Slurm says of a sweep's jobs, asked the way that works on any cluster: ``squeue`` first, ``sacct``
when the job has left ``squeue``, and neither waited on forever.

``squeue --states=all`` answers from the controller's memory: every job until ``MinJobAge`` after it
ended (300 s by default), with or without accounting. ``sacct`` answers from the accounting database,
for as long as it keeps jobs, where there is one; where accounting is off it answers an error, and the
state is unknown: :func:`task_states` then says ``UNKNOWN`` and the caller decides from what the job left.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterable

ACTIVE = frozenset(
    {
        "PENDING",
        "RUNNING",
        "CONFIGURING",
        "COMPLETING",
        "SUSPENDED",
        "REQUEUED",
        "REQUEUE_HOLD",
        "REQUEUE_FED",
        "RESIZING",
        "SIGNALING",
        "STAGE_OUT",
        "STOPPED",
    }
)
"""States of a job that Slurm has not finished with (it may still run, or run again)."""
STARTED = frozenset({"RUNNING", "COMPLETING", "SIGNALING", "STAGE_OUT", "SUSPENDED", "STOPPED"})
"""States of a job that has started; one seen pending again after them was requeued."""
UNKNOWN = "UNKNOWN"
"""Neither ``squeue`` nor ``sacct`` knows the job (it left the controller's memory, and accounting is off)."""
QUERY_TIMEOUT_S = 30


def task_states(array_id: str, tasks: Iterable[str]) -> dict[str, str]:
    """Each task's state (``{"17_0": "RUNNING", "17_1": "OUT_OF_MEMORY"}``) for the tasks ``tasks`` of
    the job array ``array_id``; ``UNKNOWN`` where Slurm no longer knows it."""
    wanted = list(tasks)
    states = squeue_states(array_id)
    missing = [t for t in wanted if t not in states]
    if missing:
        states.update(sacct_states(array_id))
    return {t: states.get(t, UNKNOWN) for t in wanted}


def squeue_states(array_id: str) -> dict[str, str]:
    """``squeue``'s state of each task of the array it still holds, pending ones one by one."""
    out = run(["squeue", "--noheader", "--array", "--states=all", "--jobs", array_id, "--format=%i|%T"])
    return parse_states(out)


def sacct_states(array_id: str) -> dict[str, str]:
    """``sacct``'s state of each task of the array (none where accounting is off or holds nothing)."""
    out = run(
        ["sacct", "--noheader", "--parsable2", "--allocations", "--jobs", array_id, "--format=JobID,State"]
    )
    return parse_states(out)


def parse_states(out: str) -> dict[str, str]:
    """``{task: state}`` from ``<id>|<state>`` lines; a state's details are dropped.

    >>> parse_states("17_0|RUNNING\\n17_1|CANCELLED by 0\\n17_[2-3]|PENDING\\n")
    {'17_0': 'RUNNING', '17_1': 'CANCELLED'}
    """
    states: dict[str, str] = {}
    for line in out.splitlines():
        task, _, state = line.strip().partition("|")
        if task and state and "[" not in task:
            states[task] = state.split()[0].rstrip("+")
    return states


def run(command: list[str]) -> str:
    """The command's output; empty where it fails (no such command, accounting off, a slow controller)."""
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=QUERY_TIMEOUT_S)
    except (OSError, subprocess.SubprocessError):
        return ""
    return done.stdout if done.returncode == 0 else ""
