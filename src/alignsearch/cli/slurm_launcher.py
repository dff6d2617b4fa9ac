"""``hardware=slurm``: a sweep as one Slurm job array that the launching process follows to the end.

hydra-submitit-launcher's ``submitit_slurm`` submits the array and waits on ``sacct`` for each job's result
pickle. On a real cluster that breaks where users live: a job that dies without a result (``kill -9``, out
of memory, a node failure) ends the sweep in a traceback with no summary row, a cluster without
accounting is waited on forever, a requeue looks final, a job that failed is COMPLETED in Slurm, jobs
already done take an allocation, and every job is named ``cli``. This launcher keeps its submission (the
same executor, settings and requeue on USR2) and replaces the rest:

* **before submitting**, jobs whose folders hold their finished results are reported ``already done``
  (:mod:`alignsearch.cli.finished_jobs`) and never submitted;
* the array is **named from the run** (``align-gru-mas``; ``hydra.launcher.name=auto``, the default) and its
  id and log folder are printed when it is submitted;
* **each job is followed** through ``squeue``, then ``sacct`` (:mod:`alignsearch.cli.slurm_states`):
  a requeue (``scontrol requeue``, a preemption, a time limit) is reported and waited through; a job's
  line is printed when Slurm is done with it, with its Slurm id and log; a job that ended without a
  result gets a ``failed`` row in ``summary.csv`` saying how it ended and how to redo it;
* inside the job, a run that failed makes the job fail (a non-zero exit: FAILED in ``sacct``, ``seff``
  and Slurm's mail), after its row and ``error.txt`` are written;
* Ctrl-C stops following, not the jobs: the line says how to stop them or collect them later.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus
from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf
from hydra_plugins.hydra_submitit_launcher.submitit_launcher import SlurmLauncher as SubmititSlurmLauncher
from omegaconf import DictConfig, OmegaConf

from alignsearch.cli import slurm_states
from alignsearch.cli.finished_jobs import finished_results
from alignsearch.cli.sweep import job_line, remove_unexpanded_folder
from alignsearch.search.results import RunStatus
from alignsearch.search.sweep_records import ENDED_UNFINISHED, latest_rows, write_row

AUTO_NAME = "auto"
"""``hydra.launcher.name`` that names the array from the run (:func:`array_name`)."""
COMMAND_NAMES = {"run_alignment": "align", "train_task_model": "train", "scan": "scan"}
POLL_S = (2.0, 30.0)
"""How often Slurm is asked about the jobs: every 2 s at first, slowing to every 30 s for long sweeps."""


SIGNAL_SLACK_S = 60
"""Slurm sends a job's time-limit signal up to this much before ``signal_delay_s`` asks (its timer's
resolution)."""
MIN_WORK_S = 60
"""The least time a job must have before its time-limit signal, to load its models and start."""
THREADS_FROM_SLURM = (
    'if [ -n "${SLURM_CPUS_PER_TASK:-}" ] && [ -z "${OMP_NUM_THREADS:-}" ]; then'
    ' export OMP_NUM_THREADS="$SLURM_CPUS_PER_TASK"; fi'
)
"""The first setup line of every job: its CPUs as ``OMP_NUM_THREADS`` before Python starts (a value the
submitting shell exported is kept). Setting torch's threads later is not enough for the same numbers: MKL
picks its kernels from the thread count it started with, so a job of one CPU on a machine of two
started without it trained a different rotation (divergence 0.35326 against 0.35329) than the same job
under ``hardware=local_parallel``, whose workers start with it."""


def check_time_limit(launcher: DictConfig) -> None:
    """A ConfigError where a Slurm job's time limit leaves it no time before the signal that ends it:
    ``timeout_min`` must exceed ``signal_delay_s`` plus Slurm's slack plus a minute of work. Otherwise each
    run of the job is signalled before it starts and requeued, time after time, with no progress.

    >>> check_time_limit(OmegaConf.create({"timeout_min": 1, "signal_delay_s": 120}))
    Traceback (most recent call last):
    ...
    alignsearch.errors.ConfigError: hydra.launcher.timeout_min=1 is not allowed: expected at least 4 (minutes: signal_delay_s=120 s before the limit, plus Slurm's 60 s of slack, plus 60 s of work), or a smaller hydra.launcher.signal_delay_s
    """
    from alignsearch.errors import ConfigError

    timeout_min = OmegaConf.select(launcher, "timeout_min")
    delay_s = OmegaConf.select(launcher, "signal_delay_s")
    if not isinstance(timeout_min, int) or not isinstance(delay_s, int):
        return
    needed_s = delay_s + SIGNAL_SLACK_S + MIN_WORK_S
    if timeout_min * 60 < needed_s:
        raise ConfigError(
            "hydra.launcher.timeout_min",
            timeout_min,
            f"at least {-(-needed_s // 60)} (minutes: signal_delay_s={delay_s} s before the limit, plus Slurm's "
            f"{SIGNAL_SLACK_S} s of slack, plus {MIN_WORK_S} s of work), or a smaller hydra.launcher.signal_delay_s",
        )


class JobEndedUnfinished(Exception):
    """Raised in a Slurm job whose run failed or was stopped, after its row is written, so that the job
    exits non-zero and Slurm records it as FAILED."""


class SlurmLauncher(SubmititSlurmLauncher):
    """See the module docstring."""

    def __call__(self, *args: Any, **kwargs: Any) -> JobReturn:
        """Run one job (in its Slurm allocation); fail the job where its run did not finish."""
        job_return = super().__call__(*args, **kwargs)
        value = job_return._return_value
        if isinstance(value, BaseException):
            raise JobEndedUnfinished(f"{type(value).__name__}: {value}")
        if isinstance(value, dict) and value.get("status") in ENDED_UNFINISHED:
            raise JobEndedUnfinished(f"{value['status']}: {value.get('error', '')}")
        return job_return

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        assert self.config is not None and self.hydra_context is not None
        sweep = Path(str(self.config.hydra.sweep.dir))
        sweep.mkdir(parents=True, exist_ok=True)
        jobs = [
            PlannedJob.plan(self.hydra_context, self.config, list(o), initial_job_idx + i)
            for i, o in enumerate(job_overrides)
        ]
        rows: dict[int, dict[str, str]] = {}
        for job in jobs:
            done = job.already_done()
            if done is not None:
                write_row(sweep, done)
                rows[job.num] = done
                print(job_line(job.num, done), flush=True)
        to_submit = [job for job in jobs if job.num not in rows]
        if to_submit:
            rows |= self.submit_and_follow(sweep, to_submit)
        return [job.job_return(rows[job.num]) for job in jobs]

    def submit_and_follow(self, sweep: Path, jobs: list[PlannedJob]) -> dict[int, dict[str, str]]:
        """Submit ``jobs`` as one array and follow them until Slurm is done with each; their rows."""
        from alignsearch.engine import interrupt

        executor = self.executor(array_name(str(self.params.get("name", AUTO_NAME)), self.config, jobs))
        args = [
            (job.overrides, "hydra.sweep.dir", job.num, f"job_id_for_{job.num}", Singleton.get_state())
            for job in jobs
        ]
        submitted = executor.map_array(self, *zip(*args, strict=True))
        remove_unexpanded_folder(Path(str(self.params["submitit_folder"])))
        array = str(submitted[0].job_id).split("_")[0]
        print(
            f"submitted {len(jobs)} job(s) to Slurm as array {array} ({executor.parameters.get('job_name')}), "
            f"at most {self.params.get('array_parallelism')} at once; each job's log is in its line",
            flush=True,
        )
        tasks = {
            str(s.job_id): (job, Path(str(s.paths.stdout))) for s, job in zip(submitted, jobs, strict=True)
        }
        try:
            return follow(sweep, array, tasks)
        except interrupt.Interrupted as stopped:
            stopped.resume = (
                f"the jobs go on in Slurm (array {array}: scancel {array} stops them); the same command with "
                f"hydra.sweep.dir={sweep} collects them"
            )
            raise

    def executor(self, name: str) -> Any:
        """A submitit Slurm executor with this launcher's settings (as hydra-submitit-launcher sets them)."""
        import submitit

        params = dict(self.params)
        folder = params.pop("submitit_folder")
        executor = submitit.AutoExecutor(
            cluster=self._EXECUTOR, folder=folder, slurm_max_num_timeout=params.pop("max_num_timeout")
        )
        shared = set(OmegaConf.structured(BaseQueueConf).keys())
        params["name"] = name
        params["setup"] = [THREADS_FROM_SLURM, *(params.get("setup") or [])]
        executor.update_parameters(
            **{k if k in shared else f"{self._EXECUTOR}_{k}": v for k, v in params.items()}
        )
        return executor


class PlannedJob:
    """One job of the sweep as the launching process sees it: its number, overrides, composed config and
    folder."""

    def __init__(self, num: int, overrides: list[str], cfg: DictConfig, folder: Path) -> None:
        self.num, self.overrides, self.cfg, self.folder = num, overrides, cfg, folder

    @classmethod
    def plan(cls, context: Any, config: DictConfig, overrides: list[str], num: int) -> PlannedJob:
        """Compose the job's config and find its folder the way the job will (``hydra.sweep.subdir``)."""
        cfg = context.config_loader.load_sweep_config(config, overrides)
        previous = HydraConfig.instance().cfg
        HydraConfig.instance().set_config(cfg)  # the folder's name may ask Hydra's resolvers
        try:
            folder = Path(str(cfg.hydra.sweep.dir)) / str(OmegaConf.select(cfg, "hydra.sweep.subdir"))
        finally:
            if previous is not None:
                HydraConfig.instance().set_config(previous)  # type: ignore[arg-type]
        return cls(num, overrides, cfg, folder)

    def row(self, status: str, **fields: str) -> dict[str, str]:
        return {
            "job": self.folder.name,
            "status": status,
            "overrides": str(self.cfg.hydra.job.override_dirname),
            "iia": "",
            "error": "",
            **fields,
        }

    def already_done(self) -> dict[str, str] | None:
        """The job's ``already done`` row where its folder holds its finished results; else None."""
        if OmegaConf.select(self.cfg, "hydra.job.config_name") != "run_alignment":
            return None  # other commands' jobs check themselves where they run
        results = finished_results(self.cfg, self.folder)
        if results is None:
            return None
        iia = results.headline_iia
        return self.row(RunStatus.ALREADY_DONE, iia="" if iia is None else f"{iia:.4f}")

    def job_return(self, row: dict[str, str]) -> JobReturn:
        return JobReturn(
            overrides=self.overrides,
            working_dir=str(self.folder),
            task_name=str(self.cfg.hydra.job.name),
            status=JobStatus.COMPLETED,
            _return_value=row,
        )


def follow(sweep: Path, array: str, tasks: dict[str, tuple[PlannedJob, Path]]) -> dict[int, dict[str, str]]:
    """Wait until Slurm is done with every task (``{"17_0": (job, log)}``), printing a line as each ends
    or is requeued; each job's row."""
    rows: dict[int, dict[str, str]] = {}
    waiting, started = dict(tasks), set()
    begun = time.monotonic()
    while waiting:
        for task, state in slurm_states.task_states(array, waiting).items():
            job, log = waiting[task]
            if state in slurm_states.STARTED:
                started.add(task)
            elif state in slurm_states.ACTIVE:
                if task in started:  # seen running, pending again: requeued
                    started.discard(task)
                    print(
                        f"[job {job.num}] requeued by Slurm: {job.folder.name}: it resumes from its checkpoint "
                        f"(Slurm job {task}, log {log})",
                        flush=True,
                    )
            else:
                rows[job.num] = ended_row(sweep, job, task, state, log)
                print(job_line(job.num, rows[job.num]), flush=True)
                del waiting[task]
        if waiting:
            time.sleep(min(POLL_S[1], POLL_S[0] + (time.monotonic() - begun) / 20))
    return rows


def ended_row(sweep: Path, job: PlannedJob, task: str, state: str, log: Path) -> dict[str, str]:
    """The row of a job Slurm is done with: the one the job wrote, or, for a job that ended without one
    (killed, out of memory, its node lost, cancelled before it ran), a ``failed`` row saying so."""
    row = latest_rows(sweep).get(job.folder.name)
    if row is not None and row.get("slurm_job") == task and row["status"] != RunStatus.REQUEUED:
        return row
    how = "in a state Slurm no longer knows" if state == slurm_states.UNKNOWN else state
    said = slurm_says(log.with_suffix(".err"))
    dead = job.row(
        RunStatus.FAILED,
        error=f"Slurm job {task} ended {how} without a result ({said or 'see its log'}); "
        f"the same command with hydra.sweep.dir={sweep} runs it again",
        slurm_job=task,
        log=str(log),
    )
    write_row(sweep, dead)
    return dead


SLURM_WORDS = (
    ("memory limit", "oom", "out of memory", "out_of_memory"),
    ("slurmstepd", "srun: error", "killed", "cancelled", "time limit"),
)
"""What marks the lines Slurm writes into a job's log about how it ended, the telling ones first: a job over
its memory also gets a line that its task was killed."""


def slurm_says(err_log: Path) -> str | None:
    """The line Slurm wrote into a job's error log about how it ended (``slurmstepd-node: error:
    StepId=16.0 exceeded memory limit (176779264 > 157286400), being killed``), without its prefix: the
    last about memory, else the last of Slurm's; None where it wrote none."""
    try:
        lines = err_log.read_text(errors="replace").splitlines()
    except OSError:
        return None
    for words in SLURM_WORDS:
        for line in reversed(lines):
            if any(word in line.lower() for word in words):
                return line.split("error: ", 1)[-1].strip().strip("*").strip()[:200]
    return None


def array_name(name: str, config: DictConfig, jobs: Sequence[PlannedJob]) -> str:
    """The Slurm job name of a sweep's array: ``name`` (``hydra.launcher.name``), or where that is ``auto``
    the command, model and alignment (``align-gru-mas``; ``-s1`` for a sweep of one job with seed 1)."""
    if name != AUTO_NAME:
        return name
    choices = OmegaConf.select(jobs[0].cfg, "hydra.runtime.choices", default={}) or {}
    command = str(OmegaConf.select(config, "hydra.job.config_name", default="job"))
    parts = [COMMAND_NAMES.get(command, command), choices.get("model"), choices.get("alignment")]
    if command == "train_task_model":
        parts = parts[:2]
    if len(jobs) == 1 and OmegaConf.select(jobs[0].cfg, "seed", default=None) is not None:
        parts.append(f"s{jobs[0].cfg.seed}")
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", "-".join(str(p) for p in parts if p))
