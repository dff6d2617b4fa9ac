"""SIGTERM and SIGINT, sent to the commands run for real (slow): a checkpoint, a non-zero exit and one
line, then the same command resumes; under ``hardware=slurm`` submitit's preemption signal requeues the job,
which finishes by itself (the interrupts in one process: ``integration/test_interrupts.py``)."""

from __future__ import annotations

import csv
import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch

from tests.helpers import TINY_ALIGNMENT, TINY_TRAINING, run_script, start

EXIT = {signal.SIGTERM: 143, signal.SIGINT: 130}
THREADS = ["hardware.threads=1"]  # one torch thread per process: the runs share a small machine
TRAIN_STEPS = 400
ALIGN_STEPS = 400


def overridden(base: list[str], *extra: str) -> list[str]:
    """``base`` with ``extra`` in place of the overrides of the same keys."""
    keys = {e.split("=", 1)[0] for e in extra}
    return [b for b in base if b.split("=", 1)[0] not in keys] + list(extra)


LONG_TRAINING = overridden(
    TINY_TRAINING,
    f"training.max_steps={TRAIN_STEPS}",
    f"training.val_every={TRAIN_STEPS}",  # evaluated at the end only: nothing stops it early
    "training.stop_at=1.0",
)
LONG_ALIGNMENT = overridden(
    TINY_ALIGNMENT, f"alignment.max_steps={ALIGN_STEPS}", "alignment.stop_at=1.0", "alignment.patience=1000"
)


