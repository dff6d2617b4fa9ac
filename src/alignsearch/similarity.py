"""Representational-similarity baselines for a pair of models: RSA, CKA and linear probes.

Does representational similarity predict functional alignment? These are the classic measures to set
beside MAS's interchange accuracy. Both models read *matched inputs*: for every count of the tasks,
``per_count`` sequences of each model's task with that count, so that position ``p`` of the two
sequences is in the same causal state. Every position before the padding contributes one row of
activations at each model's site. Each measure is averaged over ``runs`` random subsets of
``sample_size`` rows, the same rows for both models.

* ``cka_linear``, ``cka_rbf``: kernel CKA (HSIC of centred Gram matrices, normalised) with a linear
  kernel and with a Gaussian kernel whose width is the median pairwise distance.
* ``cka_dist_cos``, ``cka_dist_l2``: the variant the MAS paper used: the same formula applied to
  *distance* matrices (cosine distance, Euclidean distance) of z-scored activations.
* ``rsa_{cos,l2}_{spearman,pearson}``: correlation between the two models' representational
  dissimilarity matrices (strictly below the diagonal).
* ``probe/<model>/<variable>``: held-out accuracy of a linear probe (ridge regression from one model's
  activations to a causal variable's value, rounded to the nearest value; trained on 80% of the
  sequences, tested on the rest).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from alignsearch.models import SequenceModel, hooks
from alignsearch.seeding import generator
from alignsearch.tables import markdown_table
from alignsearch.tasks import CausalModel

RIDGE = 1e-3
TRAIN_SHARE = 0.8


def matched_activations(
    tasks: Sequence[Any],
    models: Sequence[SequenceModel],
    sites: Sequence[str],
    causal_models: Sequence[CausalModel],
    per_count: int = 15,
    seed: int = 0,
) -> tuple[list[Tensor], list[dict[str, Tensor]], Tensor]:
    """Activations (rows, width) of each model on matched inputs, the causal variables of each row, and
    the sequence index of each row (to split probes by sequence)."""
    counts = torch.arange(max(t.min_count for t in tasks), min(t.max_count for t in tasks) + 1)
    counts = counts.repeat_interleave(per_count)
    batches = [
        task.sample(len(counts), generator(seed, "similarity", k), counts=counts)
        for k, task in enumerate(tasks)
    ]
    length = min(b.ids.shape[1] for b in batches)
    live = torch.ones(len(counts), length, dtype=torch.bool)
    for batch in batches:
        live &= batch.ids[:, :length] != batch.pad_id
    acts, variables = [], []
    for batch, model, site, causal in zip(batches, models, sites, causal_models, strict=True):
        with torch.no_grad():
            states = hooks.site_activations(model, batch.ids, site)[:, :length]
            acts.append(states[live.to(states.device)].cpu())
        post = causal.trajectory(batch.ids).post
        variables.append({name: post[name][:, :length][live] for name in causal.variables})
    sequence = torch.arange(len(counts))[:, None].expand(-1, length)[live]
    return acts, variables, sequence


def _centre_gram(k: Tensor) -> Tensor:
    """``H K H`` with ``H = I - 11'/n``, in O(n^2): less the row and column means, plus the grand mean."""
    return k - k.mean(0, keepdim=True) - k.mean(1, keepdim=True) + k.mean()


def cka(k: Tensor, m: Tensor) -> float:
    """CKA of two (n, n) kernel (or distance) matrices: HSIC(K, M) / sqrt(HSIC(K, K) HSIC(M, M))."""
    kc, lc = _centre_gram(k), _centre_gram(m)
    hsic = (kc * lc).sum()
    return float(hsic / ((kc * kc).sum() * (lc * lc).sum()).sqrt())


def rbf_kernel(x: Tensor) -> Tensor:
    d2 = torch.cdist(x, x).pow(2)
    width = d2[d2 > 0].median().sqrt() if (d2 > 0).any() else torch.tensor(1.0)
    return torch.exp(-d2 / (2 * width**2))


def cosine_distance(x: Tensor) -> Tensor:
    unit = torch.nn.functional.normalize(x, dim=1)
    return 1 - unit @ unit.T


def zscore(x: Tensor) -> Tensor:
    return (x - x.mean(0)) / x.std(0).clamp(min=1e-8)


