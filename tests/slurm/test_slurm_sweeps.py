"""Sweeps on a real Slurm cluster (``hardware=slurm``): the user's MAS sweep, every way a job is stopped or
dies, and a cluster without accounting. Nothing here mocks Slurm or submitit.

Run with ``python -m pytest -m slurm`` after ``tests/slurm/cluster.sh up`` (the fixture brings the test
cluster up itself where it can, and skips with one line where it cannot). The jobs run on this machine's
one node, one CPU each.
"""

from __future__ import annotations

import csv
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import ROOT, TINY_ALIGNMENT, TINY_TRAINING, command_env

pytestmark = pytest.mark.slurm

CLUSTER = ROOT / "tests" / "slurm" / "cluster.sh"
ON_THE_TEST_CLUSTER = [
    *subprocess.run(["bash", str(CLUSTER), "overrides"], capture_output=True, text=True).stdout.split(),
    "hydra.launcher.timeout_min=10",
    "hydra.launcher.signal_delay_s=30",
]
"""The test cluster's settings (``cluster.sh overrides``: no GPU, one CPU and 2 GB per job), a short time
limit and its signal."""
MAS = ["model=gru", "alignment=mas", *TINY_TRAINING, *TINY_ALIGNMENT]
WIDE_MAS = [x for x in MAS if not x.startswith("model.d_model=")]
"""The MAS sweep with GRUs of the default width (128): wide enough that MKL's kernels, and so the
records, depend on the thread count a job starts with."""
LONG_DAS = [  # long enough to be stopped while it trains (about 20 s of alignment steps)
    "model=gru",
    "alignment=das",
    *TINY_TRAINING,
    *TINY_ALIGNMENT,
    "alignment.max_steps=1500",
    "alignment.val_every=250",
]
RESULT_KEYS_THAT_VARY = ("train_seconds", "seconds")
"""What two runs of the same job may differ in (how long they took)."""


def cluster(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(CLUSTER), *args], capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def slurm() -> Iterator[None]:
    """The test cluster, with accounting (``sacct`` works): the one running, or one brought up here."""
    if cluster("status").returncode != 0 or "accounting on" not in cluster("status").stdout:
        up = cluster("up")
        if up.returncode != 0:
            pytest.skip(f"no Slurm test cluster: {(up.stderr or up.stdout).strip().splitlines()[-1]}")
    yield


