"""The Python API in a notebook's own process, run for real: a notebook that trains its own model, sets
its own seeds, threads, environment, warnings and loggers, then aligns and evaluates finds its world as it
left it, and trains on (the same in this process, on success, error and Ctrl+C:
``integration/test_api_world.py``)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

from tests.helpers import ROOT
from tests.integration.test_api_world import OVERRIDES

NOTEBOOK = textwrap.dedent(
    """
    # What a notebook does, cell by cell, in a fresh process: train its own model, set its own seeds,
    # threads, environment, warnings and loggers, align the model and evaluate the alignment, then go on.
    import logging, os, random, signal, sys, warnings
    import numpy as np
    import torch
    from alignsearch import api
    from alignsearch.components import build_task
    from tests.helpers import run_pairs  # the run's validation pairs, drawn again (a reference)

    task = build_task(api.config("train_task_model", ["task=multiobject"]).task)

    class Net(torch.nn.Module):
        def __init__(self, vocab, width=16):
            super().__init__()
            self.embed = torch.nn.Embedding(vocab, width)
            self.rnn = torch.nn.GRU(width, width, batch_first=True)
            self.drop = torch.nn.Dropout(0.1)
            self.out = torch.nn.Linear(width, vocab)

        def forward(self, ids):
            return self.out(self.drop(self.rnn(self.embed(ids))[0]))

    torch.manual_seed(0)
    net = Net(task.vocab.size)
    opt = torch.optim.SGD([p for p in net.parameters()], lr=0.1)

    def step():
        seqs = task.sample(16, torch.Generator().manual_seed(1))
        logits = net(seqs.ids)
        loss = torch.nn.functional.cross_entropy(logits[:, :-1].flatten(0, 1), seqs.ids[:, 1:].flatten())
        opt.zero_grad()
        loss.backward()
        opt.step()

    for _ in range(3):
        step()
    net.embed.weight.requires_grad_(False)  # the user's own choices: one frozen weight, one module in eval
    net.drop.eval()

    torch.set_num_threads(2)
    os.environ["MY_NOTEBOOK_SETTING"] = "1"
    os.environ.pop("PL_GLOBAL_SEED", None)
    warnings.filterwarnings("ignore", message="my notebook's own warning")
    logging.getLogger("my_notebook").setLevel(logging.ERROR)
    logging.getLogger("lightning.pytorch.utilities.rank_zero").setLevel(logging.DEBUG)

    def draws():
        return torch.rand(4).tolist(), random.random(), np.random.rand(3).tolist()

    def seed():
        torch.manual_seed(1234); random.seed(1234); np.random.seed(1234)

    seed()
    draws()
    reference = draws()  # the stream the notebook sees without calling the API
    grads = {n: p.requires_grad for n, p in net.named_parameters()}
    modes = {n: m.training for n, m in net.named_modules()}
    environ = dict(os.environ)
    filters = list(warnings.filters)
    levels = {n: lg.level for n, lg in logging.Logger.manager.loggerDict.items() if isinstance(lg, logging.Logger)}
    sigint = signal.getsignal(signal.SIGINT)

    seed()
    draws()
    result = api.align(
        net, task="multiobject", site="rnn", n_units=4, out_dir=sys.argv[1], progress=False,
        overrides=[*sys.argv[2:], "hardware.threads=1"], max_steps=8, val_every=4,
    )
    scores = api.iia(result, [net], run_pairs(task), task="multiobject")  # on the run's validation pairs
    assert (scores["iia"], scores["token_iia"]) == (result.records[0].iia, result.records[0].token_iia)

    assert draws() == reference, "the random streams go on as without the API"
    assert {n: p.requires_grad for n, p in net.named_parameters()} == grads
    assert {n: m.training for n, m in net.named_modules()} == modes
    assert torch.get_num_threads() == 2
    assert dict(os.environ) == environ
    assert warnings.filters == filters
    now = {n: lg.level for n, lg in logging.Logger.manager.loggerDict.items() if isinstance(lg, logging.Logger)}
    assert {n: now[n] for n in levels} == levels
    assert signal.getsignal(signal.SIGINT) is sigint

    before = [p.detach().clone() for p in net.parameters()]
    step()  # the notebook trains on
    changed = [not torch.equal(a, p) for a, p in zip(before, net.parameters())]
    assert changed == [p.requires_grad for p in net.parameters()] and any(changed)
    print("as found")
    """
)


def test_a_notebook_finds_its_world_as_it_left_it(tmp_path) -> None:
    script = tmp_path / "notebook.py"
    script.write_text(NOTEBOOK)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "run"), *OVERRIDES],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().endswith("as found")