def _ranks(x: Tensor) -> Tensor:
    """The rank of each entry (0 for the smallest): one sort, its inverse permutation by scattering."""
    ranks = torch.empty(len(x), dtype=torch.double)
    ranks[torch.argsort(x)] = torch.arange(len(x), dtype=torch.double)
    return ranks


def correlation(a: Tensor, b: Tensor, method: str) -> float:
    """Pearson or Spearman correlation of two vectors."""
    if method == "spearman":
        a, b = _ranks(a), _ranks(b)
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / (a.norm() * b.norm()).clamp(min=1e-12))


def pair_measures(x: Tensor, y: Tensor) -> dict[str, float]:
    """Every CKA and RSA measure between two (n, ·) activation sets with matched rows."""
    x, y = x.double(), y.double()
    below = torch.tril_indices(len(x), len(x), offset=-1)
    out = {
        "cka_linear": cka(x @ x.T, y @ y.T),
        "cka_rbf": cka(rbf_kernel(x), rbf_kernel(y)),
        "cka_dist_cos": cka(cosine_distance(zscore(x)), cosine_distance(zscore(y))),
        "cka_dist_l2": cka(torch.cdist(zscore(x), zscore(x)), torch.cdist(zscore(y), zscore(y))),
    }
    for name, rdm in (("cos", cosine_distance), ("l2", lambda v: torch.cdist(v, v))):
        a, b = rdm(x)[below[0], below[1]], rdm(y)[below[0], below[1]]
        for method in ("spearman", "pearson"):
            out[f"rsa_{name}_{method}"] = correlation(a, b, method)
    return out


def probe_accuracy(x: Tensor, labels: Tensor, sequence: Tensor) -> float:
    """Held-out accuracy of a linear probe: ridge regression from ``x`` to the variable's value, rounded
    to the nearest value the variable takes (numbers are read off a line, as a count would be)."""
    train = sequence < int(TRAIN_SHARE * (int(sequence.max()) + 1))
    xb = torch.cat([x.double(), torch.ones(len(x), 1, dtype=torch.double)], 1)
    target = labels.double()
    a = xb[train]
    eye = torch.eye(a.shape[1], dtype=torch.double)
    weights = torch.linalg.solve(a.T @ a + RIDGE * eye, a.T @ target[train])
    values = torch.unique(labels).double()
    predicted = values[(xb[~train] @ weights)[:, None].sub(values[None, :]).abs().argmin(1)]
    return float((predicted == target[~train]).double().mean())


def similarity(
    tasks: Sequence[Any],
    models: Sequence[SequenceModel],
    sites: Sequence[str],
    causal_models: Sequence[CausalModel],
    names: Sequence[str],
    *,
    seed: int = 0,
    per_count: int = 15,
    sample_size: int = 1000,
    runs: int = 10,
) -> dict[str, float]:
    """RSA, CKA (averaged over ``runs`` subsets of ``sample_size`` rows) and per-model linear probes."""
    acts, variables, sequence = matched_activations(tasks, models, sites, causal_models, per_count, seed)
    n = len(sequence)
    g = generator(seed, "similarity-subsets")
    totals: dict[str, float] = {}
    for _ in range(runs):
        rows = torch.randperm(n, generator=g)[: min(sample_size, n)]
        for key, value in pair_measures(acts[0][rows], acts[1][rows]).items():
            totals[key] = totals.get(key, 0.0) + value / runs
    for name, a, per_variable in zip(names, acts, variables, strict=True):
        for variable, labels in per_variable.items():
            totals[f"probe/{name}/{variable}"] = probe_accuracy(a, labels, sequence)
    return totals


def to_markdown(measures: dict[str, float], names: Sequence[str], sites: Sequence[str]) -> str:
    """``similarity.md``: a line naming the two models and their sites, then a table of the measures
    (:func:`alignsearch.tables.markdown_table`)."""
    rows = [[key, f"{value:.3f}"] for key, value in measures.items()]
    return (
        f"Similarity of {names[0]} ({sites[0]}) and {names[1]} ({sites[1]}) on matched inputs\n\n"
        + markdown_table(["measure", "value"], rows, pad=False)
        + "\n"
    )
