"""Files from others run nothing, and a zoo entry's weights are the ones it was published with.

A zoo entry's ``config.yaml`` and an alignment file name the classes that loading them builds; those must
be classes of alignsearch or of modules the user's own configs name (or ``ALIGNSEARCH_TRUSTED_MODULES``),
of the kind expected there, and are refused with one line before anything of them is imported or called.
Checkpoints are read as data only. ``entry.json`` records the SHA-256 of each weights file; ``python -m
alignsearch.zoo migrate`` records it for entries of older zoos.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from alignsearch import zoo as model_zoo
from alignsearch.components import ENV_TRUSTED, compose_checked, trusted_modules
from alignsearch.errors import ConfigError, ZooError
from tests.helpers import TINY_TRAINING, assert_error_line, body_refusal, compose_config
from tests.integration.test_toy_task import MODULE, TASK_FILE, TASK_YAML

ENTRY = "multiobject/gru/seed0-d_model32-batch_size32-max_steps40-val_every20-n_val64"
VICTIM_TEXT = "a file the loading must not touch\n"


@pytest.fixture
def entry(tiny_zoo, in_command_env) -> Path:
    """A copy of the tiny zoo's entry, in the test's own zoo (``$ALIGNSEARCH_ZOO``)."""
    shutil.copytree(tiny_zoo, in_command_env)
    return in_command_env / ENTRY


@pytest.fixture
def victim(tmp_path) -> Path:
    path = tmp_path / "victim.txt"
    path.write_text(VICTIM_TEXT)
    return path


def one_line(error: BaseException) -> str:
    text = str(error)
    assert "\n" not in text, text
    return text


def migrate(zoo: Path, capsys) -> tuple[int, str]:
    """``python -m alignsearch.zoo migrate <zoo>`` (its ``main``), run in this process: its exit status and
    output."""
    capsys.readouterr()
    status = model_zoo.main(["migrate", str(zoo)])
    out = capsys.readouterr()
    return status, out.out + out.err


# -- A. the weights are the published ones ---------------------------------------------------------------
def other_weights(path: Path) -> None:
    """Weights of another model of the same shape (as if another seed's model.pt were copied over)."""
    state = torch.load(path, weights_only=True)
    torch.manual_seed(1)
    torch.save({k: v + 0.05 * torch.randn_like(v) for k, v in state.items()}, path)


def changed_byte(path: Path) -> None:
    content = bytearray(path.read_bytes())
    content[len(content) // 2] ^= 1
    path.write_bytes(bytes(content))


@pytest.mark.parametrize("tamper", [other_weights, changed_byte], ids=["other weights", "a changed byte"])
def test_weights_that_are_not_the_published_ones_are_refused(tamper, entry) -> None:
    info = json.loads((entry / "entry.json").read_text())
    assert info["weights_sha256"] == model_zoo.file_sha256(entry / "model.pt")
    assert info["snapshots_sha256"] == {}
    tamper(entry / "model.pt")
    with pytest.raises(ZooError) as refused:
        model_zoo.load(entry)
    assert one_line(refused.value).startswith(f"zoo entry {entry}: model.pt is not the file the entry was")
    assert_error_line(body_refusal("train_task_model.py", *TINY_TRAINING), str(entry), "model.pt is not")


def test_migrate_records_the_digests_of_an_older_entry_and_then_they_are_checked(tmp_path, capsys) -> None:
    zoo = tmp_path / "kept"
    cfg = compose_config(
        "train_task_model",
        [f"paths.zoo_dir={zoo}", "paths.output_dir=unused", *TINY_TRAINING, "training.keep_steps=[20]"],
    )
    from alignsearch.cli.checks import model_request

    path = model_zoo.get_or_train(model_request(cfg), verbose=False).path
    published = json.loads((path / "entry.json").read_text())
    assert set(published["snapshots_sha256"]) == {"20"}

    # an entry of an older zoo: no digests; it still loads
    older = {k: v for k, v in published.items() if k not in ("weights_sha256", "snapshots_sha256")}
    (path / "entry.json").write_text(json.dumps(older, indent=2) + "\n")
    model_zoo.load(path)
    model_zoo.load(path, snapshot=20)
    files = {p: p.read_bytes() for p in path.rglob("*") if p.is_file() and p.name != "entry.json"}
    names = sorted(p.name for p in path.parent.iterdir())

    status, out = migrate(zoo, capsys)
    assert status == 0, out
    assert f"recorded the SHA-256 of model.pt, snapshots/step20.pt in {path / 'entry.json'}" in out
    assert "1 entries given the SHA-256 of their weights" in out
    assert json.loads((path / "entry.json").read_text()) == published
    assert {p: p.read_bytes() for p in files} == files  # nothing else rewritten
    assert sorted(p.name for p in path.parent.iterdir()) == names  # nor renamed

    status, again = migrate(zoo, capsys)  # a second run changes nothing
    assert status == 0 and "recorded" not in again and "0 entries given the SHA-256" in again
    assert json.loads((path / "entry.json").read_text()) == published

    changed_byte(path / "snapshots" / "step20.pt")
    model_zoo.load(path)  # the final weights are untouched
    with pytest.raises(ZooError) as refused:
        model_zoo.load(path, snapshot=20)
    assert one_line(refused.value).startswith(f"zoo entry {path}: snapshots/step20.pt is not the file")
    other_weights(path / "model.pt")
    with pytest.raises(ZooError, match=r"model\.pt is not the file the entry was published with"):
        model_zoo.load(path)


def test_a_digest_that_is_not_one_is_a_corrupt_entry(entry) -> None:
    info = json.loads((entry / "entry.json").read_text())
    (entry / "entry.json").write_text(json.dumps({**info, "weights_sha256": 12}))
    with pytest.raises(ZooError, match="is corrupt: entry.json's weights_sha256"):
        model_zoo.load(entry)


# -- B. what a zoo entry's config.yaml names -------------------------------------------------------------
EVIL_MODULE = "evil_tasks_module"


@pytest.fixture
def evil_module(tmp_path, monkeypatch) -> Path:
    """An importable module whose import alone leaves a marker file (it must never be imported)."""
    marker = tmp_path / "imported.txt"
    (tmp_path / f"{EVIL_MODULE}.py").write_text(
        f"open({str(marker)!r}, 'w').write('imported')\nclass Task:\n    pass\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, EVIL_MODULE, raising=False)
    return marker


@pytest.mark.parametrize(
    ("group", "node", "says"),
    [
        ("task", {"_target_": "builtins.open", "_args_": ["VICTIM", "w"]}, "task._args_ is an instruction"),
        (
            "task",
            {"_target_": "builtins.open", "file": "VICTIM"},
            "names builtins.open, which alignsearch does not",
        ),
        ("model", {"_target_": "alignsearch.atomic.write_text", "path": "VICTIM"}, "is not a class"),
        ("task", {"_target_": f"{EVIL_MODULE}.Task"}, f"task._target_ names {EVIL_MODULE}.Task, which"),
        (
            "model",
            {
                "_target_": "alignsearch.models.GRU",
                "d_model": 32,
                "x": {"_target_": "builtins.open", "_args_": ["VICTIM", "w"]},
            },
            "model.x._target_ is an instruction",
        ),
        ("model", {"_target_": "alignsearch.tasks.NumericTask"}, "not a subclass of alignsearch.models"),
    ],
    ids=[
        "builtins.open with _args_",
        "builtins.open",
        "a function of alignsearch",
        "an untrusted module",
        "nested",
        "a task as model",
    ],
)
def test_a_zoo_entry_naming_what_alignsearch_does_not_trust_is_refused_before_it_runs(
    group, node, says, entry, victim, evil_module
) -> None:
    settings = OmegaConf.to_container(OmegaConf.load(entry / "config.yaml"))
    settings[group] = json.loads(json.dumps(node).replace("VICTIM", str(victim)))
    (entry / "config.yaml").write_text(OmegaConf.to_yaml(settings))

    with pytest.raises(ZooError) as refused:
        model_zoo.load(entry)
    line = one_line(refused.value)
    assert line.startswith(f"zoo entry {entry}: config.yaml: {group}") and says in line, line
    assert_error_line(body_refusal("train_task_model.py", *TINY_TRAINING), str(entry), says)
    assert victim.read_text() == VICTIM_TEXT
    assert not evil_module.exists() and EVIL_MODULE not in sys.modules


def test_refusal_says_how_to_trust_a_module(entry) -> None:
    settings = OmegaConf.load(entry / "config.yaml")
    settings.task._target_ = "builtins.open"
    (entry / "config.yaml").write_text(OmegaConf.to_yaml(settings))
    with pytest.raises(ZooError) as refused:
        model_zoo.load(entry)
    assert str(refused.value).endswith(f"trust a module of yours with {ENV_TRUSTED})")


@pytest.fixture
def ones(tmp_path, monkeypatch) -> Path:
    """The toy task of ``test_toy_task`` (module ``ones_task``), its YAML in ``tmp_path/conf/task``."""
    (tmp_path / f"{MODULE}.py").write_text(TASK_FILE)
    conf = tmp_path / "conf"
    (conf / "task").mkdir(parents=True)
    (conf / "task" / "ones.yaml").write_text(TASK_YAML)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, MODULE, raising=False)
    monkeypatch.delenv(ENV_TRUSTED, raising=False)
    return conf


def test_a_task_of_the_users_own_config_folder_still_loads(ones, tmp_path, monkeypatch) -> None:
    from hydra.core.hydra_config import HydraConfig

    from alignsearch.cli.checks import model_request

    cfg = compose_config(
        "train_task_model", [f"paths.zoo_dir={tmp_path / 'zoo'}", "paths.output_dir=unused", *TINY_TRAINING]
    )
    cfg.task = OmegaConf.load(ones / "task" / "ones.yaml")
    req = model_request(cfg)
    trained = model_zoo.get_or_train(req, verbose=False)  # the user's own config names the task
    assert model_zoo.load(req.path, req).task.name == "ones"
    model_zoo.initial_model(trained)

    # the same entry loaded without the config that names it: only where the user trusts the module
    with pytest.raises(ZooError) as refused:
        model_zoo.load(req.path)
    assert "task._target_ names ones_task.OnesTask, which alignsearch does not trust" in one_line(
        refused.value
    )

    job = compose_checked("train_task_model", [f"hydra.searchpath=[file://{ones}]"], hydra=True)
    saved = HydraConfig.instance().cfg
    HydraConfig.instance().set_config(job)  # inside a Hydra job whose search path holds the task's YAML
    try:
        assert "ones_task" in trusted_modules()
        assert model_zoo.load(req.path).task.name == "ones"
    finally:
        HydraConfig.instance().cfg = saved
    assert "ones_task" not in trusted_modules()

    monkeypatch.setenv(ENV_TRUSTED, "mylab.models, ones_task")
    assert {"mylab.models", "ones_task"} <= set(trusted_modules())
    entry = model_zoo.load(req.path)
    assert entry.task.name == "ones"
    model_zoo.initial_model(entry)


# -- B. what an alignment file names -----------------------------------------------------------------------
def alignment_file(path: Path, **nodes) -> Path:
    """A well-formed alignment file (a rotation of width 8, 2 units of ``count``), with ``nodes`` replacing
    its entries."""
    from alignsearch.alignment import FixedLayout, Interchange, Rotation

    weights = Interchange([Rotation(8)], FixedLayout(["count"], [2], 8, 8)).state_dict()
    saved = {
        "state_dict": weights,
        "config": {},
        "function": {"_target_": "alignsearch.alignment.Rotation"},
        "layout": {"_target_": "alignsearch.alignment.FixedLayout"},
        "keep_target": True,
        "widths": [8],
        "models": ["m"],
        "sites": ["layer.0"],
        "variables": ["count"],
        "sizes": [2],
        **nodes,
    }
    torch.save(saved, path)
    return path


@pytest.mark.parametrize(
    ("nodes", "says"),
    [
        (
            {"function": {"_target_": "os.system", "_args_": ["touch MARKER"]}},
            "function._args_ is an instruction",
        ),
        (
            {"function": {"_target_": "os.system", "command": "touch MARKER"}},
            "names os.system, which alignsearch",
        ),
        (
            {"function": {"_target_": "alignsearch.atomic.write_text", "path": "VICTIM"}},
            "names alignsearch.atomic.write_text, which is not a class",
        ),
        ({"layout": {"_target_": "builtins.open", "file": "VICTIM"}}, "layout._target_ names builtins.open"),
        (
            {"layout": {"_target_": "alignsearch.alignment.Rotation"}},
            "is not a subclass of alignsearch.alignment.layout.FixedLayout",
        ),
    ],
    ids=[
        "os.system with _args_",
        "os.system",
        "a function of alignsearch",
        "builtins.open",
        "a function as layout",
    ],
)
def test_an_alignment_file_naming_what_alignsearch_does_not_trust_is_refused(
    nodes, says, tmp_path, victim, monkeypatch
) -> None:
    from alignsearch import api

    monkeypatch.chdir(tmp_path)
    nodes = json.loads(json.dumps(nodes).replace("VICTIM", str(victim)).replace("MARKER", "marker"))
    path = alignment_file(tmp_path / "alignment.pt", **nodes)
    with pytest.raises(ConfigError) as refused:
        api.load_alignment(path)
    line = one_line(refused.value)
    assert line.startswith(
        f"alignment={path} is not allowed: expected an alignment file whose content is data"
    )
    assert says in line, line
    assert victim.read_text() == VICTIM_TEXT and not (tmp_path / "marker").exists()


# -- B. checkpoints ----------------------------------------------------------------------------------------
class LeavesAMarker:
    """What a crafted checkpoint may hold: unpickling it calls ``open(marker, "w")``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def crafted_checkpoint(path: Path, marker: Path) -> Path:
    torch.save({"state_dict": {}, "global_step": 40, "payload": LeavesAMarker(marker)}, path)
    return path


def test_a_crafted_checkpoint_is_refused_and_runs_nothing(in_command_env, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")  # torch's default does not matter
    marker = tmp_path / "marker"
    given = crafted_checkpoint(tmp_path / "given.ckpt", marker)
    line = body_refusal("train_task_model.py", *TINY_TRAINING, f"ckpt_path={given}")
    assert_error_line(line, f"ckpt_path={given} is not allowed", "it asks to call io.open when read")
    assert not marker.exists()
    assert not (in_command_env / ENTRY).exists()


def test_lightning_resumes_through_a_reader_of_data_only(tmp_path, monkeypatch) -> None:
    from alignsearch.engine.trainer import WeightsOnlyCheckpointIO, make_trainer
    from alignsearch.settings import HardwareSettings

    hardware = HardwareSettings.parse(compose_config("train_task_model", TINY_TRAINING).hardware)
    trainer = make_trainer(hardware, max_steps=1, val_every=1, callbacks=[], loggers=False, root=tmp_path)
    assert isinstance(trainer.strategy.checkpoint_io, WeightsOnlyCheckpointIO)
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    marker = tmp_path / "marker"
    crafted = crafted_checkpoint(tmp_path / "last.ckpt", marker)
    with pytest.raises(Exception, match="io.open"):
        trainer.strategy.load_checkpoint(crafted)
    assert not marker.exists()
