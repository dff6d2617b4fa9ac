"""A call of the Python API leaves the user's world as it found it (:mod:`alignsearch.engine.world`): the
user's model (grad flags, modes), the random generators, threads, environment, warnings, loggers and
signal handlers, on success, on an error and on a Ctrl+C; a Ctrl+C reaches the caller (a notebook) as a
KeyboardInterrupt, the run resumable with the same ``out_dir``; and ``api.align`` without ``out_dir``
removes the temporary folder it worked in. A notebook's own process, run for real:
``commands/test_api_in_a_notebook.py``."""

from __future__ import annotations

import logging
import os
import random
import signal
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from alignsearch import api
from alignsearch.errors import ConfigError
from alignsearch.search.module import AlignmentModule
from tests.helpers import TINY_ALIGNMENT, TINY_TRAINING

QUICK = {"max_steps": 8, "val_every": 4}
OVERRIDES = [
    o for o in TINY_ALIGNMENT if o.split("=")[0] not in ("alignment.max_steps", "alignment.val_every")
]
"""Small data for the alignments (their steps are QUICK's)."""


# -- in this process: errors and interrupts ------------------------------------------------------------------
class Net(torch.nn.Module):
    """A model of the user's: Embedding -> GRU (``rnn``) -> Linear (nothing in it changes as it runs, so
    the same call finds the same model again and resumes)."""

    def __init__(self, vocab: int, width: int = 16) -> None:
        super().__init__()
        self.embed = torch.nn.Embedding(vocab, width)
        self.rnn = torch.nn.GRU(width, width, batch_first=True)
        self.out = torch.nn.Linear(width, vocab)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.out(self.rnn(self.embed(ids))[0])


def _net() -> Net:
    from tests.integration.test_api_models_in_memory import _task

    torch.manual_seed(0)
    net = Net(vocab=_task("multiobject").vocab.size)
    net.embed.weight.requires_grad_(False)
    net.out.eval()
    return net


def _flags(net: torch.nn.Module) -> tuple[dict, dict]:
    return (
        {n: p.requires_grad for n, p in net.named_parameters()},
        {n: m.training for n, m in net.named_modules()},
    )


def _world() -> dict:
    return {
        "environ": dict(os.environ),
        "filters": list(warnings.filters),
        "threads": torch.get_num_threads(),
        "levels": {
            n: lg.level
            for n, lg in logging.Logger.manager.loggerDict.items()
            if isinstance(lg, logging.Logger)
        },
        "sigint": signal.getsignal(signal.SIGINT),
        "grad": torch.is_grad_enabled(),
    }


def _as_found(world: dict) -> bool:
    """The world is as ``world`` says; loggers created in between aside."""
    now = _world()
    now["levels"] = {n: level for n, level in now["levels"].items() if n in world["levels"]}
    return now == world


def _draws() -> tuple:
    return torch.rand(4).tolist(), random.random(), np.random.rand(2).tolist()


def _seed() -> None:
    torch.manual_seed(99)
    random.seed(99)
    np.random.seed(99)


def _align(net, out_dir=None, site="rnn"):
    return api.align(
        net, task="multiobject", site=site, n_units=4, out_dir=out_dir, progress=False,
        overrides=OVERRIDES, **QUICK,
    )  # fmt: skip


def _interrupt_at(monkeypatch, step: int, how) -> list[int]:
    """Make the training step at global step ``step`` of the next alignment call ``how()`` first; the
    global steps that run are appended to the list returned."""
    steps: list[int] = []
    original = AlignmentModule.training_step

    def training_step(self, batch, batch_idx):
        steps.append(self.global_step)
        if self.global_step == step and len(steps) == step + 1:
            how()
        return original(self, batch, batch_idx)

    monkeypatch.setattr(AlignmentModule, "training_step", training_step)
    return steps


def test_an_error_inside_align_leaves_the_model_and_the_world_as_found(monkeypatch) -> None:
    net = _net()
    flags, world = _flags(net), _world()
    _seed()
    _draws()
    reference = _draws()

    def boom() -> None:
        raise RuntimeError("a forward that fails")

    _interrupt_at(monkeypatch, 2, boom)
    _seed()
    _draws()
    with pytest.raises(RuntimeError, match="a forward that fails"):
        _align(net)
    assert _draws() == reference
    assert _flags(net) == flags and _as_found(world)
    # an error found after the model was frozen (a site it does not have): the same
    with pytest.raises(ConfigError, match="no_such_module"):
        _align(net, site="no_such_module")
    assert _flags(net) == flags and _as_found(world)


def test_ctrl_c_during_training_is_a_keyboard_interrupt_and_the_same_call_resumes(
    tmp_path, monkeypatch
) -> None:
    net = _net()
    flags, world = _flags(net), _world()
    steps = _interrupt_at(monkeypatch, 3, lambda: os.kill(os.getpid(), signal.SIGINT))
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt) as caught:
        _align(net, out_dir=out)
    message = str(caught.value)
    assert message.startswith("interrupted at step 4 (checkpoint saved in ")
    assert message.endswith(f"call again with the same out_dir ({out}) to resume")
    assert _flags(net) == flags and _as_found(world)
    assert (out / "checkpoints" / "last.ckpt").is_file()
    assert steps == [0, 1, 2, 3]
    result = _align(net, out_dir=out)  # resumes at step 4, from the checkpoint
    assert steps == [0, 1, 2, 3, 4, 5, 6, 7] and result.steps == QUICK["max_steps"]
    assert _flags(net) == flags and _as_found(world)


