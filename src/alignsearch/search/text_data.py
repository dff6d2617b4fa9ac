"""Where an alignment's pairs come from when the models are language models reading text.

Two sources, each giving every track's training and evaluation :data:`PairBatch`es like the task pairs:

* :class:`TextPairSource` (``data=pairs``): counterfactual pairs of text (a pairs file, or rows a Python
  function produces; :mod:`alignsearch.text.pairs`). The base prompt followed by the target continuation
  is what the intervened model reads; the target's tokens are what it must predict; the source vector
  is the source model's activation at the source prompt's position. Latent tracks (the
  counterfactual-latent loss) get the target model's activation at the position of the row's
  ``counterfactual`` prompt (a text that naturally holds the intervened state) as their natural target;
  rows without one have none (``cl_found`` False).
* :class:`CorpusSource` (``data=corpus``): behavioural MAS between two language models on a shared corpus.
  For a text ``x`` and a cut ``t``, the target model's activations at positions ``0..t`` are replaced (in
  the aligned subspace) by the source model's on ``x`` (stepwise); the target must then predict, at the
  next ``horizon`` positions, what the *source model* predicts there (its greedy next tokens). Each
  model's predictions are computed once per split and cached in ``cache_dir``.

    x = "the cat sat on the mat", t = 2          (tokens: the cat sat | on the mat)
    swapped positions: 0 1 2                     (the source model's vectors on x, aligned subspace)
    scored positions:  3 4 5                     (labels: the source model's own predictions there)
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import Tensor

from alignsearch.atomic import save_torch
from alignsearch.errors import ConfigError
from alignsearch.models import SequenceModel, hooks
from alignsearch.search.pairs import PairBatch, Track
from alignsearch.seeding import derive_seed, generator
from alignsearch.settings import Position
from alignsearch.text.pairs import PairsData, TextPairs, reposition

if TYPE_CHECKING:
    from alignsearch.models.lm import TextLM

CHUNK = 64
"""Sequences per forward pass when activations and predictions are computed (no gradients)."""

Built = tuple[dict[str, PairBatch], dict[str, dict[str, PairBatch]], list[Track]]
"""Training pairs per track, evaluation pairs per split and track, and the tracks."""


@torch.no_grad()
def activations_at(model: SequenceModel, ids: Tensor, site: str, pos: Tensor | None = None) -> Tensor:
    """``model``'s float32 activations at ``site`` on right-padded ``ids``: at one position per row
    (``pos``: (n, width)) or at every position ((n, L, width)). Right padding needs no attention mask:
    a causal model's positions never read the padding after them."""
    pieces = []
    for start in range(0, len(ids), CHUNK):
        acts = hooks.site_activations(model, ids[start : start + CHUNK], site).float().cpu()
        if pos is not None:
            rows = pos[start : start + CHUNK]
            acts = acts[torch.arange(len(rows)), rows]
        pieces.append(acts)
    return torch.cat(pieces)


@dataclass
class TextPairSource:
    """Counterfactual text pairs, already tokenised into splits (``train``, ``val``, ``test``)."""

    data: PairsData
    variable: str = "variable"
    """The aligned variable's name in the records (by default the pairs file's stem)."""
    stepwise: ClassVar[bool] = False
    """A pair swaps at one position per prompt (``alignment.stepwise`` must be false)."""
    kind: ClassVar[str] = "pairs"

    no_natural_targets: ClassVar[str] = (
        'the pairs give no counterfactual prompts (add a "counterfactual" field: a prompt that naturally '
        "holds the intervened state)"
    )
    """Why a counterfactual-latent loss has nothing to pull towards, when :attr:`has_natural_targets` is
    False."""

    @property
    def has_natural_targets(self) -> bool:
        """Whether some pair has a natural target (a counterfactual prompt) for the latent loss."""
        return self.data.natural_targets > 0

    def eval_splits(self) -> list[str]:
        return [s for s in ("val", "test") if s in self.data.splits]

    def at(self, position: Position) -> TextPairSource:
        """These pairs with every prompt intervened on at ``position`` (a run's ``position``): pairs whose
        prompts lack it are left out; a ConfigError where train or val keeps none."""
        data, _ = reposition(self.data, position)
        check_repositioned(data, position)
        return dataclasses.replace(self, data=data)

    def build(self, tracks: list[Track], models: list[SequenceModel], sites: list[str], seed: int) -> Built:
        splits: dict[str, dict[str, PairBatch]] = {}
        for split, pairs in self.data.splits.items():
            own = {
                m: self.natural_targets(pairs, models[m], sites[m])
                for m in {t.target for t in tracks if t.latent}
            }
            splits[split] = {}
            for t in tracks:
                batch = self.track_batch(t, split, pairs, models, sites)
                if t.latent:  # the target model's own vector at the counterfactual prompt's position
                    batch |= own[t.target]
                splits[split][t.name] = batch
        train = splits.pop("train")
        return train, splits, tracks

    def track_batch(
        self, track: Track, split: str, pairs: TextPairs, models: list[SequenceModel], sites: list[str]
    ) -> PairBatch:
        """One track's pairs of one split: the base sequences and the source model's vectors."""
        return self.tensors(pairs, models[track.source], sites[track.source])

    @staticmethod
    def natural_targets(pairs: TextPairs, target_model: SequenceModel, site: str) -> PairBatch:
        """``cl`` (n, width) float32: ``target_model``'s activation at ``site`` at each pair's
        counterfactual position (zeros where a pair has no counterfactual prompt); ``cl_found`` (n,): which
        pairs have one."""
        found = pairs.has_counterfactual
        vectors = torch.zeros(len(pairs), hooks.site_width(target_model, site))
        if found.any():
            vectors[found] = activations_at(
                target_model, pairs.counterfactual_ids[found], site, pairs.counterfactual_pos[found]
            )
        return {"cl": vectors, "cl_found": found.clone()}

    @staticmethod
    def tensors(pairs: TextPairs, source_model: SequenceModel, site: str) -> PairBatch:
        return {
            "ids": pairs.ids,
            "task_mask": pairs.task_mask,
            "pos": pairs.base_pos,
            "src": activations_at(source_model, pairs.source_ids, site, pairs.source_pos),
        }


