"""A refused command, run for real: one line on stderr, exit status 2, nothing left behind, whether the
checks before Hydra refuse it or the entry point's body does, and before the training stack loads (the
same checks in this process, for every bad input: ``integration/test_bad_input.py``)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.helpers import (
    TINY_ALIGNMENT,
    TINY_TRAINING,
    assert_error_line,
    assert_one_line_error,
    command_env,
    run_script,
)
from tests.integration.test_bad_input import TINY


@pytest.mark.parametrize(
    ("script", "args", "fragments"),
    [
        ("train_task_model.py", ["task=multiobjekt"], ["task=multiobjekt", "one of arithmetic,"]),
        pytest.param(  # the same line in-process: test_bad_alignment_command; the same exit: the others
            "run_alignment.py",
            ["trainig.max_steps=100"],
            ["did you mean training.max_steps?"],
            marks=pytest.mark.slow,
        ),
        ("run_alignment.py", ["-m", "seed=0,1,x"], ["seed=x", "a non-negative integer"]),
        (  # a Slurm time limit that the signal before it would take whole (nothing is submitted)
            "run_alignment.py",
            ["hardware=slurm", "hydra.launcher.timeout_min=1", "-m", "seed=1,2"],
            ["hydra.launcher.timeout_min=1", "expected at least 4", "signal_delay_s=120", "smaller"],
        ),
    ],
)
def test_refused_command_is_one_line_and_exit_2(script, args, fragments, zoo, tmp_path) -> None:
    """Through the command line: a group choice, a key typo (in the slow set) and a sweep's value, each
    refused before Hydra starts, with nothing left behind."""
    result = run_script(script, *args, zoo=zoo, cwd=tmp_path)
    assert_one_line_error(result, *fragments)
    assert not zoo.exists() and not (tmp_path / "outputs").exists() and not (tmp_path / "multirun").exists()


def test_a_refusal_comes_before_the_training_stack_loads(zoo, tmp_path) -> None:
    """The checks before Hydra load neither Lightning nor the alignment search: a refused command answers
    in the time it takes to import torch and compose the config."""
    code = (
        "import sys\n"
        "from alignsearch.cli.commands import align\n"
        "sys.argv = ['run_alignment.py', 'n_units=0']\n"
        "try:\n"
        "    align()\n"
        "except SystemExit as e:\n"
        "    loaded = [m for m in ('lightning', 'alignsearch.search.fit', 'alignsearch.cli.run_alignment')\n"
        "              if m in sys.modules]\n"
        "    print(e.code, loaded)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=command_env(zoo), capture_output=True, text=True
    )
    assert result.stdout.strip() == "2 []", result.stdout + result.stderr
    assert_error_line(result.stderr.strip(), "n_units=0", "an integer in [1, 128]")


def test_corrupt_or_incomplete_zoo_entry(zoo, tmp_path) -> None:
    """Through the command line: an error of the entry point's body is one line and exit status 2 too."""
    entry = zoo / "multiobject" / "gru" / TINY
    entry.mkdir(parents=True)
    result = run_script("train_task_model.py", *TINY_TRAINING, zoo=zoo, cwd=tmp_path)
    assert_one_line_error(result, str(entry), "is incomplete: entry.json is missing")


def test_an_under_trained_model_is_refused_once_trained(zoo, tmp_path) -> None:
    """Issue 30, as the shell sees it: the model the run trains says how well it learned the task, and
    one below ``min_task_accuracy`` ends the command there (status 2, one line, no run folder); the
    same command in this process, accepted and in order: ``integration/test_run_alignment_cli.py``."""
    strict = [o for o in TINY_ALIGNMENT if not o.startswith("min_task_accuracy=")]
    result = run_script("run_alignment.py", *TINY_TRAINING, *strict, zoo=zoo, cwd=tmp_path)
    name = f"multiobject/gru/{TINY}"
    assert_one_line_error(
        result,
        f"min_task_accuracy=0.95 is not allowed: expected a threshold that {name} reaches",
        "after 40 training steps (train it longer, with a larger training.max_steps, or accept it with "
        "min_task_accuracy=",
    )
    said = [
        line for line in result.stdout.splitlines() if line.startswith(("training ", "trained ", "align"))
    ]
    assert [line.split(" ")[0] for line in said] == ["training", "trained"], result.stdout
    assert said[1].startswith(f"trained {name}: validation trial accuracy ")
    assert not (tmp_path / "outputs").exists()


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


def test_unknown_grid_is_refused(tmp_path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "alignsearch.reproduce", "--only", "count,foo", "--out", str(tmp_path)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 2 and "unknown grid foo" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "count (findings_count)" in done.stderr
    assert not any(tmp_path.iterdir())