def test_a_keyboard_interrupt_lightning_turns_into_system_exit_reaches_the_caller_as_one(
    tmp_path, monkeypatch
) -> None:
    net = _net()
    flags, world = _flags(net), _world()

    def ctrl_c() -> None:
        raise KeyboardInterrupt

    steps = _interrupt_at(monkeypatch, 5, ctrl_c)
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt, match=r"^interrupted; call again with the same out_dir"):
        _align(net, out_dir=out)
    assert _flags(net) == flags and _as_found(world)  # Lightning's SIG_IGN for SIGINT undone too
    assert _align(net, out_dir=out).steps == QUICK["max_steps"]
    assert steps == [0, 1, 2, 3, 4, 5, 4, 5, 6, 7]  # resumed from the checkpoint of step 4's evaluation
    _interrupt_at(monkeypatch, 1, ctrl_c)
    with pytest.raises(KeyboardInterrupt, match="without out_dir .* give out_dir= to make a run resumable"):
        _align(net)
    assert _flags(net) == flags and _as_found(world)


def test_a_language_model_in_memory_is_frozen_only_while_a_call_runs_it(toy_lms) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from alignsearch.text.toy import count_pair_rows

    folder = toy_lms["gpt2"]
    hf = AutoModelForCausalLM.from_pretrained(folder).train()
    hf.transformer.wpe.requires_grad_(False)  # the user's own choices
    hf.transformer.drop.eval()
    flags, world = _flags(hf), _world()
    lm = api.language_model(hf, AutoTokenizer.from_pretrained(folder))
    assert lm.lm is hf and _flags(hf) == flags and _as_found(world)
    pairs = api.text_pairs(count_pair_rows(64, seed=0), lm.tokenizer)
    result = api.align(lm, data=pairs, variables=["count"], layer=0, n_units=4, progress=False, **QUICK)
    assert _flags(hf) == flags and _as_found(world)
    api.iia(result, [lm], pairs)
    assert _flags(hf) == flags and _as_found(world)


# -- the rest of what is kept, without a run -----------------------------------------------------------------
def test_what_a_call_could_change_is_put_back_whatever_it_did(tmp_path) -> None:
    from alignsearch.engine import world

    torch.manual_seed(7)  # on a machine without CUDA started: the seed CUDA is to start from
    queued = vars(torch.cuda._lazy_seed_tracker).copy() if hasattr(torch.cuda, "_lazy_seed_tracker") else {}
    net = torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.BatchNorm1d(3))
    net[1].eval()
    weight, stats = net[0].weight.data, net[1].running_mean
    settings = (
        torch.are_deterministic_algorithms_enabled(),
        torch.get_default_dtype(),
        torch.get_float32_matmul_precision(),
        torch.is_grad_enabled(),
        os.getcwd(),
        torch.backends.cudnn.benchmark,
    )
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level

    @world.as_found
    def call(models) -> None:
        assert not any(m.training for m in net.modules()) and not net[0].weight.requires_grad
        torch.manual_seed(1)
        torch.use_deterministic_algorithms(True)
        torch.set_default_dtype(torch.float64)
        torch.set_float32_matmul_precision("medium")
        torch.set_grad_enabled(False)
        torch.backends.cudnn.benchmark = True
        os.chdir(tmp_path)
        root.addHandler(logging.NullHandler())
        logging.disable(logging.INFO)
        net.double()  # a run that moved the model to another dtype (or device)
        net[0].register_forward_hook(lambda *args: None)  # a hook a call cut short left behind
        raise ValueError("cut short")

    with pytest.raises(ValueError, match="cut short"):
        call({"models": [net]})
    assert (
        net[0].weight.data_ptr() == weight.data_ptr()
        and net[1].running_mean is stats
        and net[0].weight.dtype == torch.float32
    )
    assert [m.training for m in net.modules()] == [True, True, False] and net[0].weight.requires_grad
    assert not net[0]._forward_hooks
    assert settings == (
        torch.are_deterministic_algorithms_enabled(),
        torch.get_default_dtype(),
        torch.get_float32_matmul_precision(),
        torch.is_grad_enabled(),
        os.getcwd(),
        torch.backends.cudnn.benchmark,
    )
    assert (list(root.handlers), root.level, logging.root.manager.disable) == (handlers, level, 0)
    if queued and not torch.cuda.is_initialized():
        assert vars(torch.cuda._lazy_seed_tracker) == queued


# -- api.align's temporary folder ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_gru(tiny_zoo):
    """A GRU trained for a few steps (its alignments need not be good), from the session's tiny zoo."""
    return api.model(zoo_dir=tiny_zoo, overrides=TINY_TRAINING)


def test_align_removes_its_temporary_folder(tiny_gru, tmp_path, monkeypatch) -> None:
    """Without out_dir, api.align works in a temporary folder and removes it, also when it fails."""
    temp = tmp_path / "temp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    gru = tiny_gru
    tiny = [o for o in TINY_ALIGNMENT if not o.startswith("alignment.max_steps")]
    result = api.align(gru, n_units=4, max_steps=2, overrides=tiny)
    assert result.steps == 2
    assert list(temp.iterdir()) == []

    seen: list[Path] = []

    def fail(plan, models, work, **settings):
        seen.append(work)
        work.mkdir(parents=True, exist_ok=True)
        (work / "partial").write_text("")
        raise RuntimeError("failed in training")

    from alignsearch.search import run

    monkeypatch.setattr(run, "fit_alignment", fail)
    with pytest.raises(RuntimeError, match="failed in training"):
        api.align(gru, n_units=4, max_steps=2, overrides=tiny)
    assert seen and seen[0].parent == temp and list(temp.iterdir()) == []

    kept = tmp_path / "kept"
    with pytest.raises(RuntimeError):
        api.align(gru, n_units=4, max_steps=2, out_dir=kept, overrides=tiny)
    assert (kept / "partial").is_file()  # the user's folder stays
