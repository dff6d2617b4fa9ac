"""No silently reused model: a zoo entry is identified by what made it. Its name follows the training
settings that change its weights (and no others); an entry of an older layout is refused, then migrated;
entry files that parse but are wrong, a file where an entry's folder goes and a leftover temporary file
are found, never used.

The checks and the entry point's body run in this process on composed configs (``helpers.refusal``,
``helpers.body_refusal``, ``train_task_model.main``). A run folder's identity: ``unit/test_run_identity.py``
and, for real, ``commands/test_run_alignment.py``; waiting on an entry's lock:
``commands/test_process_safety.py``.
"""

from __future__ import annotations

import json
import runpy
import shutil
import sys
import warnings

import pytest

from alignsearch import zoo as model_zoo
from alignsearch.cli import train_task_model
from alignsearch.errors import ZooError
from tests.helpers import (
    TINY_SUFFIX,
    TINY_TRAINING,
    assert_error_line,
    assert_refused,
    body_refusal,
    compose_config,
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
