"""Every bad input stops before any training with one line (key, value, what is allowed) and exit 2,
leaving no folder behind.

The checks run in this process (``helpers.refusal``: what ``launch`` runs before Hydra starts;
``helpers.body_refusal``: the entry point's body on a composed config; ``helpers.run_here``: the whole
command). A refusal as the shell sees it (one line on stderr, exit status 2, from either place):
``commands/test_refusals.py``.
"""

from __future__ import annotations

import json
import shutil

import pytest

from alignsearch import zoo
from tests.helpers import (
    TINY_SUFFIX,
    TINY_TRAINING,
    assert_error_line,
    assert_refused,
    body_refusal,
    run_here,
)

TINY = f"seed0-d_model32{TINY_SUFFIX}"


def nothing_trained(zoo_dir) -> bool:
    return not zoo_dir.exists() or not any(zoo_dir.rglob("*.ckpt")) and not any(zoo_dir.rglob("model.pt"))


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["task=multiobjekt"], ["task=multiobjekt", "one of arithmetic, multiobject,"]),
        (["model=gpt"], ["model=gpt", "one of gru, hf, lm, lstm, rnn, transformer"]),
        (["task.min_count=25"], ["task.min_count=25", "max_count (20)"]),
        (
            ["task.max_count=4", "task.hold_outs=[1,2,3,4]"],
            ["task.hold_outs=[1,2,3,4]", "leaves a training count"],
        ),
        (["model.d_model=0"], ["model.d_model=0", "a positive integer"]),
        (["training.batch_size=-8"], ["training.batch_size=-8", "a positive integer"]),
        (["model=transformer", "model.n_heads=3"], ["model.n_heads=3", "a divisor of d_model (128)"]),
        (["model=lstm", "model.d_model=127"], ["model.d_model=127", "an even width"]),
        (["seed=-1"], ["seed=-1", "a non-negative integer"]),
    ],
)
def test_bad_settings(args, fragments, in_command_env) -> None:
    assert_refused("train_task_model.py", *args, says=fragments)
    assert nothing_trained(in_command_env)


def test_missing_checkpoint_to_resume_from(in_command_env, tmp_path) -> None:
    line = body_refusal("train_task_model.py", *TINY_TRAINING, "ckpt_path=/nonexistent/last.ckpt")
    assert_error_line(line, "ckpt_path=/nonexistent/last.ckpt", "an existing Lightning checkpoint")
    assert nothing_trained(in_command_env)


def test_corrupt_checkpoint_of_an_interrupted_run(in_command_env) -> None:
    partial = in_command_env / "multiobject" / "gru" / f"{TINY}.partial" / "checkpoints"
    partial.mkdir(parents=True)
    (partial / "last.ckpt").write_bytes(b"not a checkpoint")
    line = body_refusal("train_task_model.py", *TINY_TRAINING)
    assert_error_line(line, "checkpoint=", "last.ckpt", "corrupt", "delete it to start over")


def test_wrong_vocabulary_in_the_zoo(tiny_zoo, in_command_env) -> None:
    (in_command_env / "sameobject" / "gru").mkdir(parents=True)
    shutil.copytree(tiny_zoo / "multiobject" / "gru" / TINY, in_command_env / "sameobject" / "gru" / TINY)
    line = body_refusal("train_task_model.py", "task=sameobject", *TINY_TRAINING)
    assert_error_line(line, "has vocabulary P B E D0 D1 D2 R T but task sameobject needs P B E D T")


def test_zoo_load_of_a_missing_entry_names_it(tmp_path) -> None:
    with pytest.raises(zoo.ZooError, match="does not exist"):
        zoo.load(tmp_path / "nowhere")


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["training.lr=fast"], ["training.lr=fast", "a positive number"]),
        (["training.weight_decay=lots"], ["training.weight_decay=lots", "a non-negative number"]),
        (["training.stop_at=high"], ["training.stop_at=high", "an accuracy in (0, 1]"]),
        (["training.keep_steps=[abc]"], ["training.keep_steps=[abc]", "a list of positive integers"]),
        (["alignment.lr=fast"], ["alignment.lr=fast", "a positive number"]),
        (["alignment.stop_at=high"], ["alignment.stop_at=high", "an accuracy in (0, 1]"]),
        (
            ["alignment.stop_at=2"],
            ["alignment.stop_at=2", "or null (train exactly alignment.max_steps steps)"],
        ),
        (["hardware.threads=-2"], ["hardware.threads=-2", "a positive integer, or null"]),
        (["hardware.precision=99"], ["hardware.precision=99", "one of 64-true, 32-true"]),
        (["training.grad_clip=-1"], ["training.grad_clip=-1", "a non-negative number"]),
        (["task.hold_outs=[25]"], ["task.hold_outs=[25]", "counts in [1, 20]"]),
        (["alignment.patience=-1"], ["alignment.patience=-1", "a non-negative integer"]),
        (["alignment.stepwise=maybe"], ["alignment.stepwise=maybe", "true or false"]),
        (["trainig.max_steps=100"], ["trainig.max_steps=100", "did you mean training.max_steps?"]),
        (["alignment.max_step=50"], ["alignment.max_step=50", "did you mean alignment.max_steps?"]),
        (["+foo=1"], ["foo=1", "a known setting"]),
        (["+training.foo=1"], ["training.foo=1", "a known setting"]),
        (["-m", "seed=0,1,x"], ["seed=x", "a non-negative integer"]),
        (["seed=0,1,x", "-m"], ["seed=x", "a non-negative integer"]),  # -m after the overrides
        (  # a preset that sweeps, without -m, would run one job of its first values
            ["+experiment=das_grid", "size=small"],
            [
                "experiment=das_grid is not allowed: expected a sweep, which needs -m (it sweeps seed, n_units,",
                "python run_alignment.py -m +experiment=das_grid size=small",
            ],
        ),
    ],
)
def test_bad_alignment_command(args, fragments, in_command_env, tmp_path) -> None:
    assert_refused("run_alignment.py", *args, says=fragments)
    assert not in_command_env.exists()
    assert not (tmp_path / "outputs").exists() and not (tmp_path / "multirun").exists()


def test_a_preset_that_sweeps_is_checked_as_a_sweep_with_m(in_command_env) -> None:
    """With -m the same preset is a sweep: every job is checked, and none is refused for sweeping."""
    from alignsearch.cli import check_command
    from alignsearch.cli.commands import ALIGN

    argv = check_command(["+experiment=das_grid", "size=small", "-m"], ALIGN)
    assert argv[0] == "-m" and "+experiment=das_grid" in argv
    assert check_command([], ALIGN) == []  # the plain command sweeps nothing


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


def test_unreadable_hydra_output_folder_is_one_line(in_command_env, tmp_path) -> None:
    (tmp_path / "afile").write_text("")
    assert_refused(
        "train_task_model.py",
        *TINY_TRAINING,
        "hydra.run.dir=afile/run",
        says=["hydra.run.dir=afile/run", "a folder this user can write"],
    )
