"""A new user's first hour and the holes in trust it found: two processes on one run folder, a CPU run
asked for two devices, tracebacks left on the command line, refused commands that left folders."""

from __future__ import annotations

import json
import shutil
import signal
import time

import pytest

from tests.helpers import TINY_ALIGNMENT, TINY_TRAINING, assert_one_line_error, run_here, run_script, start


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


def test_a_lock_left_by_a_killed_process_does_not_block(tmp_path) -> None:
    import signal
    import subprocess
    import sys

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


def test_two_devices_on_a_cpu_are_refused_in_one_line(tmp_path) -> None:
    result = run_script("run_alignment.py", "hardware.devices=2", zoo=tmp_path / "zoo", cwd=tmp_path)
    assert_one_line_error(result, "hardware.devices=2", "1 on the CPU")
    assert not (tmp_path / "outputs").exists()


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["alignment=mas", "+partner.model_settings.foo=1"], ["partner.model_settings.foo=1", "d_model"]),
        (["hydra.run.dir=/tmp/my dir (1)/x"], ["hydra.run.dir=/tmp/my dir (1)/x", "quote it"]),
    ],
)
def test_tracebacks_left_on_the_command_line_are_one_line(tmp_path, args, fragments) -> None:
    result = run_script("run_alignment.py", *args, zoo=tmp_path / "zoo", cwd=tmp_path)
    assert_one_line_error(result, *fragments)


def test_commands_refused_in_the_job_leave_no_folder(tiny_zoo, toy_lms, tmp_path) -> None:
    from alignsearch.text.toy import count_pair_rows

    pairs = tmp_path / "count.jsonl"
    pairs.write_text("".join(json.dumps(r) + "\n" for r in count_pair_rows(50, seed=0)))
    lm = ["model=lm", f"model.path={toy_lms['gpt2']}", "data=pairs", f"data.path={pairs}"]
    for args in (
        [*TINY_TRAINING, "snapshot=100"],  # an entry that kept no snapshots
        [*lm, "layer=9"],  # a 2-layer language model
        [*lm, "model.dtype=float64"],
    ):
        result = run_here("run_alignment.py", *args, zoo=tiny_zoo, cwd=tmp_path)
        assert result.returncode == 2, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert not (tmp_path / "outputs").exists(), f"{args[-1]} left a folder"