def check_repositioned(data: PairsData, position: Position) -> None:
    """A ConfigError when pairs moved to ``position`` leave train or val empty."""
    for split in ("train", "val"):
        if not len(data.splits[split]):
            raise ConfigError(
                "position",
                position.spec,
                f"a position the prompts have (no {split} pair has it in every prompt)",
            )


@dataclass
class CorpusSource:
    """A tokenised corpus split into ``train``/``val``/``test`` texts (right-padded ids and lengths),
    the number of predicted tokens after each cut, and where model predictions are cached."""

    ids: dict[str, Tensor]
    lengths: dict[str, Tensor]
    horizon: int
    cache_dir: Path | None = None
    variable: str = "shared"
    n_texts: int = 0
    skipped: int = 0
    """Texts too short to leave ``horizon`` tokens after a cut."""
    stepwise: ClassVar[bool] = True
    """The models' own runs on one text: swaps at every position (``alignment.stepwise`` is set)."""
    kind: ClassVar[str] = "corpus"
    has_natural_targets: ClassVar[bool] = True
    """The target model's own vectors on the same text are the natural targets of the latent loss."""
    no_natural_targets: ClassVar[str] = ""
    """(Never read: a corpus always has natural targets.)"""

    def eval_splits(self) -> list[str]:
        return [s for s in ("val", "test") if s in self.ids]

    def cuts(self, split: str, seed: int) -> Tensor:
        """A cut per text, uniform over the positions that leave ``horizon`` tokens to predict."""
        room = (self.lengths[split] - 1 - self.horizon).clamp(min=0)
        g = generator(seed, "corpus-cuts", split)
        return (torch.rand(len(room), generator=g) * (room + 1)).long().clamp(max=room)

    def build(self, tracks: list[Track], models: list[SequenceModel], sites: list[str], seed: int) -> Built:
        splits: dict[str, dict[str, PairBatch]] = {}
        for split, ids in self.ids.items():
            cut = self.cuts(split, seed)
            prefix = int(cut.max()) + 1
            columns = torch.arange(ids.shape[1])[None, :]
            scored = (columns > cut[:, None]) & (columns <= (cut + self.horizon)[:, None])
            scored &= columns < self.lengths[split][:, None]
            acts = {
                m: activations_at(models[m], ids, sites[m])[:, :prefix] for m in {t.source for t in tracks}
            }
            own = {
                m: activations_at(models[m], ids, sites[m])[:, :prefix]
                for m in {t.target for t in tracks if t.latent}
            }
            splits[split] = {}
            for track in tracks:
                predicted = self.predictions(models[track.source], ids, split)
                labels = ids.clone()
                labels[:, 1:] = predicted[:, :-1]  # the token expected at i: the source's prediction at i - 1
                batch = {
                    "ids": ids,
                    "task_mask": scored,
                    "labels": labels,
                    "pos": cut,
                    "src": acts[track.source],
                }
                if track.latent:  # the target model's own vector on the same text, at every swapped position
                    batch |= {
                        "cl": own[track.target],
                        "cl_found": torch.ones(own[track.target].shape[:2], dtype=torch.bool),
                    }
                splits[split][track.name] = batch
        train = splits.pop("train")
        return train, splits, tracks

    @torch.no_grad()
    def predictions(self, model: SequenceModel, ids: Tensor, split: str) -> Tensor:
        """``model``'s greedy next token after every position of ``ids``, cached per model (by name and,
        where it has one, the digest of its weights: another model in the same folder is not served the
        old predictions) and per split (by the digest of the token ids)."""
        key = hashlib.sha256(ids.numpy().tobytes()).hexdigest()[:16]
        name = getattr(model, "name", type(model).__name__)
        weights_sha256 = getattr(model, "weights_sha256", None)
        if weights_sha256 is not None:
            key = f"{weights_sha256()[:16]}-{key}"
        path = None if self.cache_dir is None else self.cache_dir / f"{name}-{split}-{key}.pt"
        if path is not None and path.is_file():
            return torch.load(path, weights_only=True)
        device = hooks.device_of(model)
        out = torch.cat(
            [model(ids[s : s + CHUNK].to(device)).argmax(-1).cpu() for s in range(0, len(ids), CHUNK)]
        )
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            save_torch(path, out)
        return out


