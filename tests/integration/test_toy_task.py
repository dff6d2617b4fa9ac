"""A new task is one file plus one YAML: a task and its causal model written outside the package, trained,
paired and aligned through the command line with ``hydra.searchpath`` pointing at the YAML's folder.

The task, *ones*: demo tokens ``D0``/``D1``, the trigger, then one ``R`` per ``D1`` shown, then the end::

    B D1 D0 D1 T R R E        ones = 2

Its causal model, *tally*, counts the ``D1`` tokens (``ones``) and counts down with each response.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path

import pytest
import torch

from alignsearch.tasks import CountTask, causal_model_for, causal_models_for
from tests.helpers import (
    TINY_ALIGNMENT,
    TINY_SUFFIX,
    TINY_TRAINING,
    assert_refused,
    check_task,
    run_here,
    run_pairs,
)

MODULE = "ones_task"
TASK_FILE = '''
"""Ones: count the D1 tokens among the demos; the answer is one R per D1."""

import torch

from alignsearch.configurable import Configurable
from alignsearch.tasks import CausalModel, SequenceBatch, Vocabulary, register_causal_model
from alignsearch.tasks.causal import DEMO_PHASE, ENVIRONMENT, RESPONSE_PHASE

D0, D1, R, T = 3, 4, 5, 6


class OnesTask(Configurable):
    name = "ones"
    naming_keys = ()

    def __init__(self, max_count: int = 6) -> None:
        self.min_count, self.max_count = 1, max_count
        self.train_counts = torch.arange(1, max_count + 1)
        self.vocab = Vocabulary(("P", "B", "E", "D0", "D1", "R", "T"), demo=(D0, D1), response=(R,), trigger=T)

    def splits(self):
        return ("train",)

    def sample(self, n, generator=None, *, split="train", counts=None):
        if counts is None:
            counts = torch.randint(1, self.max_count + 1, (n,), generator=generator)
        n, m = len(counts), self.max_count
        demos = torch.randint(D0, D1 + 1, (n, m), generator=generator)
        demos[torch.arange(m)[None, :] >= counts[:, None]] = D0
        ones = ((demos == D1) & (torch.arange(m)[None, :] < counts[:, None])).sum(1)
        trigger, end = counts[:, None] + 1, (counts + ones + 2)[:, None]  # positions of T and E
        length = int(end.max()) + 1
        pos = torch.arange(length)[None, :]
        ids = torch.nn.functional.pad(demos, (1, length))[:, :length]  # demo j at position j + 1
        ids = torch.where(pos < trigger, ids, self.vocab.pad)
        ids[:, 0] = self.vocab.bos
        ids[pos.expand(n, -1) == trigger] = T
        ids[(pos > trigger) & (pos < end)] = R
        ids[pos.expand(n, -1) == end] = self.vocab.eos
        task_mask = (pos > trigger) & (pos <= end)
        return SequenceBatch(ids, task_mask, {"obj_count": counts, "ones": ones}, self.vocab.pad)


@register_causal_model
class Tally(CausalModel):
    """ones: +1 for each D1 shown, -1 for each response; R while ones > 0, then E."""

    name = "tally"
    variables = ("ones", "phase")

    @classmethod
    def fits(cls, task) -> bool:
        return isinstance(task, OnesTask)

    @classmethod
    def for_task(cls, task):
        return cls(task.vocab, rule=lambda n: n)

    def init_state(self, batch):
        return {"ones": torch.zeros(batch, dtype=torch.long), "phase": torch.full((batch,), DEMO_PHASE)}

    def step(self, state, tokens):
        is_demo, is_trigger, is_response, is_end = self._classify(state, tokens)
        ones, phase = state["ones"], state["phase"]
        ones = torch.where(is_demo & (tokens == D1), ones + 1, ones)
        ones = torch.where(is_response, ones - 1, ones)
        phase = torch.where(is_trigger | is_end, RESPONSE_PHASE, phase)
        return {"ones": torch.where(is_end, -1, ones), "phase": phase}

    def emit(self, state):
        ones = state["ones"]
        token = torch.where(ones > 0, R, torch.where(ones == 0, self.vocab.eos, self.vocab.pad))
        return torch.where(state["phase"] == DEMO_PHASE, ENVIRONMENT, token)
'''
TASK_YAML = """# Ones: demo tokens D0/D1, the trigger, one R per D1 shown
_target_: ones_task.OnesTask
max_count: 6
"""


@pytest.fixture
def toy(tmp_path: Path, monkeypatch) -> Path:
    """The task's file in ``tmp_path`` (importable here and by the commands), its YAML in
    ``tmp_path/conf/task/ones.yaml``; returns the config folder."""
    (tmp_path / f"{MODULE}.py").write_text(TASK_FILE)
    conf = tmp_path / "conf"
    (conf / "task").mkdir(parents=True)
    (conf / "task" / "ones.yaml").write_text(TASK_YAML)
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")]))
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, MODULE, raising=False)
    return conf


def load_toy(tmp_path: Path):
    spec = importlib.util.spec_from_file_location(MODULE, tmp_path / f"{MODULE}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[MODULE] = module
    spec.loader.exec_module(module)
    return module


def test_the_toy_task_keeps_the_protocol_and_its_causal_model_explains_it(toy, tmp_path) -> None:
    task = load_toy(tmp_path).OnesTask()
    check_task(task)
    assert isinstance(task, CountTask) and causal_models_for(task) == ["tally"]
    batch = task.sample(2, counts=torch.tensor([3, 2]))
    ones = batch.variables["ones"].tolist()
    assert [task.vocab.decode(row).split().count("R") for row in batch.ids] == ones
    emitted = causal_model_for(task, "tally").emissions(batch.ids)[:, :-1]
    task_next = batch.task_mask[:, 1:]
    assert torch.equal(emitted[task_next], batch.ids[:, 1:][task_next])


def test_a_new_task_trains_pairs_and_aligns_through_the_command_line(
    toy, zoo, tmp_path, in_command_env, monkeypatch
) -> None:
    search = f"hydra.searchpath=[file://{toy}]"
    trained = run_here("train_task_model.py", search, "task=ones", *TINY_TRAINING, zoo=zoo, cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr
    entry = zoo / "ones" / "gru" / f"seed0-d_model32{TINY_SUFFIX}"
    metrics = json.loads((entry / "metrics.json").read_text())
    assert metrics["steps"] == 40 and "val_trial_acc" in metrics

    assert_refused(  # the causal models of the task, by the same one-line error as any other task's
        "run_alignment.py", search, "task=ones", *TINY_TRAINING,
        says=["alignment.causal_model=updown", "a causal model of task ones: tally"],
    )  # fmt: skip

    aligned = run_here(
        "run_alignment.py",
        search,
        "task=ones",
        "alignment.causal_model=tally",
        "alignment.variables=[ones]",
        "n_units=4",
        *TINY_TRAINING,
        *TINY_ALIGNMENT,
        zoo=zoo,
        cwd=tmp_path,
    )
    assert aligned.returncode == 0, aligned.stderr
    (path,) = tmp_path.glob("outputs/run_alignment/*/results.json")
    results = json.loads(path.read_text())
    assert results["config"]["task"] == "ones" and results["config"]["causal_model"] == "tally"
    (record,) = results["records"]
    assert record["variable"] == "ones" and record["source"] == f"ones/gru/{entry.name}"
    # the saved alignment on the run's validation and test pairs of the new task, drawn again here
    from alignsearch import api
    from alignsearch import zoo as model_zoo
    from alignsearch.components import ENV_TRUSTED

    monkeypatch.setenv(ENV_TRUSTED, MODULE)  # the entry loaded outside a command that names the task
    loaded = model_zoo.load(entry)
    saved = api.load_alignment(path.parent / "alignment.pt")
    for split, key in (("val", "iia"), ("test", "iia_test")):
        pairs = run_pairs(loaded.task, "ones", split=split, causal_model="tally")
        assert api.iia(saved, loaded, pairs)["iia"] == record[key], split
    assert json.loads((entry / "metrics.json").read_text()) == metrics  # the zoo's model, not trained again


def test_a_partner_can_use_the_new_task(toy, tmp_path, monkeypatch) -> None:
    """``partner.task`` finds choices in ``hydra.searchpath`` folders too (checked before Hydra runs, as
    the command line does; inside a running Hydra app the app's search path is used)."""
    from hydra import initialize_config_dir

    from alignsearch.cli import check_command
    from alignsearch.cli.commands import ALIGN
    from alignsearch.components import CONF_DIR, load_choice
    from alignsearch.errors import ConfigError

    monkeypatch.chdir(tmp_path)
    argv = [f"hydra.searchpath=[file://{toy}]", "alignment=mas", "partner.task=ones", *TINY_TRAINING]
    with pytest.raises(
        ConfigError, match=r"^partner\.causal_model=updown .*a causal model of task ones: tally"
    ):
        check_command(argv, ALIGN)
    paired = [*argv, "partner.causal_model=tally", "partner.variables=[ones]", "n_units=4"]
    assert check_command(paired, ALIGN) == paired
    with pytest.raises(
        ConfigError, match=r"^partner\.task=ones is not allowed: expected one of arithmetic, "
    ):
        load_choice("task", "ones", "partner.task")  # without the folder
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):  # as inside a Hydra app
        assert load_choice("task", "ones", "partner.task", [toy]).max_count == 6