@pytest.fixture(scope="module")
def zoo(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("slurm_zoo")


def sweep_command(*args: str) -> list[str]:
    return [sys.executable, str(ROOT / "run_alignment.py"), *args]


def run_sweep(
    zoo: Path, cwd: Path, *args: str, timeout: float = 900, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    return subprocess.run(
        sweep_command(*args),
        cwd=cwd,
        env=env or command_env(zoo),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def login_shell_env(zoo: Path) -> dict[str, str]:
    """A login node's environment: no ``OMP_NUM_THREADS`` (the tests set it for their own commands)."""
    return {k: v for k, v in command_env(zoo).items() if k != "OMP_NUM_THREADS"}


def start_sweep(zoo: Path, cwd: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        sweep_command(*args),
        cwd=cwd,
        env=command_env(zoo),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def rows(sweep: Path) -> list[dict[str, str]]:
    with (sweep / "summary.csv").open(newline="") as f:
        return list(csv.DictReader(f))


def results(sweep: Path) -> dict[str, dict]:
    """Each job's ``results.json`` by its seed, without what may vary between two runs of it."""
    found = {}
    for path in sweep.glob("*/results.json"):
        data = json.loads(path.read_text())
        for key in RESULT_KEYS_THAT_VARY:
            data.pop(key, None)
        found[str(data["config"]["seed"])] = data
    return found


def submitted_array(stdout: str) -> str:
    match = re.search(r"submitted \d+ job\(s\) to Slurm as array (\d+) \(([^)]*)\)", stdout)
    assert match, stdout
    return match.group(1)


def wait_for_array(process: subprocess.Popen, timeout: float = 120) -> str:
    """The array id the sweep prints when it has submitted its jobs (read from its output as it runs)."""
    assert process.stdout is not None
    deadline = time.monotonic() + timeout
    seen = ""
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        seen += line
        match = re.search(r"as array (\d+)", line)
        if match:
            return match.group(1)
        if not line and process.poll() is not None:
            break
    raise AssertionError(f"no array submitted: {seen}")


def finish(process: subprocess.Popen, head: str = "", timeout: float = 900) -> tuple[int, str, str]:
    out, err = process.communicate(timeout=timeout)
    return process.returncode, head + out, err


def wait_until_training(job: str, sweep: Path, timeout: float = 180) -> None:
    """Wait until Slurm runs ``job`` and its alignment has started training (its first checkpoint folder)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = subprocess.run(["squeue", "-h", "-j", job, "-o", "%T"], capture_output=True, text=True).stdout
        if "RUNNING" in state and any(sweep.glob("*/checkpoints/*")):
            return
        time.sleep(0.5)
    raise AssertionError(f"job {job} did not start training in {timeout} s")


def sacct(job: str, field: str) -> str:
    out = subprocess.run(
        ["sacct", "-n", "-X", "-P", "-j", job, "-o", field], capture_output=True, text=True
    ).stdout
    return out.strip().splitlines()[0] if out.strip() else ""


def test_users_mas_sweep_runs_as_an_array_equal_to_the_local_launcher(slurm, zoo, tmp_path) -> None:
    """``python run_alignment.py model=gru alignment=mas -m seed=1,2`` with hardware=slurm: one array named
    from the run, a line per job with its Slurm id and log, results equal to the local launcher's field
    by field (submitted from a shell without ``OMP_NUM_THREADS``: each job starts with its one CPU as a
    local worker does); run again, nothing is submitted."""
    sweep, local = tmp_path / "slurm", tmp_path / "local"
    here = run_sweep(zoo, tmp_path, *WIDE_MAS, "-m", "seed=1,2", f"hydra.sweep.dir={local}")
    assert here.returncode == 0, here.stderr  # trains the GRUs (the Slurm jobs load them)
    done = run_sweep(
        zoo, tmp_path, *WIDE_MAS, *ON_THE_TEST_CLUSTER, "-m", "seed=1,2", f"hydra.sweep.dir={sweep}",
        env=login_shell_env(zoo),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    array = submitted_array(done.stdout)
    assert f"zoo: {zoo}" in done.stdout.splitlines()[0]
    assert sacct(array, "JobName") == "align-gru-mas"
    table = {r["overrides"].split("seed=")[1].split(",")[0]: r for r in rows(sweep)}
    assert {seed: r["status"] for seed, r in table.items()} == {"1": "done", "2": "done"}
    for num, seed in enumerate(("1", "2")):
        row = table[seed]
        assert row["slurm_job"] == f"{array}_{num}"
        assert Path(row["log"]).is_file() and row["log"].startswith(str(sweep / ".submitit"))
        line = next(x for x in done.stdout.splitlines() if x.startswith(f"[job {num}] done:"))
        assert line.endswith(f"(Slurm job {array}_{num}, log {row['log']})")
    assert not [p for p in (sweep / ".submitit").iterdir() if "%" in p.name]  # no folder named .submitit/%j
    assert "sweep finished: 2 done, 0 already done, 0 failed" in done.stdout

    assert results(sweep) == results(local) and len(results(sweep)) == 2

    again = run_sweep(
        zoo, tmp_path, *WIDE_MAS, *ON_THE_TEST_CLUSTER, "-m", "seed=1,2", f"hydra.sweep.dir={sweep}"
    )
    assert again.returncode == 0, again.stderr
    assert "submitted" not in again.stdout  # decided before submitting: no allocation taken
    assert [x.split(":")[0] for x in again.stdout.splitlines() if x.startswith("[job")] == [
        "[job 0] already done",
        "[job 1] already done",
    ]


@pytest.mark.parametrize("stop", ["scontrol requeue", "scancel --signal=USR2"])
def test_a_requeued_job_resumes_and_the_launcher_waits_for_it(slurm, zoo, tmp_path, stop) -> None:
    """Preempted (``scontrol requeue``: SIGTERM, as many clusters preempt; ``USR2``: submitit's signal)
    while it trains: the job saves its checkpoint, Slurm runs it again, it resumes and ends ``done`` with
    results identical to an uninterrupted run; the launcher says so and waits for the final state."""
    sweep, reference = tmp_path / "sweep", tmp_path / "reference"
    process = start_sweep(
        zoo, tmp_path, *LONG_DAS, *ON_THE_TEST_CLUSTER, "-m", "seed=3", f"hydra.sweep.dir={sweep}"
    )
    array = wait_for_array(process)
    wait_until_training(array, sweep)
    subprocess.run([*stop.split(), array], check=True)
    code, out, err = finish(process)
    assert code == 0, err
    assert "[job 0] requeued by Slurm: " in out
    assert re.search(rf"\[job 0\] done: .*\(Slurm job {array}, log ", out), out
    assert int(sacct(array, "Restarts") or 0) >= 1 or "REQUEUE" in out.upper()
    assert sacct(array, "State") == "COMPLETED"

    here = run_sweep(zoo, tmp_path, *LONG_DAS, "-m", "seed=3", f"hydra.sweep.dir={reference}")
    assert here.returncode == 0, here.stderr
    assert results(sweep) == results(reference)


def test_a_job_at_its_time_limit_checkpoints_requeues_and_resumes(slurm, zoo, tmp_path) -> None:
    """A job longer than its time limit (3 minutes; USR2 45 s before it, or up to a minute earlier): it
    saves its checkpoint, submitit requeues it, it resumes and ends ``done`` with records identical to an
    uninterrupted run."""
    sweep, reference = tmp_path / "sweep", tmp_path / "reference"
    args = [*LONG_DAS, "alignment.max_steps=12000", "alignment.val_every=2000", "-m", "seed=3"]
    limit = ["hydra.launcher.timeout_min=3", "hydra.launcher.signal_delay_s=45"]
    started = time.monotonic()
    done = run_sweep(zoo, tmp_path, *args, *ON_THE_TEST_CLUSTER, *limit, f"hydra.sweep.dir={sweep}")
    assert done.returncode == 0, done.stderr
    array = submitted_array(done.stdout)
    assert "[job 0] requeued by Slurm: " in done.stdout, done.stdout
    assert re.search(rf"\[job 0\] done: .*\(Slurm job {array}, log ", done.stdout), done.stdout
    assert sacct(array, "State") == "COMPLETED"
    print(f"time-limit sweep: {time.monotonic() - started:.0f} s")

    here = run_sweep(zoo, tmp_path, *args, f"hydra.sweep.dir={reference}")
    assert here.returncode == 0, here.stderr
    assert results(sweep) == results(reference)


def job_processes(task: str) -> list[int]:
    """The Python processes that run the array task ``task`` (``17_0``)."""
    raw = subprocess.run(
        ["squeue", "-h", "-r", "-j", task, "-o", "%A"], capture_output=True, text=True
    ).stdout.split()
    assert raw, f"Slurm does not run {task}"
    listed = subprocess.run(["scontrol", "listpids", raw[0]], capture_output=True, text=True).stdout
    pids = [line.split()[0] for line in listed.splitlines() if line.split() and line.split()[0].isdigit()]
    cmdlines = {int(p): Path(f"/proc/{p}/cmdline") for p in pids}
    return [
        p
        for p, c in cmdlines.items()
        if c.exists() and "submitit.core._submit" in c.read_text(errors="replace")
    ]


def test_a_job_killed_with_kill_9_is_reported_and_redone_alone(slurm, zoo, tmp_path) -> None:
    """``kill -9`` of one job's process while two run: a line and a ``summary.csv`` row saying how it ended
    and how to redo it, the other job done, a non-zero exit; the same command runs only that job again."""
    sweep = tmp_path / "sweep"
    args = [*LONG_DAS, *ON_THE_TEST_CLUSTER, "-m", "seed=4,5", f"hydra.sweep.dir={sweep}"]
    process = start_sweep(zoo, tmp_path, *args)
    array = wait_for_array(process)
    wait_until_training(f"{array}_0", sweep)
    for pid in job_processes(f"{array}_0"):
        os.kill(pid, signal.SIGKILL)
    code, out, err = finish(process)
    assert code != 0
    table = {r["slurm_job"]: r for r in rows(sweep)}
    assert table[f"{array}_1"]["status"] == "done"
    dead = table[f"{array}_0"]
    assert dead["status"] == "failed"
    assert f"Slurm job {array}_0 ended FAILED without a result (" in dead["error"]
    assert f"hydra.sweep.dir={sweep} runs it again" in dead["error"]
    assert re.search(r"\[job 0\] failed: .*ended FAILED without a result", out), out
    assert "1 job(s) failed or were interrupted" in err

    again = run_sweep(zoo, tmp_path, *args)
    assert again.returncode == 0, again.stderr
    assert "[job 1] already done" in again.stdout and "submitted 1 job(s)" in again.stdout
    assert {r["status"] for r in rows(sweep)} == {"done", "already done"}


def test_a_job_over_its_memory_is_reported_and_redone(slurm, zoo, tmp_path) -> None:
    """A job over its memory limit: its row says so in Slurm's words; with the memory it needs, the same
    sweep runs it again."""
    sweep = tmp_path / "sweep"
    args = [*MAS, *ON_THE_TEST_CLUSTER, "-m", "seed=1", f"hydra.sweep.dir={sweep}"]
    small = ["hydra.launcher.mem_gb=null", "+hydra.launcher.additional_parameters.mem=150M"]
    code, out = (done := run_sweep(zoo, tmp_path, *args, *small)).returncode, done.stdout
    assert code != 0
    (row,) = rows(sweep)
    assert row["status"] == "failed"
    assert re.search(
        r"ended (FAILED|OUT_OF_MEMORY) without a result \(.*(memory limit|oom|out of memory)",
        row["error"],
        re.I,
    )
    assert "[job 0] failed: " in out

    again = run_sweep(zoo, tmp_path, *args)
    assert again.returncode == 0, again.stderr
    assert [r["status"] for r in rows(sweep)] == ["done"]


def test_a_job_that_fails_in_alignsearch_is_failed_in_slurm(slurm, zoo, tmp_path) -> None:
    """A run that fails (here: a snapshot the model never had) fails its Slurm job: FAILED in ``sacct``,
    its row and ``error.txt`` written, and the sweep exits non-zero."""
    sweep = tmp_path / "sweep"
    done = run_sweep(
        zoo, tmp_path, *MAS, *ON_THE_TEST_CLUSTER, "snapshot=1000", "-m", "seed=1", f"hydra.sweep.dir={sweep}"
    )
    assert done.returncode != 0
    array = submitted_array(done.stdout)
    assert sacct(array, "State") == "FAILED"
    assert sacct(array, "ExitCode") != "0:0"
    (row,) = rows(sweep)
    assert row["status"] == "failed" and row["slurm_job"] == array and row["error"]
    assert (sweep / row["job"] / "error.txt").is_file()


def test_without_accounting_the_launcher_follows_jobs_and_never_hangs(slurm, zoo, tmp_path) -> None:
    """``sacct`` disabled: the sweep follows its jobs through ``squeue`` (no warning per poll), a finished
    job and a killed one both end with their lines."""
    assert cluster("up", "--no-accounting").returncode == 0
    try:
        sweep = tmp_path / "sweep"
        process = start_sweep(
            zoo, tmp_path, *LONG_DAS, *ON_THE_TEST_CLUSTER, "-m", "seed=6", f"hydra.sweep.dir={sweep}"
        )
        array = wait_for_array(process)
        assert (
            subprocess.run(["sacct", "-j", array], capture_output=True, text=True).returncode != 0
        )  # no accounting
        wait_until_training(array, sweep)
        subprocess.run(["scancel", array], check=True)
        code, out, err = finish(process, timeout=300)
        assert code != 0
        assert re.search(rf"\[job 0\] (interrupted|failed): .*Slurm job {array}", out), out
        for noise in ("Bypassing sacct error", "accounting storage is disabled"):
            assert noise not in out + err

        done = run_sweep(
            zoo,
            tmp_path,
            *MAS,
            *ON_THE_TEST_CLUSTER,
            "-m",
            "seed=1",
            f"hydra.sweep.dir={tmp_path / 'ok'}",
            timeout=300,
        )
        assert done.returncode == 0, done.stderr
        assert "[job 0] " in done.stdout and "Bypassing" not in done.stdout + done.stderr
    finally:
        cluster("up")


def test_the_papers_grids_are_one_queue_with_the_local_launchers_records(slurm, zoo, tmp_path) -> None:
    """``python -m alignsearch.reproduce ... hardware=slurm``: every grid's array is submitted before any
    grid ends (one queue), and the findings and records equal those of the local launcher."""
    tiny = ["model.d_model=32", "training.max_steps=40", "training.val_every=20", "training.n_val=64",
            "training.n_heldout=32", "alignment.max_steps=20", "alignment.val_every=10", "alignment.n_train=256",
            "alignment.n_val=64", "alignment.n_heldout=64", "alignment.n_test=64", "min_task_accuracy=0"]  # fmt: skip
    grids = ["--only", "upup,n_units"]
    queued, local = tmp_path / "queued", tmp_path / "local"
    command = [sys.executable, "-m", "alignsearch.reproduce", *grids, *tiny]
    env = command_env(zoo)
    done = subprocess.run(
        [*command, "--out", str(queued), *ON_THE_TEST_CLUSTER], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr
    lines = done.stdout.splitlines()
    submitted = [i for i, line in enumerate(lines) if "to Slurm as array" in line]
    finished = [i for i, line in enumerate(lines) if "sweep finished" in line]
    assert len(submitted) == 2 and len(finished) == 2
    assert max(submitted) < min(finished)  # both grids queued before either ended
    assert {line.split("]")[0] for line in lines if line.startswith("[")} >= {"[upup", "[n_units"}

    here = subprocess.run([*command, "--out", str(local)], env=env, capture_output=True, text=True)
    assert here.returncode == 0, here.stderr
    for grid in ("upup", "n_units"):
        assert records(queued / grid) == records(local / grid)
    verdicts = [
        [x for x in (f / "FINDINGS.md").read_text().splitlines() if "**" in x] for f in (queued, local)
    ]
    assert verdicts[0] == verdicts[1] and verdicts[0]


def records(grid: Path) -> dict[str, list]:
    """Each job's records (IIA per direction and variable), by its folder's name."""
    return {p.parent.name: json.loads(p.read_text())["records"] for p in sorted(grid.glob("*/results.json"))}
