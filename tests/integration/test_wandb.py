"""The W&B logger, offline: a run's W&B file holds its final IIA, config, group, tags and IIA curve
(read back with ``tests/wandb_files.py``) once the run has ended, on a loaded machine too. The waiting for
and checking of that file: ``unit/test_wandb_run_files.py``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests.helpers import SMALL_GRU, TINY_ALIGNMENT, run_here
from tests.wandb_files import run_contents


def wandb_run(trained_zoo: Path, cwd: Path) -> subprocess.CompletedProcess:
    return run_here("run_alignment.py", "logger=wandb", *SMALL_GRU, *TINY_ALIGNMENT, zoo=trained_zoo, cwd=cwd)


def check_wandb_run(done: subprocess.CompletedProcess, cwd: Path) -> None:
    """The alignment ended well, and its offline W&B file holds what ``results.json`` holds: read as soon
    as the command has returned, with no waiting of the test's own."""
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("wandb: logging offline to ")  # one line says so
    assert "anonymous" not in done.stdout + done.stderr  # no warning about W&B's deprecated setting
    (run_dir,) = (cwd / "outputs" / "run_alignment").iterdir()
    (record,) = json.loads((run_dir / "results.json").read_text())["records"]
    (run_file,) = run_dir.glob("wandb/offline-run-*/run-*.wandb")
    contents = run_contents(run_file)
    assert float(contents["summary"]["final/0>0/count/iia"]) == record["iia"]
    assert float(contents["summary"]["final/0>0/count/iia_test"]) == record["iia_test"]
    assert contents["group"] == "multiobject/gru/das" and contents["job_type"] == "layer0"
    assert {"multiobject", "gru", "das", "count"} <= set(contents["tags"])
    config = {k: json.loads(v) for k, v in contents["config"].items()}
    assert (config["seed"], config["layer"], config["n_units"], config["variables"]) == (0, 0, 16, ["count"])
    curve = [row["val/iia/0>0/count"] for row in contents["history"] if "val/iia/0>0/count" in row]
    assert len(curve) >= 2  # the IIA curve: step 0 and later evaluations


PAUSE = 2.0
"""Seconds for which W&B's service is stopped as a run finishes."""


def service_processes() -> list[int]:
    """The W&B service processes (``wandb-core``) that this process started."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            parent = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
            program = (proc / "cmdline").read_bytes().split(b"\0")[0]
        except (OSError, ValueError, IndexError):
            continue
        if parent == os.getpid() and program.endswith(b"wandb-core"):
            found.append(int(proc.name))
    return found


def test_wandb_offline_run_holds_the_final_iia(trained_zoo, tmp_path, monkeypatch) -> None:
    """Read right after the command, though W&B's service closes the run (and writes the end of its
    file) seconds after ``run.finish()`` has returned: it is stopped for :data:`PAUSE` seconds then, as
    a loaded machine can keep it waiting (issue 30: the summary had no ``final/0>0/count/iia``)."""
    service_connection = pytest.importorskip("wandb.sdk.lib.service.service_connection")
    original = service_connection.ServiceConnection.inform_finish
    paused: list[threading.Timer] = []

    def inform_finish(self, run_id: str) -> None:  # what run.finish() sends last, without waiting
        services = service_processes()
        assert services, "no wandb-core process found"
        for pid in services:
            os.kill(pid, signal.SIGSTOP)
        paused.append(threading.Timer(PAUSE, lambda: [os.kill(pid, signal.SIGCONT) for pid in services]))
        paused[-1].start()
        original(self, run_id)

    if not Path("/proc/self/stat").is_file():
        pytest.skip("finding W&B's service process reads /proc")
    monkeypatch.setattr(service_connection.ServiceConnection, "inform_finish", inform_finish)
    try:
        done = wandb_run(trained_zoo, tmp_path)
        assert len(paused) == 1  # the service was paused once, as the run finished
        check_wandb_run(done, tmp_path)
    finally:
        for timer in paused:  # the service goes on (a failed check must not leave it stopped)
            timer.join()


@pytest.mark.slow
def test_wandb_offline_run_holds_the_final_iia_on_a_loaded_machine(trained_zoo, tmp_path) -> None:
    """Busy processes, one more than the CPUs this test may use (at most 9), keep every CPU busy while
    the alignment runs and its W&B run finishes. W&B's service writes the end of an offline run's file
    after ``run.finish()`` has returned; under load that came too late for a reader right after the
    command (issue 30: the summary had no ``final/0>0/count/iia``). The job waits for it now."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(min(cpus, 8) + 1)]
    try:
        done = wandb_run(trained_zoo, tmp_path)
    finally:
        for process in busy:
            process.kill()
        for process in busy:
            process.wait()
    check_wandb_run(done, tmp_path)


@pytest.mark.slow
def test_a_wandb_run_without_its_final_records_fails_the_job(trained_zoo, tmp_path, monkeypatch) -> None:
    """An offline W&B run whose file ends without the final summary values is the job's error, not a done
    run: no ``results.json``, so the same command runs it again."""
    from alignsearch import loggers

    monkeypatch.setattr(loggers, "offline_run_summary", lambda path: {})  # the file ended without them
    done = wandb_run(trained_zoo, tmp_path)
    assert done.returncode != 0
    assert "WandbRecordsError" in done.stderr and "of the alignment's final summary values" in done.stderr
    (run_dir,) = (tmp_path / "outputs" / "run_alignment").iterdir()
    assert not (run_dir / "results.json").exists()
