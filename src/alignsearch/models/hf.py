"""HuggingFace causal language models as task models (``pip install -e ".[hf]"``), entirely offline.

Built from a ``transformers`` config with random weights (``model=hf``; small by default) and trained
on the numeric tasks like any other model, or loaded from a local directory written by
``save_pretrained`` (``model=hf model.path=...``). Sites are named like the other models':
``embedding`` (the input to the first block) and ``layer.<i>`` (the residual stream after block ``i``),
reached with forward hooks on the blocks; any module path works too (``transformer.h.1``).

    >>> HFCausalLM(vocab_size=8, architecture="gpt2", d_model=32, n_layers=2, n_heads=2).sites
    {'embedding': 32, 'layer.0': 32, 'layer.1': 32}
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import Tensor, nn

from alignsearch.errors import ConfigError, require_positive
from alignsearch.models.base import Intervention, SequenceModel, check_vocab_size, layer_sites
from alignsearch.models.hooks import hooked

MAX_POSITIONS = 128
"""Position table size of the models built here (the tasks' sequences are at most about 45 tokens)."""

CONFIG_KEYS = {  # our setting -> the architecture's config key
    "gpt2": {"d_model": "n_embd", "n_layers": "n_layer", "n_heads": "n_head", "max_positions": "n_positions"},
    "llama": {
        "d_model": "hidden_size",
        "n_layers": "num_hidden_layers",
        "n_heads": "num_attention_heads",
        "max_positions": "max_position_embeddings",
    },
}
BLOCK_PATHS = ("transformer.h", "model.layers", "gpt_neox.layers", "model.decoder.layers")


def require_transformers():
    """The ``transformers`` package, or a one-line ConfigError saying how to get it."""
    try:
        import transformers
    except ImportError:
        raise ConfigError(
            "model", "hf", 'the transformers package: pip install -e ".[hf]" (it is an optional extra)'
        ) from None
    return transformers


class HFCausalLM(SequenceModel):
    """A ``transformers`` causal LM behind the task-model contract (sites, encode, readout)."""

    def __init__(
        self,
        vocab_size: int,
        architecture: str = "gpt2",
        d_model: int = 64,
        n_layers: int = 2,
        n_heads: int = 2,
        dropout: float = 0.0,
        path: str | None = None,
    ) -> None:
        super().__init__()
        transformers = require_transformers()
        check_vocab_size(vocab_size)
        self.architecture, self.path = architecture, path
        if path is not None:
            self.lm = self._load(transformers, Path(path), vocab_size)
        else:
            if architecture not in CONFIG_KEYS:
                raise ConfigError(
                    "architecture", architecture, f"one of {', '.join(CONFIG_KEYS)} (or model.path)"
                )
            for key, value in (("d_model", d_model), ("n_layers", n_layers), ("n_heads", n_heads)):
                require_positive(key, value)
            if d_model % n_heads:
                raise ConfigError("n_heads", n_heads, f"a divisor of d_model ({d_model})")
            names = CONFIG_KEYS[architecture]
            settings = {
                names["d_model"]: d_model,
                names["n_layers"]: n_layers,
                names["n_heads"]: n_heads,
                names["max_positions"]: MAX_POSITIONS,
            }
            if architecture == "gpt2":
                settings |= {"resid_pdrop": dropout, "embd_pdrop": dropout, "attn_pdrop": dropout}
            else:
                settings |= {"intermediate_size": 4 * d_model, "attention_dropout": dropout}
            settings |= {
                "bos_token_id": None,
                "eos_token_id": None,
                "pad_token_id": None,
            }  # ours live in the task
            config = transformers.AutoConfig.for_model(architecture, vocab_size=vocab_size, **settings)
            self.lm = transformers.AutoModelForCausalLM.from_config(config)
        self.blocks = self._blocks()
        self.d_model = int(self.lm.config.hidden_size)
        self.n_layers = len(self.blocks)
        self.n_heads, self.dropout = n_heads, dropout

    @staticmethod
    def _load(transformers, path: Path, vocab_size: int) -> nn.Module:
        if not (path / "config.json").is_file():
            raise ConfigError(
                "model.path", str(path), "a folder written by save_pretrained (with config.json)"
            )
        try:
            lm = transformers.AutoModelForCausalLM.from_pretrained(path, local_files_only=True)
        except (ValueError, OSError) as e:
            first = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise ConfigError("model.path", str(path), f"a causal language model ({first})") from None
        if lm.get_input_embeddings().num_embeddings < vocab_size:
            raise ConfigError("model.path", str(path), f"a model with at least {vocab_size} token embeddings")
        return lm

    def _blocks(self) -> nn.ModuleList:
        for path in BLOCK_PATHS:
            try:
                blocks = self.lm.get_submodule(path)
            except AttributeError:
                continue
            if isinstance(blocks, nn.ModuleList):
                return blocks
        raise ConfigError(
            "model.path", self.path, f"a causal LM whose blocks are at one of {', '.join(BLOCK_PATHS)}"
        )

    def settings(self) -> dict[str, Any]:
        """The constructor's arguments; with ``path``, ``d_model`` and ``n_layers`` are the loaded model's."""
        return super().settings() | {"d_model": self.d_model, "n_layers": self.n_layers}

    @property
    def sites(self) -> dict[str, int]:
        """``embedding`` (the input to the first block) and the residual stream after each block."""
        return layer_sites(self.d_model, self.n_layers)

    naming_keys = ("architecture",)

    @property
    def module_root(self) -> nn.Module:
        """Module paths are read inside the HuggingFace model: ``transformer.h.1``."""
        return self.lm

    @property
    def name(self) -> str:
        return f"hf_{self.architecture}"

    def _hook(self, site: str, fn):
        """A hook at a named site: before the first block (embedding) or after block ``i``."""
        layer = self.check_site(site)
        if layer >= 0:
            return hooked(self.blocks[layer], fn)

        def pre(module: nn.Module, args: tuple, kwargs: dict):
            if args:
                new = fn(args[0])
                return None if new is None else ((new, *args[1:]), kwargs)
            new = fn(kwargs["hidden_states"])
            return None if new is None else (args, {**kwargs, "hidden_states": new})

        return self.blocks[0].register_forward_pre_hook(pre, with_kwargs=True)

    def encode(self, ids: Tensor, intervention: Intervention | None = None) -> Tensor:
        handle = None if intervention is None else self._hook(intervention.site, intervention.apply)
        try:
            out = self.lm.base_model(input_ids=ids)
        finally:
            if handle is not None:
                handle.remove()
        return out.last_hidden_state

    def readout(self, hidden: Tensor) -> Tensor:
        return self.lm.get_output_embeddings()(hidden)

    def activations(self, ids: Tensor, site: str) -> Tensor:
        seen: list[Tensor] = []
        handle = self._hook(site, lambda h: seen.append(h) or None)
        try:
            self.lm.base_model(input_ids=ids)
        finally:
            handle.remove()
        return seen[0]
