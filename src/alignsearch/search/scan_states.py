"""The scan's state cache: the frozen models' states that every cell of a scan of text pairs needs,
computed once for all of them (:class:`SiteStates`), and the pair source that hands each cell's tracks
their share of it (:class:`ScanPairs`). See :mod:`alignsearch.search.scan`, "What a cell reuses"."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from alignsearch.models import SequenceModel, hooks
from alignsearch.search.pairs import BASE, CACHE_CHUNK, PairBatch, PrefixCache, Track, resumable
from alignsearch.search.text_data import CHUNK, TextPairSource, check_repositioned
from alignsearch.settings import ANY, Position, position_of
from alignsearch.text.pairs import PairsData, TextPairs, reposition


class SiteStates:
    """The frozen models' states that the cells of a scan of text pairs need, computed once for all of
    them: per model, split, site and position, the source prompts' vectors at that position (float32, as
    :meth:`TextPairSource.tensors` gives them); per model, split (``train``, ``val``) and site the prefix
    cache can start from, the target states on the base sequences (as
    :func:`~alignsearch.search.pairs.add_base_states` gives them, into ``cache``; ``with_bases``:
    ``alignment.prefix_cache``).

    A request computes, in one pass over the split's pairs, everything :attr:`sites` and :attr:`positions`
    ask of that model and split (a site or position outside them is added first). ``seconds`` and
    ``passes`` say what it cost.
    """

    def __init__(
        self,
        data: PairsData,
        models: Sequence[SequenceModel],
        sites: Sequence[str],
        positions: Sequence[str],
        cache: PrefixCache,
        with_bases: bool = True,
    ) -> None:
        self.data, self.models, self.cache, self.with_bases = data, list(models), cache, with_bases
        self.sites, self.positions = list(sites), list(positions)
        self._moved: dict[str, tuple[PairsData, dict[str, Tensor]]] = {}
        self._sources: dict[tuple[int, str, str, str], Tensor] = {}
        self._bases: dict[tuple[int, str, str], Tensor] = {}
        self.seconds, self.passes = 0.0, 0

    def moved(self, position: Position | None) -> tuple[PairsData, dict[str, Tensor]]:
        """The pairs at ``position`` and the rows of :attr:`data` each split keeps (computed once)."""
        key = ANY if position is None else position.spec
        if key not in self._moved:
            self._moved[key] = reposition(self.data, position)
        return self._moved[key]

    def serves(self, models: Sequence[SequenceModel]) -> bool:
        """Whether these are the models the states are of (a control's untrained copies are not)."""
        return len(models) == len(self.models) and all(
            a is b for a, b in zip(models, self.models, strict=True)
        )

    def source_vectors(self, model: int, site: str, position: Position | None, split: str) -> Tensor:
        """(n, width) float32: ``model``'s vectors at ``site`` at each kept pair's source position."""
        spec = ANY if position is None else position.spec
        key = (model, site, spec, split)
        if key not in self._sources:
            self._add(site, spec)
            sites = [
                s
                for s in self.sites
                if any((model, s, p, split) not in self._sources for p in self.positions)
            ]
            self._compute_sources(model, split, sites)
        return self._sources[key]

    def base_states(self, model: int, site: str, position: Position | None, split: str) -> Tensor | None:
        """(n, L - 1, width): ``model``'s states at ``site`` on each kept pair's base sequence; None where
        the prefix cache is off, the model cannot start at the site, or for ``test`` (read once)."""
        if not self.with_bases or split == "test" or not resumable(self.models[model], site):
            return None
        if (model, site, split) not in self._bases:
            self._add(site, None)
            sites = [
                s
                for s in self.sites
                if resumable(self.models[model], s) and (model, s, split) not in self._bases
            ]
            self._compute_bases(model, split, sites)
        states = self._bases[model, site, split]
        rows = self.moved(position)[1][split]
        return states if len(rows) == len(states) else states[rows]

    def _add(self, site: str, spec: str | None) -> None:
        if site not in self.sites:
            self.sites.append(site)
        if spec is not None and spec not in self.positions:
            self.positions.append(spec)

    @torch.no_grad()
    def _compute_sources(self, model: int, split: str, sites: list[str]) -> None:
        start_time = time.perf_counter()
        pairs = self.data.splits[split]
        moved = {spec: self.moved(position_of(spec)) for spec in self.positions}
        pieces: dict[tuple[str, str], list[Tensor]] = {(s, p): [] for s in sites for p in self.positions}
        for start in range(0, len(pairs), CHUNK):
            acts = hooks.sites_activations(self.models[model], pairs.source_ids[start : start + CHUNK], sites)
            for spec, (data, kept) in moved.items():
                rows = kept[split]
                inside = (rows >= start) & (rows < start + CHUNK)
                local, at = rows[inside] - start, data.splits[split].source_pos[inside]
                for site in sites:
                    h = acts[site]
                    pieces[site, spec].append(h[local.to(h.device), at.to(h.device)].float().cpu())
        for (site, spec), parts in pieces.items():
            width = hooks.site_width(self.models[model], site) if not parts else parts[0].shape[-1]
            self._sources[model, site, spec, split] = torch.cat(parts) if parts else torch.zeros(0, width)
        self.passes += 1
        self.seconds += time.perf_counter() - start_time

    @torch.no_grad()
    def _compute_bases(self, model: int, split: str, sites: list[str]) -> None:
        start_time = time.perf_counter()
        ids = self.data.splits[split].ids[:, :-1]
        out: dict[str, Tensor] = {}
        for start in range(0, len(ids), CACHE_CHUNK):
            acts = hooks.sites_activations(self.models[model], ids[start : start + CACHE_CHUNK], sites)
            for site, h in acts.items():
                if site not in out:
                    out[site] = self.cache.allocate((len(ids), *h.shape[1:]), h.dtype)
                out[site][start : start + len(h)] = h.cpu()
        for site in sites:
            self._bases[model, site, split] = out[site]
        self.passes += 1
        self.seconds += time.perf_counter() - start_time


@dataclass
class ScanPairs(TextPairSource):
    """Text pairs whose cells share one :class:`SiteStates`: :meth:`at` repositions the pairs (no model
    runs), :meth:`build` hands each track the cached vectors and target states of its site and position.
    For models other than the states' (a control's untrained copies) it builds as :class:`TextPairSource`."""

    states: SiteStates | None = None
    position: Position | None = None

    def at(self, position: Position) -> ScanPairs:
        assert self.states is not None, "ScanPairs without states is a TextPairSource"
        data, _ = self.states.moved(position)
        check_repositioned(data, position)
        return dataclasses.replace(self, data=data, position=position)

    def track_batch(
        self, track: Track, split: str, pairs: TextPairs, models: list[SequenceModel], sites: list[str]
    ) -> PairBatch:
        """The track's cached vectors and target states at its site and position (the shared states'
        models only; others, a control's untrained copies, compute theirs)."""
        if self.states is None or not self.states.serves(models):
            return super().track_batch(track, split, pairs, models, sites)
        batch = {
            "ids": pairs.ids,
            "task_mask": pairs.task_mask,
            "pos": pairs.base_pos,
            "src": self.states.source_vectors(track.source, sites[track.source], self.position, split),
        }
        base = self.states.base_states(track.target, sites[track.target], self.position, split)
        return batch if base is None else batch | {BASE: base}
