"""The papers' grids through a Slurm queue against this machine's parallel launcher: the same verdicts and
records, and the wall time of each.

    tests/slurm/cluster.sh up            # the one-node test cluster (one job per CPU)
    python benchmarks/reproduce_queue.py --size small --out /tmp/queue   [--only count,upup]

Runs ``python -m alignsearch.reproduce`` twice into ``<out>/slurm`` and ``<out>/local``, each with a zoo of
its own (``<out>/zoo-slurm``, ``<out>/zoo-local``: both train their task models, as a first run does), first through
Slurm (``hardware=slurm``, one CPU per job: every grid's jobs queued at once) and then with
``hardware=local_parallel hydra.launcher.n_jobs=<CPUs>`` (one grid after another). Prints each one's
wall time, whether the verdict lines of ``FINDINGS.md`` and every job's records are equal, and writes
the same as ``<out>/reproduce_queue.json``. A run that finds its folder done takes no time: use a fresh
``--out`` to measure.

Measured on the two-CPU test cluster at ``--size small`` (all 8 grids, 69 jobs): 1678 s through Slurm
against 1769 s with ``local_parallel``, the same verdicts, every job's records identical.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from grid_cost import job_runs  # benchmarks/, beside this script

CLUSTER = Path(__file__).resolve().parents[1] / "tests" / "slurm" / "cluster.sh"


def on_the_test_cluster() -> list[str]:
    """The settings a sweep takes to run on the test cluster (``cluster.sh overrides``)."""
    return subprocess.run(["bash", str(CLUSTER), "overrides"], capture_output=True, text=True).stdout.split()


def reproduce(out: Path, zoo: Path, size: str, only: str | None, launcher: list[str]) -> float:
    """Run the grids into ``out``; their wall time in seconds."""
    command = [sys.executable, "-m", "alignsearch.reproduce", "--size", size, "--out", str(out), *launcher]
    command += ["--only", only] if only else []
    started = time.perf_counter()
    subprocess.run(
        command, env={**os.environ, "ALIGNSEARCH_ZOO": str(zoo), "WANDB_MODE": "offline"}, check=False
    )
    return time.perf_counter() - started


def verdicts(out: Path) -> list[str]:
    """The verdict lines of ``FINDINGS.md`` (``**supported**: ...``)."""
    return [line for line in (out / "FINDINGS.md").read_text().splitlines() if line.startswith("**")]


def records(out: Path) -> dict[str, list]:
    """Every job's records by its grid and folder (the runs :func:`grid_cost.job_runs` counts)."""
    return {str(job): json.loads(path.read_text())["records"] for job, path in job_runs(out).items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", default="small")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--only", default=None)
    args = parser.parse_args()
    workers = len(os.sched_getaffinity(0))
    local = ["hardware=local_parallel", f"hydra.launcher.n_jobs={workers}"]
    seconds = {
        "slurm": reproduce(
            args.out / "slurm", args.out / "zoo-slurm", args.size, args.only, on_the_test_cluster()
        ),
        "local": reproduce(args.out / "local", args.out / "zoo-local", args.size, args.only, local),
    }
    same_verdicts = verdicts(args.out / "slurm") == verdicts(args.out / "local")
    slurm_records, local_records = records(args.out / "slurm"), records(args.out / "local")
    differing = sorted(
        k for k in slurm_records.keys() | local_records.keys() if slurm_records.get(k) != local_records.get(k)
    )
    summary = {
        "size": args.size,
        "only": args.only,
        "workers": workers,
        "seconds": {k: round(v, 1) for k, v in seconds.items()},
        "jobs": len(slurm_records),
        "same_verdicts": same_verdicts,
        "jobs_with_different_records": differing,
        "load_average_after": os.getloadavg()[0],
    }
    (args.out / "reproduce_queue.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
