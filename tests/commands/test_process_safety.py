"""Processes that overlap or die, run for real: a second process on a run folder or a zoo entry another
process holds waits for it (and says so), then reuses what it made, never resuming or training it again; a
lock left by a killed process blocks nothing, and a write it left half done publishes nothing."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from alignsearch import zoo as model_zoo
from tests.helpers import (
    ROOT,
    TINY_ALIGNMENT,
    TINY_TRAINING,
    start,
)
from tests.integration.test_train_cli import ENTRY
from tests.integration.test_zoo_identity import TINY


def test_a_second_process_on_a_live_run_waits_and_never_resumes_it(tiny_zoo, tmp_path) -> None:
    zoo = shutil.copytree(tiny_zoo, tmp_path / "zoo")
    run_dir = tmp_path / "run"
    args = [*TINY_TRAINING, *TINY_ALIGNMENT, "n_units=8", f"hydra.run.dir={run_dir}"]
    args += ["alignment.max_steps=600", "alignment.stop_at=null", "alignment.val_every=200"]
    first = start("run_alignment.py", *args, zoo=zoo, cwd=tmp_path)
    deadline = time.monotonic() + 120
    while not (run_dir / "run.json").is_file():  # written by the first, holding the folder's lock
        assert first.poll() is None and time.monotonic() < deadline, first.communicate()
        time.sleep(0.05)
    first.send_signal(signal.SIGSTOP)  # the first holds the lock, paused, until the second is waiting
    try:
        second = start("run_alignment.py", *args, zoo=zoo, cwd=tmp_path)
        waiting = second.stdout.readline()
    finally:
        first.send_signal(signal.SIGCONT)
    assert waiting.startswith(f"waiting for another process that is running the alignment in {run_dir}")
    out2, err2 = second.communicate(timeout=300)
    out1, err1 = first.communicate(timeout=300)
    assert first.returncode == 0, err1
    assert second.returncode == 0, err2
    assert "resuming" not in out2 and f"already done: {run_dir / 'results.json'}" in out2
    results = json.loads((run_dir / "results.json").read_text())
    assert results["steps"] == 600


def test_waiting_for_another_process_says_so(tiny_zoo, zoo, tmp_path) -> None:
    """The command waits on the entry's lock, says so, then loads what the lock's holder published."""
    from filelock import FileLock

    path = zoo / "multiobject" / "gru" / TINY
    path.parent.mkdir(parents=True)
    lock = model_zoo.lock_path(path)
    with FileLock(lock):
        proc = start("train_task_model.py", *TINY_TRAINING, zoo=zoo, cwd=tmp_path)
        first_line = proc.stdout.readline()
        shutil.copytree(tiny_zoo / "multiobject" / "gru" / TINY, path)  # the holder publishes the entry
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert first_line.startswith(f"waiting for another process that is training {path}"), first_line
    assert str(lock) in first_line
    assert not any(line.startswith("training ") for line in out.splitlines()), out  # loaded, not trained
    assert f"trained: {path}" in out


def test_two_processes_needing_the_same_model_train_it_once(zoo, tmp_path) -> None:
    env = {**os.environ, "ALIGNSEARCH_ZOO": str(zoo)}
    cmd = [sys.executable, str(ROOT / "train_task_model.py"), *TINY_TRAINING]
    procs = [
        subprocess.Popen(
            cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    trainings = sum(line.startswith("training ") for out, _ in outputs for line in out.splitlines())
    assert trainings == 1, outputs
    assert (zoo / ENTRY / "model.pt").is_file()


def test_a_lock_left_by_a_killed_process_does_not_block(tmp_path) -> None:
    from filelock import FileLock, Timeout

    from alignsearch.search.run import run_lock

    lock = tmp_path / "run.lock"
    holder = subprocess.Popen(
        [sys.executable, "-c", f"from filelock import FileLock; held = FileLock({str(lock)!r}); held.acquire(); print('held', flush=True); input()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert holder.stdout.readline().strip() == "held"
    with pytest.raises(Timeout):
        FileLock(lock).acquire(timeout=0.1)  # held while the holder lives
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=30)
    assert lock.is_file()  # the file stays behind ...
    started = time.monotonic()
    with run_lock(tmp_path):  # ... and blocks nothing
        assert time.monotonic() - started < 5


def test_a_write_killed_midway_leaves_no_visible_partial_file(tmp_path) -> None:
    """SIGKILL while the bytes are being written: no ``results.json``, only the hidden temporary file."""
    script = f"""
import sys, time
from pathlib import Path
from alignsearch import atomic

def slow(f):
    f.write(b'{{"iia": ')
    f.flush()
    print("writing", flush=True)
    time.sleep(60)

atomic._atomic(Path({str(tmp_path)!r}) / "results.json", slow)
"""
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "writing"
        child.kill()
    finally:
        child.wait(timeout=30)
    (left,) = tmp_path.iterdir()
    assert left.name.startswith(".results.json.") and left.name.endswith(".tmp")
    assert not (tmp_path / "results.json").exists()
