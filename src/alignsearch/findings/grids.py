"""The grids behind the claims: which ``conf/experiment`` preset each is, what each ``--size`` runs, how a
grid is run (a sweep of ``run_alignment`` into ``<out>/<grid>``, resumable) and what its folder holds (its
rows, with its report written beside them)."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from alignsearch.findings.stats import Rows
from alignsearch.report import NothingToReport, collect, report

GRIDS = {
    "count": "findings_count",
    "upup": "upup_vs_updown",
    "training": "iia_over_training",
    "transformer": "transformer_layers",
    "variants": "findings_variants",
    "mas": "findings_mas",
    "n_units": "findings_n_units",
    "divergence": "findings_divergence",
}
"""Grid name (its folder under ``--out``) -> its ``conf/experiment`` preset; ``--only`` takes either."""
SIZES = {
    "small": "1 to 3 seeds, 300 alignment steps: 69 jobs, 29 min on 2 CPU cores from an empty zoo with"
    " hardware=local_parallel hydra.launcher.n_jobs=2 (14 min with the task models in the zoo and one"
    " alignment seed a model: docs/findings-small.md)",
    "full": "the papers' sizes, 3 to 5 seeds, 1000 alignment steps: 196 min on 2 CPU cores with"
    " hardware=local_parallel hydra.launcher.n_jobs=2 (docs/findings.md, before the divergence grid's 4"
    " alignment seeds a GRU: 45 jobs more); on a cluster add a launcher (hardware=slurm"
    " hydra.launcher.partition=...)",
}
"""What each ``--size`` runs (the presets' ``sizes``), and how long it takes."""


def grid_names() -> str:
    """Every grid with its preset: ``count (findings_count), upup (upup_vs_updown), ...``."""
    return ", ".join(f"{grid} ({preset})" for grid, preset in GRIDS.items())


def selected_grids(only: str | None) -> list[str]:
    """The grids ``--only`` names, each by its grid name or its preset (``count`` or ``findings_count``),
    in the order given; every grid without ``--only``. ValueError names the first unknown one.

    >>> selected_grids("findings_count,upup")
    ['count', 'upup']
    """
    if not only:
        return list(GRIDS)
    by_preset = {preset: grid for grid, preset in GRIDS.items()}
    grids: list[str] = []
    for name in only.split(","):
        grid = name if name in GRIDS else by_preset.get(name)
        if grid is None:
            raise ValueError(f"--only={only}: unknown grid {name}; expected some of {grid_names()}")
        grids += [grid] if grid not in grids else []
    return grids


def has_runs(out: Path) -> bool:
    """Whether a grid folder under ``out`` holds a run (a ``results.json``)."""
    return any(next((out / grid).rglob("results.json"), None) for grid in GRIDS if (out / grid).is_dir())


def grid_command(grid: str, size: str, out: Path, extra: Sequence[str]) -> list[str]:
    """The command of the grid's sweep, resumable in ``out/<grid>``."""
    return [
        sys.executable, "-m", "alignsearch.cli.run_alignment", "-m", f"+experiment={GRIDS[grid]}",
        f"size={size}", f"hydra.sweep.dir={out / grid}", "hardware.progress_bar=false", *extra,
    ]  # fmt: skip


def run_grid(grid: str, size: str, out: Path, extra: Sequence[str]) -> int:
    """The grid's sweep, resumable in ``out/<grid>``; returns its exit status (1: some job failed)."""
    print(f"reproduce: {grid} ({GRIDS[grid]}, size={size})", flush=True)
    return subprocess.run(grid_command(grid, size, out, extra)).returncode


QUEUED = ("hardware=slurm", "hydra/launcher=slurm")
"""Arguments that send the jobs to a cluster's queue rather than this machine's workers."""


def queues_jobs(extra: Sequence[str]) -> bool:
    """Whether ``extra`` sends the grids' jobs to a cluster's queue (``hardware=slurm``)."""
    return any(arg in QUEUED for arg in extra)


def run_grids(grids: Sequence[str], size: str, out: Path, extra: Sequence[str]) -> list[str]:
    """Run the grids; return those with failed jobs.

    On this machine, one grid after another: each sweep has every worker. Through a queue
    (``hardware=slurm``), every grid's sweep at once: each submits its array right away, so the queue holds
    every job of every grid (as many arrays as grids, each bounded by ``hydra.launcher.array_parallelism``)
    and no worker idles at the end of one grid while another waits; each line the sweeps print starts with
    its grid (``[count] [job 3] done: ...``)."""
    if not queues_jobs(extra):
        return [grid for grid in grids if run_grid(grid, size, out, extra) != 0]
    import threading

    print(f"reproduce: {', '.join(grids)} (size={size}), every grid's jobs queued at once", flush=True)
    lock = threading.Lock()
    processes = {
        grid: subprocess.Popen(
            grid_command(grid, size, out, extra),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
        )
        for grid in grids
    }

    def relay(grid: str, process: subprocess.Popen) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            with lock:
                print(f"[{grid}] {line}", end="", flush=True)

    relays = [threading.Thread(target=relay, args=item, daemon=True) for item in processes.items()]
    for thread in relays:
        thread.start()
    try:
        codes = {grid: process.wait() for grid, process in processes.items()}
    except (
        BaseException
    ):  # Ctrl-C, a signal: each sweep stops following its jobs and says how to collect them
        for process in processes.values():
            process.send_signal(signal.SIGINT)
        for process in processes.values():
            process.wait()
        raise
    finally:
        for thread in relays:
            thread.join(timeout=5)
    return [grid for grid in grids if codes[grid] != 0]


def grid_rows(out: Path, grid: str) -> Rows:
    folder = out / grid
    if not folder.is_dir():
        return []
    rows = collect(folder).rows
    with contextlib.suppress(NothingToReport):
        report(folder)  # report.md, report.csv and plots of the grid
    return rows
