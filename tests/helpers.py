"""Shared test helpers: the repository root, small settings, running the entry points, composing configs,
and what a refused command says."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir

from alignsearch.cli.commands import ALIGN, SCAN, TRAIN, Command
from alignsearch.errors import ConfigError, ZooError
from alignsearch.models.lm import TEXT_MODEL
from alignsearch.seeding import generator
from alignsearch.tasks import CountTask, Task, Vocabulary
from alignsearch.tasks.protocol import SPLITS

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"

# Small settings that train in seconds; the results are not meant to be good.
TINY_TRAINING = [
    "model.d_model=32",
    "training.max_steps=40",
    "training.val_every=20",
    "training.checkpoint_every=20",
    "training.n_val=64",
    "training.n_heldout=32",
    "training.batch_size=32",
    "hardware.progress_bar=false",
]
TINY_SUFFIX = "-batch_size32-max_steps40-val_every20-n_val64"
"""The zoo-name suffix of TINY_TRAINING's training settings (``seed0-d_model32`` + this)."""

TINY_ALIGNMENT = [
    "alignment.n_train=256",
    "alignment.n_val=128",
    "alignment.n_heldout=128",
    "alignment.n_test=128",
    "alignment.max_steps=20",
    "alignment.val_every=10",
    "alignment.batch_size=32",
    "alignment.eval_batch_size=128",
    "min_task_accuracy=0",  # TINY_TRAINING's models are not meant to learn the task
]

SMALL_GRU = [
    "model.d_model=32",
    "training.max_steps=1500",
    "training.stop_at=0.98",
    "training.n_val=256",
    "training.n_heldout=128",
    "hardware.progress_bar=false",
]
"""The GRU of the ``trained_zoo`` fixture: its model and training settings (they name its zoo entry)."""
SMALL_GRU_ENTRY = "seed0-d_model32-max_steps1500-n_val256-stop_at0.98"


def command_env(zoo: Path) -> dict[str, str]:
    """The environment of an entry point run by a test: its own zoo, W&B offline, short Hydra errors."""
    return {**os.environ, "ALIGNSEARCH_ZOO": str(zoo), "WANDB_MODE": "offline", "HYDRA_FULL_ERROR": "0"}


