"""No silently reused model or result: zoo entries and run folders are identified by what made them.

The checks and the entry point's body run in-process on composed configs (``helpers.refusal``,
``helpers.body_refusal``, ``train_task_model.main``); the run-identity test and the lock test run the
commands for real.
"""

from __future__ import annotations

import hashlib
import json
import os
import runpy
import shutil
import sys
import warnings

import pytest
import torch

from alignsearch import zoo as model_zoo
from alignsearch.cli import train_task_model
from alignsearch.errors import ZooError
from tests.helpers import (
    TINY_ALIGNMENT,
    TINY_SUFFIX,
    TINY_TRAINING,
    assert_error_line,
    assert_refused,
    body_refusal,
    compose_config,
    run_script,
    start,
)

TINY = f"seed0-d_model32{TINY_SUFFIX}"


def copy_of(tiny_zoo, zoo):
    shutil.copytree(tiny_zoo, zoo)
    return zoo


def entries(root) -> list[str]:
    return sorted(p.name for p in (root / "multiobject" / "gru").iterdir() if p.is_dir())


def train(capsys, *overrides: str) -> str:
    """``python train_task_model.py <overrides>``'s body, run in-process; what it printed."""
    capsys.readouterr()
    cfg = compose_config("train_task_model", [*overrides, "paths.output_dir=outputs/run"])
    train_task_model.main(cfg)
    return capsys.readouterr().out


def test_training_settings_name_the_zoo_entry(tiny_zoo, in_command_env, capsys) -> None:
    zoo = copy_of(tiny_zoo, in_command_env)
    longer = train(capsys, *TINY_TRAINING, "training.max_steps=60")
    assert "training " in longer and "already in the zoo" not in longer
    longer_name = TINY.replace("max_steps40", "max_steps60")
    assert entries(zoo) == sorted([TINY, longer_name])
    assert json.loads((zoo / "multiobject/gru" / longer_name / "metrics.json").read_text())["steps"] == 60

    # settings that do not change the weights find the same entry
    same = train(capsys, *TINY_TRAINING, "training.checkpoint_every=7", "training.n_heldout=16")
    assert f"already in the zoo: {zoo / 'multiobject/gru' / TINY}" in same

    # a bad setting is refused even though the entry exists
    assert_refused(
        "train_task_model.py",
        *TINY_TRAINING,
        "training.lr=fast",
        says=["training.lr=fast", "a positive number"],
    )

    # snapshots an entry did not keep are not silently missing
    snaps = body_refusal("train_task_model.py", *TINY_TRAINING, "training.keep_steps=[20]")
    assert_error_line(snaps, "training.keep_steps=[20]", "trained without them")


def test_entry_of_an_older_layout_is_refused_then_migrated(
    tiny_zoo, in_command_env, capsys, monkeypatch
) -> None:
    zoo = copy_of(tiny_zoo, in_command_env)
    old = zoo / "multiobject" / "gru" / "seed0-d_model32"  # the name before training settings counted
    (zoo / "multiobject" / "gru" / TINY).rename(old)
    default_training = ["model.d_model=32", "hardware.progress_bar=false"]
    refused = body_refusal("train_task_model.py", *default_training)
    assert_error_line(refused, str(old), f"name it {TINY}", "python -m alignsearch.zoo migrate")

    capsys.readouterr()
    with monkeypatch.context() as patch, pytest.raises(SystemExit) as exited, warnings.catch_warnings():
        # python -m alignsearch.zoo migrate <zoo>, run in this process
        patch.setattr(sys, "argv", ["alignsearch.zoo", "migrate", str(zoo)])
        warnings.simplefilter("ignore", RuntimeWarning)  # runpy: the module is imported already
        runpy.run_module("alignsearch.zoo", run_name="__main__")
    migrate = capsys.readouterr()
    assert exited.value.code == 0, migrate.err
    assert f"renamed {old} -> {TINY}" in migrate.out
    assert entries(zoo) == [TINY]
    assert "already in the zoo" in train(capsys, *TINY_TRAINING)


