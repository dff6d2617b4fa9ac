"""Counterfactual-latent targets: the activation a model has *naturally* in a given causal state.

After an intervention the target model should hold the counterfactual state (for Up-Down: the base's
``phase`` with the source's ``count``, say count 7 in the demo phase). The counterfactual-latent (CL)
loss pulls the intervened vector towards the target model's own activation at a position of an ordinary
task sequence whose causal variables are exactly that state (here: any position right after the 7th
demo token). Positions are matched on every variable of the causal model; PAD, BOS, EOS and the trigger
are never used. A pair whose state no sequence of the bank reaches (an extrapolated count) has no
target and is left out of the CL loss.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import functional as F

from alignsearch.models import SequenceModel, hooks
from alignsearch.tasks import CausalModel
from alignsearch.tasks.counterfactual import CounterfactualPairs, valid_positions

BANK_SIZE = 2000
HISTOGRAM_BINS = 10


@torch.no_grad()
def latent_targets(
    pairs: CounterfactualPairs,
    task,
    causal_model: CausalModel,
    model: SequenceModel,
    site: str,
    generator: torch.Generator,
    bank_size: int = BANK_SIZE,
) -> tuple[Tensor, Tensor]:
    """``(vectors, found)``: per pair, ``model``'s activation at ``site`` in a natural position of ``task``
    in the pair's intervened state (random among the matches), and whether such a position exists."""
    bank = task.sample(bank_size, generator, split="train")
    post = causal_model.trajectory(bank.ids).post
    where = valid_positions(bank, causal_model).nonzero()  # (m, 2): sequence, position
    names = causal_model.variables
    bank_states = torch.stack([post[k][where[:, 0], where[:, 1]].long() for k in names], 1)
    wanted = torch.stack([pairs.state[k].long() for k in names], 1)

    keys, inverse = torch.unique(torch.cat([bank_states, wanted]), dim=0, return_inverse=True)
    bank_key, wanted_key = inverse[: len(bank_states)], inverse[len(bank_states) :]
    order = torch.argsort(bank_key, stable=True)
    counts = torch.bincount(bank_key, minlength=len(keys))
    starts = torch.cumsum(counts, 0) - counts
    n_match = counts[wanted_key]
    found = n_match > 0
    pick = (torch.rand(len(wanted), generator=generator) * n_match.clamp(min=1)).long()
    chosen = where[order[(starts[wanted_key] + pick).clamp(max=len(order) - 1)]]

    sequences, slot = torch.unique(chosen[:, 0], return_inverse=True)
    acts = hooks.site_activations(model, bank.ids[sequences], site).cpu()
    vectors = acts[slot, chosen[:, 1]]
    vectors[~found] = 0
    return vectors, found


def latent_loss(intervened: Tensor, target: Tensor, found: Tensor, mask: Tensor | None = None) -> Tensor:
    """Mean over pairs with a target of ``(MSE + cosine distance) / 2`` between the two vectors.

    ``mask`` (one weight per feature, 0/1 or soft): compare only the features it selects, the squared
    error averaged over them (``sum(mask * (h - t)**2) / sum(mask)``) and the cosine taken between the
    masked vectors."""
    if not found.any():
        return intervened.sum() * 0
    h, t = intervened[found], target[found]
    if mask is None:
        mse = F.mse_loss(h, t)
    else:
        mse = (mask * (h - t) ** 2).sum(-1).mean() / mask.sum().clamp(min=1e-6)
        h, t = h * mask, t * mask
    cosine = (1 - F.cosine_similarity(h, t, dim=-1)).mean()
    return (mse + cosine) / 2


def histogram_divergence(intervened: Tensor, target: Tensor, bins: int = HISTOGRAM_BINS) -> float:
    """Symmetric KL divergence between histograms of all entries of the two sets of vectors.

    Both histograms share ``bins`` bins over the range the two have in common, with one pseudo-count
    per bin; 0 means the intervened vectors are distributed like natural ones, whatever their pairing.
    """
    a, b = intervened.detach().flatten().float(), target.detach().flatten().float()
    lo, hi = max(float(a.min()), float(b.min())), min(float(a.max()), float(b.max()))
    if not hi > lo:
        lo, hi = min(float(a.min()), float(b.min())), max(float(a.max()), float(b.max())) + 1e-6
    p = torch.histc(a, bins, lo, hi) + 1
    q = torch.histc(b, bins, lo, hi) + 1
    p, q = p / p.sum(), q / q.sum()
    return float(((p * (p / q).log()).sum() + (q * (q / p).log()).sum()) / 2)