def run_script(
    script: str, *args: str, zoo: Path, cwd: Path, timeout: float = 600
) -> subprocess.CompletedProcess:
    """Run an entry point of the repository as a user would, with its own zoo."""
    return subprocess.run(
        [sys.executable, str(ROOT / script), *args],
        cwd=cwd,
        env=command_env(zoo),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def run_here(script: str, *args: str, zoo: Path, cwd: Path) -> subprocess.CompletedProcess:
    """What ``run_script`` gives for ``python <script> <args>``, with the entry point's ``run`` in this
    process: for a test of what the command does (its jobs, folders, results, lines it prints) rather
    than of the process around it (imports, exit status as the shell sees it, launchers that start
    processes). The command sees ``sys.argv``, the environment of ``command_env`` and the working folder
    ``cwd``; its stdout and stderr are captured (``print``, Hydra's job log; not log handlers made before
    the run, such as Lightning's); its exit status comes from ``SystemExit`` (0 without). All of it,
    logging, Hydra's global state and the entry points' module state (failed jobs, signals) included,
    is put back after."""
    import contextlib
    import io
    import logging

    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig

    from alignsearch.cli import launch, sweep
    from alignsearch.engine import interrupt

    command = entry_point(script)
    env = {key: value for key, value in command_env(zoo).items() if os.environ.get(key) != value}
    saved_env = {key: os.environ.get(key) for key in env}
    saved_argv, saved_cwd, saved_threads = sys.argv, Path.cwd(), torch.get_num_threads()
    saved_hydra_config = HydraConfig.instance().cfg  # the jobs' config: read by the bodies when set
    root = logging.getLogger()
    saved_log = (root.handlers[:], root.level)
    out, err = io.StringIO(), io.StringIO()
    status: int | str | None = 0
    sweep.FAILED.clear()
    interrupt.INTERRUPTED.clear()
    GlobalHydra.instance().clear()
    try:
        os.environ.update(env)
        os.chdir(cwd)
        sys.argv = [str(ROOT / script), *args]
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                launch(command)
            except SystemExit as e:
                status = e.code
    finally:
        for handler in root.handlers:
            if handler not in saved_log[0]:
                handler.close()
        root.handlers[:], root.level = saved_log
        GlobalHydra.instance().clear()
        HydraConfig.instance().cfg = saved_hydra_config
        sweep.FAILED.clear()
        interrupt.INTERRUPTED.clear()
        torch.set_num_threads(saved_threads)
        sys.argv = saved_argv
        os.chdir(saved_cwd)
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    if isinstance(status, str):  # sys.exit("message"): printed, status 1
        err.write(f"{status}\n")
    code = status if isinstance(status, int) else (0 if status is None else 1)
    return subprocess.CompletedProcess([script, *args], code, out.getvalue(), err.getvalue())


def quick_similarity(monkeypatch, sample_size: int = 200, runs: int = 2) -> None:
    """Two-model alignments run in this process (``run_here``, ``run_alignment.main``) compute their
    similarity baselines (``similarity.json``) on ``runs`` subsets of ``sample_size`` rows instead of
    10 of 1000: the same measures and files, for tests that do not look at the values' precision."""
    import functools

    from alignsearch.search import run as run_alignment
    from alignsearch.similarity import similarity

    monkeypatch.setattr(
        run_alignment, "similarity", functools.partial(similarity, sample_size=sample_size, runs=runs)
    )


def start(script: str, *args: str, zoo: Path, cwd: Path) -> subprocess.Popen:
    """An entry point started as ``run_script`` runs it, without waiting for it."""
    return subprocess.Popen(
        [sys.executable, str(ROOT / script), *args],
        cwd=cwd,
        env=command_env(zoo),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def compose_config(name: str, overrides: list[str]):
    """The config ``name`` with ``overrides``, composed as Hydra composes it (without the hydra node)."""
    with initialize_config_dir(str(CONF), version_base="1.3"):
        return compose(name, overrides=overrides)


def assert_error_line(line: str, *fragments: str) -> None:
    """``line`` is a user error as the commands print it, and says each of ``fragments``."""
    assert "\n" not in line and line.startswith("error: "), line
    for fragment in fragments:
        assert fragment in line, line


def assert_one_line_error(result: subprocess.CompletedProcess, *fragments: str) -> None:
    """A command that stopped with exit status 2 and one line on stderr saying each of ``fragments``."""
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert_error_line(lines[0], *fragments)


def entry_point(script: str) -> Command:
    """The command an entry point script (or module, ``alignsearch.scan``) launches."""
    return {"train_task_model.py": TRAIN, "run_alignment.py": ALIGN, "alignsearch.scan": SCAN}[script]


def refusal(script: str, *args: str) -> str:
    """The line ``python <script> <args>`` prints when its checks before Hydra refuse the command, found
    in this process (``alignsearch.cli.check_command``, as ``launch`` runs it). Run it under the
    ``in_command_env`` fixture for the zoo and working folder ``run_script`` would give the command."""
    from alignsearch.cli import check_command

    with pytest.raises((ConfigError, ZooError)) as caught:
        check_command(list(args), entry_point(script))
    return f"error: {caught.value}"


def assert_refused(script: str, *args: str, says: tuple[str, ...] | list[str]) -> None:
    """``python <script> <args>`` stops before Hydra starts with one line saying each of ``says``."""
    assert_error_line(refusal(script, *args), *says)


def body_refusal(script: str, *overrides: str, output_dir: Path | str = "outputs/run") -> str:
    """The line ``python <script> <overrides>`` prints when the entry point's body refuses the command
    (a ConfigError or ZooError found after the checks before Hydra), found in this process: the body
    runs on the config composed from ``overrides``, in ``output_dir``. Run it under ``in_command_env``."""
    command = entry_point(script)
    cfg = compose_config(command.config_name, [*overrides, f"paths.output_dir={Path(output_dir).resolve()}"])
    with pytest.raises((ConfigError, ZooError)) as caught:
        command.body_function()(cfg)
    return f"error: {caught.value}"


def conf_node(path: Path):
    """The config of ``conf/<group>/<choice>.yaml`` as Hydra composes it (its ``defaults`` applied)."""
    from alignsearch.components import load_choice

    return load_choice(path.parent.name, path.stem, path.parent.name)


def check_task(task) -> None:
    """What :class:`alignsearch.tasks.Task` promises, checked on samples of every split."""
    assert isinstance(task, Task)
    assert isinstance(task.name, str) and isinstance(task.vocab, Vocabulary)
    assert set(task.naming_keys) <= set(task.settings())
    splits = task.splits()
    assert splits[0] == "train" and set(splits) <= set(SPLITS)
    v = task.vocab
    for split in splits:
        batch = task.sample(64, generator(0, split), split=split)
        again = task.sample(64, generator(0, split), split=split)
        assert torch.equal(batch.ids, again.ids) and torch.equal(batch.task_mask, again.task_mask)
        assert batch.ids.dtype == torch.long and batch.task_mask.dtype == torch.bool
        assert batch.ids.shape == batch.task_mask.shape and batch.ids.shape[0] == 64
        assert batch.pad_id == v.pad and int(batch.ids.max()) < v.size
        assert (batch.ids[:, 0] == v.bos).all()
        last = batch.lengths - 1
        assert (batch.ids[torch.arange(64), last] == v.eos).all()
        assert not batch.task_mask[batch.ids == v.pad].any() and batch.task_mask.any(1).all()
        assert all(len(values) == 64 for values in batch.variables.values())
    if isinstance(task, CountTask):
        counts = task.train_counts
        assert task.min_count <= int(counts.min()) and int(counts.max()) <= task.max_count
        batch = task.sample(len(counts), generator(1), counts=counts)
        assert len(batch) == len(counts)


PRETRAINED_MODEL = TEXT_MODEL


def task_model_configs() -> list[Path]:
    """The ``conf/model`` YAMLs of models trained on the tasks: all but ``lm``, a pretrained language model
    that needs its folder (tested in ``integration/test_lm_model.py``; its YAML is global: ``model:`` and the groups
    it leaves out)."""
    from omegaconf import OmegaConf

    paths = sorted((CONF / "model").glob("*.yaml"))
    return [p for p in paths if OmegaConf.select(OmegaConf.load(p), "model._target_") != PRETRAINED_MODEL]


def plan_of(cfg, entries: list) -> AlignmentPlan:  # noqa: F821 - a test's plan from a composed config
    """The plan the run core makes of a composed ``run_alignment`` config on these zoo entries."""
    from alignsearch.inputs import zoo_model
    from alignsearch.search.planning import plan_run
    from alignsearch.settings import AlignmentSettings, RunSettings

    models = [zoo_model(e, i) for i, e in enumerate(entries)]
    return plan_run(models, AlignmentSettings.parse(cfg.alignment), RunSettings.parse(cfg))


class TinyNet(torch.nn.Module):
    """A model written without alignsearch: Embedding -> GRU (``rnn``) -> Linear, token ids (batch,
    length) in, logits (batch, length, vocab) out; counts its forward calls (``calls``)."""

    def __init__(self, vocab: int = 8, width: int = 16) -> None:
        super().__init__()
        self.embed = torch.nn.Embedding(vocab, width)
        self.rnn = torch.nn.GRU(width, width, batch_first=True)
        self.out = torch.nn.Linear(width, vocab)
        self.calls = 0

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.out(self.rnn(self.embed(ids))[0])


def run_pairs(
    task,
    variable: str = "count",
    n: int = 128,
    split: str = "val",
    *,
    causal_model: str = "updown",
    seed: int = 0,
    direction: str = "0>0",
    **options,
):
    """The counterfactual pairs a task-model run with ``seed`` drew for ``split`` (``val``, ``heldout`` or
    ``test``) of one direction and variable, drawn again from their seeded stream as the run core draws
    them (``search.fit.build_pairs``: ``pairs/<split>/<variable>`` for ``0>0``, ``pairs/<split>/<direction>/
    <variable>`` for the others; ``n`` is ``alignment.n_<split>``). ``api.iia`` of the run's alignment on
    them gives the record's IIA of that split: a reference computed outside the run."""
    from alignsearch.seeding import generator
    from alignsearch.tasks import causal_model_for
    from alignsearch.tasks.counterfactual import make_pairs

    keys = (split, variable) if direction == "0>0" else (split, f"{direction}/{variable}")
    return make_pairs(
        task,
        causal_model_for(task, causal_model),
        variable,
        n,
        generator(seed, "pairs", *keys),
        split="heldout" if split == "heldout" else "train",
        **options,
    )


def task_accuracies(model, task, n: int, split: str = "val", *, seed: int = 0) -> tuple[float, float]:
    """Trial and token accuracy of a trained task model on the ``n`` evaluation sequences of ``split``
    (``val`` or ``heldout``) that its training drew with ``seed`` (``training.data``: the ``eval/<split>``
    stream), computed here by hand: next-token predictions, teacher-forced, on the task tokens."""
    from alignsearch.seeding import generator

    seqs = task.sample(n, generator(seed, "eval", split), split="train" if split == "val" else split)
    with torch.no_grad():
        preds = model(seqs.ids[:, :-1]).argmax(-1)
    targets, mask = seqs.ids[:, 1:], seqs.task_mask[:, 1:]
    right = preds == targets
    trial = (right | ~mask).all(dim=1).float().mean().item()
    token = (right & mask).sum().item() / mask.sum().item()
    return trial, token


QUICK_API = {"n_units": 4, "max_steps": 20, "val_every": 10, "progress": False, "min_task_accuracy": 0}
"""Keyword arguments of a tiny ``api.align`` (with ``overrides=TINY_ALIGNMENT``): numbers not meant to be good."""


def refused(call, *args, **kwargs) -> str:
    """The one-line message of the ConfigError ``call(*args, **kwargs)`` raises."""
    with pytest.raises(ConfigError) as error:
        call(*args, **kwargs)
    message = str(error.value)
    assert "\n" not in message, message
    return message
