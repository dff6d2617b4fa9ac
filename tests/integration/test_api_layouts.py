"""Modules the Python API cannot align as they are, refused in one line before any work: one that reads
token ids as (length, batch), one whose site gives (length, batch, width), and one whose site runs twice
in a forward pass (an intervention there would be applied twice)."""

from __future__ import annotations

import pytest
import torch

from alignsearch import api
from alignsearch.models import hooks
from alignsearch.models.wrapped import ModuleModel
from tests.helpers import TINY_ALIGNMENT, TinyNet, refused

QUICK = {"max_steps": 20, "val_every": 10, "progress": False}
VOCAB = 8  # the multiobject task's tokens


class LengthFirst(torch.nn.Module):
    """Reads ids as (length, batch): a GRU without ``batch_first`` straight on the embeddings. Its logits
    have the shape of batch-first ones, but each row mixes the others."""

    def __init__(self, width: int = 16) -> None:
        super().__init__()
        self.embed = torch.nn.Embedding(VOCAB, width)
        self.rnn = torch.nn.GRU(width, width)
        self.out = torch.nn.Linear(width, VOCAB)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.out(self.rnn(self.embed(ids))[0])


class LengthFirstSite(LengthFirst):
    """Reads ids batch-first, but its ``rnn`` runs on (length, batch, width): the site's output is
    sequence-first."""

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.out(self.rnn(self.embed(ids).transpose(0, 1))[0].transpose(0, 1))


class Twice(torch.nn.Module):
    """Calls its ``block`` twice per forward pass."""

    def __init__(self, width: int = 16) -> None:
        super().__init__()
        self.embed = torch.nn.Embedding(VOCAB, width)
        self.block = torch.nn.Linear(width, width)
        self.out = torch.nn.Linear(width, VOCAB)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        h = torch.tanh(self.block(self.embed(ids)))
        return self.out(torch.tanh(self.block(h)))


@pytest.fixture(scope="module")
def batch_first_result() -> api.AlignmentResult:
    """An alignment of a batch-first module at ``rnn`` (width 16), to evaluate the others with."""
    torch.manual_seed(0)
    return api.align(
        TinyNet(VOCAB), task="multiobject", site="rnn", n_units=4, overrides=TINY_ALIGNMENT, **QUICK
    )


@pytest.fixture(scope="module")
def fresh_pairs():
    return api.pairs(api.own_model(TinyNet(VOCAB)).task, n=40, seed=3)


BATCH_FIRST = "expected batch-first ids (batch, length) -> logits (batch, length, vocab)"


def test_a_module_that_reads_length_first_is_refused_by_align_and_iia(
    batch_first_result, fresh_pairs
) -> None:
    message = refused(api.align, LengthFirst(), task="multiobject", site="rnn", n_units=4, **QUICK)
    assert message.startswith(f"model=lengthfirst is not allowed: {BATCH_FIRST}"), message
    assert "module(ids.T).transpose(0, 1)" in message  # how to wrap it
    again = refused(api.iia, batch_first_result, [LengthFirst()], fresh_pairs, task="multiobject")
    assert again == message
    assert refused(api.own_model, LengthFirst(), "multiobject") == message


def test_the_same_module_wrapped_as_the_message_says_is_taken() -> None:
    class Wrapped(torch.nn.Module):  # ids (batch, length) in, and a site whose output is batch-first
        def __init__(self) -> None:
            super().__init__()
            self.inner, self.site = LengthFirst(), torch.nn.Identity()

        def forward(self, ids: torch.Tensor) -> torch.Tensor:
            h = self.inner.rnn(self.inner.embed(ids.T))[0].transpose(0, 1)
            return self.inner.out(self.site(h))

    entry = api.own_model(Wrapped(), "multiobject")
    assert hooks.site_width(entry.model, "site") == 16
    assert "(4, 1, 16)" in refused(
        hooks.site_width, entry.model, "inner.rnn"
    )  # its own layers stay as they are


def test_a_site_whose_output_is_length_first_is_refused_before_any_work(
    batch_first_result, fresh_pairs
) -> None:
    message = refused(api.align, LengthFirstSite(), task="multiobject", site="rnn", n_units=4, **QUICK)
    assert message.startswith(
        "site='rnn' is not allowed: expected a module whose output is batch-first (batch, length, width)"
    ), message
    assert "it gives (4, 1, 16)" in message
    again = refused(api.iia, batch_first_result, [LengthFirstSite()], fresh_pairs, task="multiobject")
    assert "a module whose output is batch-first (batch, length, width)" in again
    assert api.sites(LengthFirstSite()) == {}  # nothing else changes: the module runs as it is elsewhere


def test_a_site_that_runs_twice_in_a_forward_pass_is_refused() -> None:
    message = refused(api.align, Twice(), task="multiobject", site="block", n_units=4, **QUICK)
    assert message.startswith(
        "site='block' is not allowed: expected a module that runs once per forward pass"
    )
    assert "it ran 2 times" in message
    model = ModuleModel(Twice())
    assert "it ran 2 times" in refused(hooks.site_activations, model, torch.tensor([[1, 2, 3]]), "block")
    assert hooks.site_width(model, "embed") == 16  # the module that runs once is a site as before