def wait_for(pattern: str, folder: Path, proc: subprocess.Popen, timeout: float = 180) -> Path:
    """The first file matching ``pattern`` under ``folder``, once it exists (``proc`` must still run)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = sorted(folder.glob(pattern))
        if found:
            return found[0]
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"exited with {proc.returncode} before {pattern} appeared:\n{out}\n{err}")
        time.sleep(0.05)
    proc.kill()
    pytest.fail(f"no {pattern} under {folder} after {timeout} s")


def interrupted_line(err: str, signum: int) -> tuple[int, Path]:
    """The one line on stderr of a run ``signum`` interrupted: its step and checkpoint."""
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    name = signal.Signals(signum).name
    match = re.fullmatch(
        rf"error: interrupted by {name} at step (\d+): checkpoint saved in (.+); "
        "run the same command again to resume",
        lines[0],
    )
    assert match, lines[0]
    return int(match.group(1)), Path(match.group(2))


def checkpoint_step(path: Path) -> int:
    return torch.load(path, map_location="cpu", weights_only=False)["global_step"]


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_train_task_model_stopped_by_a_signal_saves_exits_and_resumes(signum, zoo, tmp_path) -> None:
    args = [*LONG_TRAINING, *THREADS]
    proc = start("train_task_model.py", *args, zoo=zoo, cwd=tmp_path)
    wait_for("*/*/*.partial/checkpoints/last.ckpt", zoo, proc)  # training is under way
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=180)
    assert proc.returncode == EXIT[signum], (out, err)
    step, checkpoint = interrupted_line(err, signum)
    assert 0 < step < TRAIN_STEPS and checkpoint_step(checkpoint) == step
    assert checkpoint.parent.parent.name.endswith(".partial")
    assert not [p for p in zoo.glob("*/*/*") if p.is_dir() and p.suffix != ".partial"]  # nothing published

    again = run_script("train_task_model.py", *args, zoo=zoo, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert f"(resuming from {checkpoint})" in again.stdout
    (entry,) = [p for p in zoo.glob("*/*/*") if p.is_dir()]
    assert json.loads((entry / "metrics.json").read_text())["steps"] == TRAIN_STEPS


def logged_steps(run_dir: Path) -> list[int]:
    """Steps in the CSV log of the run's latest process (``logs/version_<n>``)."""
    latest = max((run_dir / "logs").glob("version_*"), key=lambda p: int(p.name.split("_")[1]))
    return [int(row["step"]) for row in csv.DictReader((latest / "metrics.csv").open()) if row["step"]]


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_run_alignment_stopped_by_a_signal_saves_exits_and_resumes(signum, tiny_zoo, tmp_path) -> None:
    args = [*TINY_TRAINING, *LONG_ALIGNMENT, *THREADS, "auto_train=false"]
    proc = start("run_alignment.py", *args, zoo=tiny_zoo, cwd=tmp_path)
    wait_for("outputs/run_alignment/*/checkpoints/last.ckpt", tmp_path, proc)  # the first evaluation
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=180)
    assert proc.returncode == EXIT[signum], (out, err)
    step, checkpoint = interrupted_line(err, signum)
    run_dir = checkpoint.parent.parent
    assert 0 < step < ALIGN_STEPS and checkpoint_step(checkpoint) == step
    assert not (run_dir / "results.json").exists()

    again = run_script("run_alignment.py", *args, zoo=tiny_zoo, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert json.loads((run_dir / "results.json").read_text())["steps"] == ALIGN_STEPS
    assert f"resuming the alignment in {run_dir} from its last checkpoint" in again.stdout
    assert min(logged_steps(run_dir)) >= step - 1  # the rerun went on from the checkpoint, not from 0


@pytest.mark.slow
def test_a_sweep_job_a_signal_stops_is_recorded_as_interrupted_and_the_rerun_finishes_it(
    tiny_zoo, tmp_path
) -> None:
    sweep = tmp_path / "sweep"
    args = ["-m", "seed=0", *TINY_TRAINING, *LONG_ALIGNMENT, *THREADS, "auto_train=false",
            f"hydra.sweep.dir={sweep}"]  # fmt: skip
    proc = start("run_alignment.py", *args, zoo=tiny_zoo, cwd=tmp_path)
    wait_for("*/checkpoints/last.ckpt", sweep, proc)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=180)
    assert proc.returncode == EXIT[signal.SIGTERM], (out, err)
    with (sweep / "summary.csv").open() as f:
        (row,) = csv.DictReader(f)
    assert row["status"] == "interrupted" and row["iia"] == "", row
    assert re.match(r"interrupted by SIGTERM at step \d+: checkpoint saved in ", row["error"]), row
    assert f"run the sweep again with hydra.sweep.dir={sweep} to resume" in row["error"]
    assert (sweep / row["job"] / "error.txt").read_text().strip() == row["error"]
    assert "sweep finished: 0 done, 0 already done, 0 failed, 1 interrupted" in out

    again = run_script("run_alignment.py", *args, zoo=tiny_zoo, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "sweep finished: 1 done, 0 already done, 0 failed, 0 interrupted" in again.stdout
    assert json.loads((sweep / row["job"] / "results.json").read_text())["steps"] == ALIGN_STEPS


def job_processes(sweep: Path) -> list[int]:
    """Pids of the submitit job processes of a sweep (``python -m submitit.core._submit <sweep>/...``)."""
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            args = (proc / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:  # not a process, or gone
            continue
        if "submitit.core._submit" in args and any(str(sweep) in a for a in args):
            pids.append(int(proc.name))
    return pids


def sweep_processes(sweep: Path) -> list[int]:
    """Every process whose command line names the sweep folder (its job controllers and jobs)."""
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            args = (proc / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if proc.name.isdigit() and int(proc.name) != os.getpid() and str(sweep) in args:
            pids.append(int(proc.name))
    return pids


@pytest.mark.slow
def test_slurm_preemption_signal_requeues_the_job_which_finishes_by_itself(tiny_zoo, tmp_path) -> None:
    """hardware=slurm through submitit's local executor: USR2 (Slurm's warning before a time limit or a
    preemption) saves the checkpoint, submitit requeues the job, and the job resumes and completes."""
    sweep = tmp_path / "sweep"
    proc = start(
        "run_alignment.py",
        "hardware=slurm",
        "hydra/launcher=submitit_local",
        "-m",
        "seed=0",
        *TINY_TRAINING,
        *LONG_ALIGNMENT,
        *THREADS,
        "auto_train=false",
        f"hydra.sweep.dir={sweep}",
        zoo=tiny_zoo,
        cwd=tmp_path,
    )
    try:
        wait_for("*/checkpoints/last.ckpt", sweep, proc)  # the job's first evaluation: training under way
        (job,) = job_processes(sweep)
        os.kill(job, signal.SIGUSR2)
        out, err = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            proc.kill()
        for pid in sweep_processes(sweep):  # a job that outlived a failed test
            os.kill(pid, signal.SIGKILL)
    assert proc.returncode == 0, (out, err)
    with (sweep / "summary.csv").open() as f:
        (row,) = csv.DictReader(f)
    assert row["status"] == "done", row
    results = json.loads((sweep / row["job"] / "results.json").read_text())
    assert results["steps"] == ALIGN_STEPS
    logs = "".join(p.read_text() for p in sorted(sweep.glob(".submitit/*/*_log.*")))
    saved = re.search(r"SIGUSR2 at step (\d+): checkpoint saved in \S+last\.ckpt; requeueing", logs)
    assert saved, logs
    assert "Requeued job" in logs and "Job completed successfully" in logs
    assert min(logged_steps(sweep / row["job"])) >= int(saved.group(1)) - 1  # resumed from it
    assert "sweep finished: 1 done, 0 already done, 0 failed" in out
