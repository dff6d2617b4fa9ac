"""Sweeps that survive reality: a line per finished job, failures recorded, a summary in the sweep folder.

Registered as a Hydra callback (``hydra.callbacks.sweep`` in the entry points' configs). In a multirun:

* each finished job prints one line, ``[job <n>] <status>: <job folder>: <IIA or error>`` (status
  ``done``, ``already done``, ``failed`` or ``interrupted``), and writes its row into
  ``<sweep>/summary.csv``: one row per job, its latest state (a rerun replaces the job's row), with the
  job's folder, its status, its overrides as its folder name has them (``hydra.job.override_dirname``,
  which :func:`alignsearch.cli.run_dir_name` turns into the folder name) and its mean IIA or its error.
  The file (:mod:`alignsearch.search.sweep_records`, which the report reads too) is rewritten whole
  under a file lock (parallel jobs share it), atomically. Launchers whose jobs
  print into their own logs (submitit: Slurm, or ``submitit_local``) leave the lines there; the sweep's
  own process prints them too when the sweep ends, read from ``summary.csv`` and the job folders;
* a failed job keeps its traceback in ``<job folder>/error.txt`` and does not stop the other jobs; a job
  a signal ended (``interrupted``) keeps the step and checkpoint it stopped at there;
* running the same sweep again (``hydra.sweep.dir=<sweep>``) skips jobs whose ``results.json`` is
  complete and reruns the others.
"""

from __future__ import annotations

import traceback
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig

from alignsearch.search.results import RunStatus
from alignsearch.search.sweep_records import SUMMARY, UNFINISHED, failed_jobs, latest_rows, write_row

ERROR = "error.txt"
FAILED: list[str] = []
"""Messages of this process's sweeps that had failed jobs."""
STARTED: list[str] = []
"""Folders of this process's sweeps, as they start (an interrupted sweep's line names its folder)."""


def in_multirun() -> bool:
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def record_failure(error: BaseException) -> dict[str, Any]:
    """Write the traceback into the job's folder; return what the job hands back to the sweep."""
    out_dir = Path(HydraConfig.get().runtime.output_dir)
    text = "".join(traceback.format_exception(type(error), error, error.__traceback__))
    (out_dir / ERROR).write_text(text)
    return {"status": RunStatus.FAILED, "error": f"{type(error).__name__}: {error}".splitlines()[0]}


def record_interruption(stopped: BaseException) -> dict[str, Any]:
    """Write where a signal stopped the job (its step, its checkpoint, how to resume) into the job's
    folder; return what the job hands back to the sweep: ``requeued`` where Slurm stopped it to run it
    again (it resumes by itself), else ``interrupted``."""
    out_dir = Path(HydraConfig.get().runtime.output_dir)
    (out_dir / ERROR).write_text(f"{stopped}\n")
    status = RunStatus.REQUEUED if getattr(stopped, "requeued", False) else RunStatus.INTERRUPTED
    return {"status": status, "error": str(stopped)}


def slurm_job() -> dict[str, str]:
    """The Slurm job id (``17_2``: task 2 of array 17) and log file of the submitit job this process runs
    in Slurm, as a sweep's row records them; empty outside one (``submitit_local`` included)."""
    import os

    if not os.environ.get("SUBMITIT_FOLDER") or not os.environ.get("SLURM_JOB_ID"):
        return {}
    try:
        from submitit import JobEnvironment

        env = JobEnvironment()
        return {"slurm_job": str(env.job_id), "log": str(env.paths.stdout)}
    except Exception:  # noqa: BLE001 - not a job submitit can describe: the row goes without
        return {}


def zoo_folder(config: DictConfig) -> str | None:
    """The zoo a sweep's jobs read and train into (``paths.zoo_dir``, absolute); None where the config
    has none."""
    from omegaconf import OmegaConf

    zoo = OmegaConf.select(config, "paths.zoo_dir", throw_on_resolution_failure=False)
    return None if zoo is None else str(Path(str(zoo)).absolute())


def headline_iia(result: dict[str, Any]) -> float | None:
    """The number a job's line and row show: the ``iia`` the job hands back (an alignment's mean validation
    IIA over its trained records, :attr:`RunResults.headline_iia`; a scan's best cell's), or a task
    model's validation trial accuracy."""
    iia = result.get("iia")
    return iia if iia is not None else result.get("val_trial_acc")