# -- building the sources from their settings (the ``data`` config group's ``_target_``s) ---------------------
CORPUS_SUFFIXES = (".txt", ".jsonl")
MIN_CORPUS_TEXTS = 3
"""A corpus needs at least a text per split."""


def pairs_source(
    path: str | None,
    tokenizer,
    *,
    variable: str | None = None,
    max_length: int = 256,
    seed: int = 0,
    fractions: list[float] | tuple[float, ...] = (0.8, 0.1, 0.1),
) -> TextPairSource:
    """``data=pairs``: the counterfactual pairs of a JSONL or CSV file, tokenised with the model's
    tokenizer (rows that cannot be used are listed in ``source.data.problems``)."""
    from alignsearch.text.pairs import read_pairs

    file = require_file(path, "data.path", "a .jsonl or .csv file of counterfactual pairs")
    data = read_pairs(file, tokenizer, max_length=max_length, seed=seed, fractions=tuple(fractions))
    return TextPairSource(data, variable or file.stem)


def corpus_source(
    path: str | None,
    tokenizers: list,
    *,
    variable: str = "shared",
    max_length: int = 64,
    horizon: int = 4,
    seed: int = 0,
    fractions: list[float] | tuple[float, ...] = (0.8, 0.1, 0.1),
    cache_dir: Path | None = None,
) -> CorpusSource:
    """``data=corpus``: a text per line (``.txt``, or ``.jsonl`` with a ``text`` field), tokenised with the
    models' tokenizer (which must tokenise every text alike), cut to ``max_length`` tokens; texts too
    short to leave ``horizon`` tokens after a cut are skipped (``source.skipped`` counts them)."""
    from alignsearch.errors import ConfigError

    file = require_file(path, "data.path", "a .txt (a text per line) or .jsonl (a text field) corpus")
    if file.suffix not in CORPUS_SUFFIXES:
        raise ConfigError("data.path", str(path), "a .txt (a text per line) or .jsonl (a text field) corpus")
    return corpus_of_texts(
        read_corpus(file), tokenizers, variable=variable, max_length=max_length, horizon=horizon, seed=seed,
        fractions=fractions, cache_dir=cache_dir, file=str(path),
    )  # fmt: skip