@pytest.mark.slow
def test_run_folder_is_reused_only_for_the_same_models(tmp_path) -> None:
    zoo_a, zoo_b = tmp_path / "A", tmp_path / "B"
    args = [*TINY_TRAINING, *TINY_ALIGNMENT]
    first = run_script("run_alignment.py", *args, zoo=zoo_a, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    (run_dir,) = (tmp_path / "outputs" / "run_alignment").iterdir()
    results_a = json.loads((run_dir / "results.json").read_text())

    # zoo B holds another GRU under the same name: other weights
    entry_b = zoo_b / "multiobject" / "gru" / TINY
    entry_b.parent.mkdir(parents=True)
    os.system(f"cp -r {zoo_a / 'multiobject' / 'gru' / TINY} {entry_b}")
    state = torch.load(entry_b / "model.pt", weights_only=True)
    torch.manual_seed(1)
    torch.save({k: v + 0.05 * torch.randn_like(v) for k, v in state.items()}, entry_b / "model.pt")
    info = json.loads((entry_b / "entry.json").read_text())  # published with these weights: its own digest
    info["weights_sha256"] = hashlib.sha256((entry_b / "model.pt").read_bytes()).hexdigest()
    (entry_b / "entry.json").write_text(json.dumps(info))

    second = run_script("run_alignment.py", *args, zoo=zoo_b, cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    assert "already done" not in second.stdout and "moved them to" in second.stdout
    results_b = json.loads((run_dir / "results.json").read_text())
    hashes = [r["identity"]["models"][0]["weights_sha256"] for r in (results_a, results_b)]
    assert hashes[0] != hashes[1] and hashes[1] == model_zoo.load(entry_b).weights_sha256
    superseded = json.loads((run_dir / "superseded" / "1" / "results.json").read_text())
    assert superseded == results_a  # nothing lost

    third = run_script("run_alignment.py", *args, zoo=zoo_b, cwd=tmp_path)
    assert third.returncode == 0 and "already done" in third.stdout
    assert json.loads((run_dir / "results.json").read_text()) == results_b
    # paths.zoo_dir is the same as the environment variable
    fourth = run_script("run_alignment.py", *args, f"paths.zoo_dir={zoo_a}", zoo=zoo_b, cwd=tmp_path)
    assert fourth.returncode == 0 and "moved them to" in fourth.stdout


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("entry.json", "{}", "entry.json lacks vocab, sites"),
        ("entry.json", "[1, 2]", "entry.json lacks vocab, sites"),
        ("metrics.json", "{}", "metrics.json lacks steps"),
        ("metrics.json", "[]", "metrics.json lacks steps"),
        ("config.yaml", "just a string\n", "config.yaml lacks seed"),
        ("config.yaml", None, "config.yaml lacks model"),
        ("metrics.json", '{"steps": 4', "metrics.json: the file is not JSON (Expecting"),
    ],
)
def test_entry_files_that_parse_but_are_wrong(name, content, reason, tiny_zoo, in_command_env) -> None:
    zoo = copy_of(tiny_zoo, in_command_env)
    path = zoo / "multiobject" / "gru" / TINY
    if content is None:  # drop the model from the recorded settings
        text = (path / name).read_text()
        content = text[: text.index("model:")] + text[text.index("training:") :]
    (path / name).write_text(content)
    with pytest.raises(ZooError, match="corrupt|not JSON"):
        model_zoo.load(path)
    assert_error_line(body_refusal("train_task_model.py", *TINY_TRAINING), str(path), reason)


def test_file_where_an_entry_folder_goes_is_found_before_training(in_command_env, tmp_path, capsys) -> None:
    (in_command_env / "multiobject").mkdir(parents=True)
    (in_command_env / "multiobject" / "gru").write_text("not a folder")
    assert_refused("train_task_model.py", *TINY_TRAINING, says=["is a file, not a folder"])
    assert "training" not in capsys.readouterr().out and not (tmp_path / "outputs").exists()


def test_leftover_temporary_file_is_not_published(in_command_env, capsys) -> None:
    partial = in_command_env / "multiobject" / "gru" / f"{TINY}.partial"
    partial.mkdir(parents=True)
    (partial / ".model.pt.abc123.tmp").write_bytes(b"half a file")
    assert "trained: " in train(capsys, *TINY_TRAINING)
    assert not list((in_command_env / "multiobject" / "gru" / TINY).rglob("*.tmp"))


def test_unreadable_hydra_output_folder_is_one_line(in_command_env, tmp_path) -> None:
    (tmp_path / "afile").write_text("")
    assert_refused(
        "train_task_model.py",
        *TINY_TRAINING,
        "hydra.run.dir=afile/run",
        says=["hydra.run.dir=afile/run", "a folder this user can write"],
    )


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


def test_run_identity_ignores_only_settings_that_do_not_change_results() -> None:
    from alignsearch.models import GRU
    from alignsearch.search.run import run_identity
    from alignsearch.search.spec import RunModel
    from alignsearch.settings import AlignmentSettings, RunSettings

    model = RunModel(GRU(8, d_model=16), "multiobject/gru/seed0", None, "0" * 64, {"task": "multiobject"})

    def digest(*overrides: str) -> str:
        cfg = compose_config("run_alignment", list(overrides))
        a, run = AlignmentSettings.parse(cfg.alignment), RunSettings.parse(cfg)
        return run_identity([model], a, run, None)["settings_sha256"]

    base = digest()
    for same in ("alignment.prefix_cache=false", "alignment.prefix_cache_mb=10", "alignment.eval_batch_size=7",
                 "hardware.threads=1", "logger=wandb"):  # fmt: skip
        assert digest(same) == base, same
    for other in ("alignment.lr=0.1", "alignment.accumulate=2", "alignment.controls=[shuffled]", "n_units=8"):
        assert digest(other) != base, other
