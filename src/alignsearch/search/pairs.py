"""Counterfactual pairs as tensors for alignment training, with source activations computed once (and,
for language models that can resume at their site, the target's own states there: :class:`PrefixCache`)."""

from __future__ import annotations

import math
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from alignsearch.models import SequenceModel, hooks
from alignsearch.tasks.counterfactual import CounterfactualPairs

PairBatch = dict[str, Tensor]
"""A batch of counterfactual pairs: ``ids`` (n, L) the base sequence (what the intervened model reads),
``task_mask`` (n, L) the tokens it must predict, ``pos`` (n,) where to intervene (stepwise: every
position up to it), ``src`` the source activations to swap in ((n, width), stepwise (n, P, width));
optionally ``labels`` (n, L), the token expected at each position where it is not ``ids`` itself (the
source model's own predictions, in behavioural MAS), ``cl``/``cl_found``, counterfactual-latent
targets (per pair, or stepwise per pair and position), and ``base`` (n, L - 1, width), the target model's
own states at its site while it reads ``ids[:, :-1]`` (in the model's dtype; :func:`add_base_states`)."""
SEQUENCE_KEYS = ("ids", "task_mask", "labels")
"""The per-position tensors of a :data:`PairBatch` (trimmed and padded together)."""
BASE = "base"
"""The key of the cached target states (one column fewer than ``ids``: the last token is never read)."""
CACHE_CHUNK = 64
"""Sequences per forward pass when target states are cached."""
MB = 2**20


@dataclass(frozen=True)
class Track:
    """One (source model, target model, variable) combination and how it trains the alignment.

    ``behavioural``: its cross-entropy on the counterfactual sequence is part of the loss; ``latent``: its
    counterfactual-latent loss is (see :mod:`alignsearch.search.latent_targets`), weighted by
    ``latent_weight``. A track with neither is only evaluated.
    """

    source: int
    target: int
    variable: str
    behavioural: bool = True
    latent: bool = False
    latent_weight: float = 1.0

    @property
    def trained(self) -> bool:
        return self.behavioural or self.latent

    @property
    def direction(self) -> str:
        """``"0>1"``: from model 0 into model 1."""
        return f"{self.source}>{self.target}"

    @property
    def name(self) -> str:
        """``"0>1/count"``: source model, target model, variable."""
        return f"{self.direction}/{self.variable}"

    @property
    def loss(self) -> str | None:
        """Which losses train it: ``behaviour``, ``latent``, ``both`` or None."""
        kinds = [k for k, on in (("behaviour", self.behavioural), ("latent", self.latent)) if on]
        return "both" if len(kinds) == 2 else (kinds[0] if kinds else None)


@torch.no_grad()
def pair_tensors(
    pairs: CounterfactualPairs, source_model: SequenceModel, site: str, chunk: int = 2000
) -> PairBatch:
    """The tensors of ``pairs`` plus the source model's activations at ``site`` that the swaps need.

    ``src`` is (n, width) at each source position (indywise), or (n, P, width) for the prefix positions
    ``0..P-1`` (stepwise, where position ``p`` of the base takes the source's vector at ``p``).
    """
    vectors = []
    for start in range(0, len(pairs), chunk):
        ids = pairs.source.ids[start : start + chunk]
        pos = pairs.source_pos[start : start + chunk]
        acts = hooks.site_activations(source_model, ids, site)
        if pairs.stepwise:
            prefix = int(pairs.base_pos.max()) + 1
            acts = torch.nn.functional.pad(acts, (0, 0, 0, max(0, prefix - acts.shape[1])))[:, :prefix]
            vectors.append(acts.float().cpu())
        else:
            vectors.append(
                acts[torch.arange(len(pos), device=acts.device), pos.to(acts.device)].float().cpu()
            )
    return {"ids": pairs.ids, "task_mask": pairs.task_mask, "pos": pairs.base_pos, "src": torch.cat(vectors)}


def with_latent_targets(tensors: PairBatch, vectors: Tensor, found: Tensor) -> PairBatch:
    """``tensors`` plus the counterfactual-latent targets of its pairs (``cl``, ``cl_found``)."""
    return {**tensors, "cl": vectors, "cl_found": found}


def select(tensors: PairBatch, index: Tensor) -> PairBatch:
    """Rows ``index`` of every tensor, trimmed to the longest selected sequence."""
    out = {k: v[index] for k, v in tensors.items()}
    length = (
        int(out["task_mask"].any(0).nonzero().max()) + 1 if out["task_mask"].any() else out["ids"].shape[1]
    )
    length = max(length, int(out["pos"].max()) + 2)
    for key in SEQUENCE_KEYS:
        if key in out:
            out[key] = out[key][:, :length]
    if BASE in out:
        out[BASE] = out[BASE][:, : length - 1]
    return out