def corpus_of_texts(
    texts: list[str],
    tokenizers: list,
    *,
    variable: str = "shared",
    max_length: int = 64,
    horizon: int = 4,
    seed: int = 0,
    fractions: list[float] | tuple[float, ...] = (0.8, 0.1, 0.1),
    cache_dir: Path | None = None,
    file: str | None = None,
) -> CorpusSource:
    """A corpus of ``texts`` as :func:`corpus_source` makes one of a file's (``file``: its path, named by
    errors; None for texts given from Python, named ``texts``)."""
    from alignsearch.errors import ConfigError, require_positive

    require_positive("data.horizon", horizon)
    require_positive("data.max_length", max_length)
    encoded = [tokenizers[0](t, add_special_tokens=True)["input_ids"][:max_length] for t in texts]
    for other in tokenizers[1:]:
        for line, (text, ids) in enumerate(zip(texts, encoded, strict=True), 1):
            if other(text, add_special_tokens=True)["input_ids"][:max_length] != ids:
                if file is None:
                    raise ConfigError(
                        "tokenizer", "tokenizers that differ",
                        f"tokenizers that agree on the texts (they differ on texts[{line - 1}])",
                    )  # fmt: skip
                raise ConfigError(
                    "partner.model", "a model with another tokenizer",
                    f"models whose tokenizers agree on the corpus (they differ on line {line} of {file})",
                )  # fmt: skip
    keep = [ids for ids in encoded if len(ids) >= horizon + 2]
    if len(keep) < MIN_CORPUS_TEXTS:
        raise ConfigError(
            "data.path" if file is not None else "texts",
            file if file is not None else f"{len(texts)} texts ({len(keep)} long enough)",
            f"at least {MIN_CORPUS_TEXTS} texts of {horizon + 2} tokens or more (data.horizon={horizon})",
        )
    pad = getattr(tokenizers[0], "pad_token_id", None)
    pad = pad if pad is not None else tokenizers[0].eos_token_id or 0
    order = torch.randperm(len(keep), generator=generator(seed, "corpus-split"))
    bounds = split_bounds(len(keep), fractions)
    ids, lengths = {}, {}
    for split, (lo, hi) in bounds.items():
        chosen = [keep[i] for i in sorted(order[lo:hi].tolist())]
        width = max(len(c) for c in chosen)
        ids[split] = torch.tensor([c + [pad] * (width - len(c)) for c in chosen])
        lengths[split] = torch.tensor([len(c) for c in chosen])
    return CorpusSource(ids, lengths, horizon, cache_dir, variable, len(encoded), len(encoded) - len(keep))


def split_bounds(n: int, fractions) -> dict[str, tuple[int, int]]:
    """Index ranges of ``train``/``val``/``test`` over ``n`` shuffled items; val and test get at least one.

    >>> split_bounds(10, (0.8, 0.1, 0.1))
    {'train': (0, 8), 'val': (8, 9), 'test': (9, 10)}
    """
    n_val = max(1, round(n * fractions[1]))
    n_test = max(1, round(n * fractions[2]))
    n_train = n - n_val - n_test
    return {"train": (0, n_train), "val": (n_train, n_train + n_val), "test": (n_train + n_val, n)}


def read_corpus(path: Path) -> list[str]:
    """The non-empty texts of a corpus file: lines of a ``.txt``, ``text`` fields of a ``.jsonl``."""
    import json

    from alignsearch.errors import ConfigError

    lines = path.read_text(encoding="utf-8").split("\n")
    if path.suffix == ".txt":
        return [line.strip() for line in lines if line.strip()]
    texts = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            texts.append(str(json.loads(line)["text"]))
        except (ValueError, KeyError, TypeError):
            raise ConfigError(
                "data.path", str(path), f'JSON objects with a "text" field (line {number})'
            ) from None
    return texts


def require_file(path: str | None, key: str, allowed: str) -> Path:
    from alignsearch.errors import ConfigError

    if not path or not Path(str(path)).is_file():
        raise ConfigError(key, path, allowed)
    return Path(str(path))


def pairs_summary(data: PairsData) -> dict[str, Any]:
    """What ``results.json`` says of text pairs: rows, pairs per split, the rows left out and why, how
    many rows repeated earlier ones (dropped before splitting), and how many pairs have a natural target
    (a counterfactual prompt)."""
    return {
        "kind": "pairs",
        "rows": data.n_rows,
        "pairs": {split: len(p) for split, p in data.splits.items()},
        "skipped": [{"line": p.line, "reason": p.reason} for p in data.problems],
        "duplicates": data.duplicates,
        "natural_targets": data.natural_targets,
    }


UNTRAINED_STREAM = "untrained-lm"
"""The key of the seed a language model's untrained copy is drawn from (:func:`untrained_copy`)."""


def untrained_copy(model: TextLM, seed: int) -> TextLM:
    """A language model with freshly initialised weights (its architecture and config) and the same
    tokenizer: the ``untrained`` control's model. Its weights are drawn from a seed derived from ``seed``
    (:data:`UNTRAINED_STREAM`), not from ``seed`` itself: a model that is already a random draw (built
    under ``torch.manual_seed(0)``, as benchmarks and quick checks build one) would otherwise be drawn
    again, weight for weight, and be its own control."""
    import copy

    import torch

    from alignsearch.models.hf_load import require_transformers

    transformers = require_transformers()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed(seed, UNTRAINED_STREAM))
        fresh = transformers.AutoModelForCausalLM.from_config(model.lm.config)
    twin = copy.deepcopy(model)
    twin.lm.load_state_dict(fresh.state_dict())
    return twin