class SweepProgress(Callback):
    """Prints and records each finished job of a sweep; see the module docstring."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        sweep = config.hydra.sweep.dir
        STARTED.append(str(sweep))
        zoo = zoo_folder(config)
        print(
            f"sweep folder: {sweep} (an interrupted sweep resumes with hydra.sweep.dir={sweep})"
            + ("" if zoo is None else f"; zoo: {zoo}"),
            flush=True,
        )

    def on_job_end(self, config: DictConfig, job_return: Any, **kwargs: Any) -> None:
        if not in_multirun():
            return
        hydra = HydraConfig.get()
        result = job_return._return_value  # the job's own dict (or the exception Hydra caught)
        if isinstance(result, BaseException):
            result = {"status": RunStatus.FAILED, "error": f"{type(result).__name__}: {result}"}
        result = result if isinstance(result, dict) else {}
        status = result.get("status", RunStatus.DONE)
        iia = headline_iia(result) if status not in UNFINISHED else None
        row = {
            "job": Path(hydra.runtime.output_dir).name,
            "status": status,
            "overrides": hydra.job.override_dirname,  # what names the job's folder (cli.run_dir_name)
            "iia": "" if iia is None else f"{iia:.4f}",
            "error": result.get("error", ""),
            **slurm_job(),
        }
        print(job_line(hydra.job.num, row), flush=True)
        write_row(Path(hydra.sweep.dir), row)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep = Path(config.hydra.sweep.dir)
        remove_unexpanded_folder(sweep / ".submitit" / "%j")  # submitit makes it besides the jobs' own
        if jobs_print_elsewhere(config):  # their lines went to their own logs: here too, in job order
            jobs = this_runs_jobs(sweep, config.hydra.output_subdir)
            for num, row in sorted(jobs, key=lambda job: (job[0] is None, job[0] or 0)):
                print(job_line(num, row), flush=True)
        latest = latest_rows(sweep)
        counts = {s: sum(r["status"] == s for r in latest.values()) for s in RunStatus}
        print(
            f"sweep finished: {', '.join(f'{n} {s}' for s, n in counts.items())} ({sweep / SUMMARY})",
            flush=True,
        )
        failed = failed_jobs(sweep)
        if failed:  # the entry point exits non-zero with this line once the sweep is over
            FAILED.append(
                f"{len(failed)} job(s) failed or were interrupted: see {Path(config.hydra.sweep.dir) / SUMMARY}"
            )


def remove_unexpanded_folder(folder: Path) -> None:
    """Remove ``folder`` where it is empty and named after a pattern (``.submitit/%j``): submitit makes the
    folder its pattern names, literally, besides the jobs' own (``.submitit/17_0``)."""
    if "%" in folder.name and folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()


def job_line(num: int | None, row: dict[str, str]) -> str:
    """A finished job's line: ``[job 2] failed: <job folder>: ZooError: ...``, ``[job 0] done: seed=0: IIA 0.957``;
    a job that ran in Slurm ends with its id and log: ``(Slurm job 17_0, log <file>)``."""
    detail = f"IIA {float(row['iia']):.3f}" if row.get("iia") else row.get("error", "")
    where = f" (Slurm job {row['slurm_job']}, log {row.get('log') or '?'})" if row.get("slurm_job") else ""
    return f"[job{'' if num is None else f' {num}'}] {row['status']}: {row['job']}: {detail}{where}"


SUBMITIT = "submitit"
"""Launchers whose ``_target_`` names this run each job in a process of its own whose output goes to the
job's log (``<sweep>/.submitit/<id>/*_log.out``), not to the sweep's terminal."""


def jobs_print_elsewhere(config: DictConfig) -> bool:
    """Whether the sweep's launcher runs its jobs where their lines do not reach this process's output."""
    from omegaconf import OmegaConf

    return SUBMITIT in str(OmegaConf.select(config, "hydra.launcher._target_", default="") or "")


def this_runs_jobs(
    sweep: Path, output_subdir: str | None = ".hydra"
) -> list[tuple[int | None, dict[str, str]]]:
    """``(job number, summary row)`` of each job this run of the sweep started: those whose
    ``<output_subdir>/hydra.yaml`` (written when the job starts) is not older than the sweep's
    ``multirun.yaml`` (written before the first job). A job folder without that file
    (``hydra.output_subdir=null``) counts, without a number."""
    try:
        started = (sweep / "multirun.yaml").stat().st_mtime
    except OSError:
        started = None
    jobs: list[tuple[int | None, dict[str, str]]] = []
    for job, row in latest_rows(sweep).items():
        record = None if output_subdir is None else sweep / job / output_subdir / "hydra.yaml"
        if record is None or not record.is_file():
            jobs.append((None, row))
        elif started is None or record.stat().st_mtime >= started:  # else: an earlier run's job
            jobs.append((job_number(record), row))
    return jobs


def job_number(record: Path) -> int | None:
    """``hydra.job.num`` of a job's ``.hydra/hydra.yaml`` (None when it cannot be read)."""
    import yaml

    try:
        num = yaml.safe_load(record.read_text())["hydra"]["job"]["num"]
    except Exception:  # noqa: BLE001 - an unreadable record: the line goes without a number
        return None
    return num if isinstance(num, int) else None


def swept_keys(sweep: Path) -> set[str]:
    """The keys a sweep varies, read from its ``multirun.yaml``: on the command line (``seed`` in
    ``-m seed=1,2 model=gru``) or in a preset's ``hydra.sweeper.params``. Empty without a readable record."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from alignsearch.file_data import read_yaml

    parser = OverridesParser.create()
    try:  # read as data: a sweep folder may come from someone else, and nothing in it is resolved
        record = read_yaml(sweep / "multirun.yaml")["hydra"]
        lines = [str(line) for line in record["overrides"]["task"]]
        params = (record.get("sweeper") or {}).get("params") or {}
    except Exception:  # noqa: BLE001 - no readable sweep record
        return set()
    keys: set[str] = set()

    def add_if_swept(line: str) -> None:
        try:
            (override,) = parser.parse_overrides([line])
        except Exception:  # noqa: BLE001 - not an override this can read: not counted
            return
        if override.is_sweep_override():
            keys.add(override.key_or_group)

    for line in lines:
        add_if_swept(line)
    for key, value in params.items():
        if "${" in str(value):  # an interpolation is not resolved here: counted as swept
            keys.add(str(key))
            continue
        add_if_swept(f"{key}={value}")
    return keys