def split_rows(batch: dict[str, PairBatch], parts: int) -> list[dict[str, PairBatch]]:
    """``parts`` consecutive, (nearly) equal slices of every track's rows, each trimmed by :func:`select`:
    the micro-batches of one accumulated step (64 rows in 2 parts: rows 0-31, then rows 32-63)."""
    if parts == 1:
        return [batch]
    n = len(next(iter(batch.values()))["ids"])
    return [{name: select(t, index) for name, t in batch.items()} for index in torch.arange(n).chunk(parts)]


def resumable(model: SequenceModel, site: str) -> bool:
    """Whether ``model`` can run from its states at ``site`` (``encode_from``: HuggingFace GPT-2 and Llama
    models at their named sites; :meth:`~alignsearch.models.hf.HFSequenceModel.supports_resume`)."""
    check = getattr(model, "supports_resume", None)
    return check is not None and bool(check(site))


class PrefixCache:
    """Where cached target states live: in memory while they add up to at most ``budget_mb``, beyond it in
    memory-mapped files in ``folder`` (created when needed; :meth:`close` removes it). Reading a batch from
    a file copies its rows into memory; the page cache keeps the hot ones.

        cache = PrefixCache(2048, run / "prefix_cache")
        states = cache.allocate((10_000, 63, 2048), torch.bfloat16)  # 2.6 GB: a file, not memory
    """

    def __init__(self, budget_mb: float, folder: Path) -> None:
        self.budget, self.folder = budget_mb * MB, Path(folder)
        self.in_memory = self.on_disk = self.files = 0
        """Bytes held in memory and in files so far, and how many files."""

    def allocate(self, shape: tuple[int, ...], dtype: torch.dtype) -> Tensor:
        """An uninitialised tensor of ``shape`` and ``dtype``, in memory or in a new file."""
        size = math.prod(shape) * torch.empty((), dtype=dtype).element_size()
        if self.in_memory + size <= self.budget:
            self.in_memory += size
            return torch.empty(shape, dtype=dtype)
        self.folder.mkdir(parents=True, exist_ok=True)
        file = self.folder / f"states-{self.files}.bin"
        self.on_disk, self.files = self.on_disk + size, self.files + 1
        return torch.from_file(str(file), shared=True, size=math.prod(shape), dtype=dtype).view(shape)

    def close(self) -> None:
        """Remove the files (tensors still mapped stay readable until they are freed)."""
        shutil.rmtree(self.folder, ignore_errors=True)


@torch.no_grad()
def add_base_states(
    splits: list[dict[str, PairBatch]],
    tracks: list[Track],
    models: list[SequenceModel],
    sites: list[str],
    cache: PrefixCache,
) -> None:
    """Add ``base`` to every pair batch whose target model can resume at its site (:func:`resumable`): its
    states at the site on ``ids[:, :-1]``, computed once here, in the model's dtype, :data:`CACHE_CHUNK`
    sequences at a time on the model's device. Batches of one target model that share their ``ids`` (the
    tracks of a text source) share the states. Batches that come with their states (a scan's pairs:
    :mod:`alignsearch.search.scan`) keep them; other batches are left as they are (their steps run the
    whole model)."""
    done: dict[tuple[int, int], tuple[Tensor, Tensor]] = {}
    by_name = {t.name: t for t in tracks}
    for split in splits:
        for name, batch in split.items():
            target = by_name[name].target
            model, site = models[target], sites[target]
            if BASE in batch or len(batch["ids"]) == 0 or not resumable(model, site):
                continue
            key = (target, id(batch["ids"]))
            if key not in done:
                done[key] = (batch["ids"], site_states(model, batch["ids"][:, :-1], site, cache))
            batch[BASE] = done[key][1]


def site_states(model: SequenceModel, ids: Tensor, site: str, cache: PrefixCache) -> Tensor:
    """``model``'s (n, L, width) activations at ``site`` on ``ids``, chunk by chunk, into ``cache``."""
    out = None
    for start in range(0, len(ids), CACHE_CHUNK):
        acts = hooks.site_activations(model, ids[start : start + CACHE_CHUNK], site)
        if out is None:
            out = cache.allocate((len(ids), *acts.shape[1:]), acts.dtype)
        out[start : start + len(acts)] = acts.cpu()
    assert out is not None, "no sequences"  # add_base_states skips empty batches
    return out
