"""A small decoder-only Transformer: pre-LayerNorm blocks, rotary position embeddings, causal attention.

Sites: ``embedding`` (token embeddings, no positional vectors: position enters through RoPE) and
``layer.{i}``, the residual stream after block ``i``. Interventions on a site replace vectors in one
parallel pass; causal attention lets them affect later positions only.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from alignsearch.errors import ConfigError, require_positive
from alignsearch.models.base import (
    Intervention,
    SequenceModel,
    check_dropout,
    check_vocab_size,
    layer_sites,
)


def rope_tables(length: int, head_dim: int, base: float, device: torch.device) -> tuple[Tensor, Tensor]:
    """cos and sin tables (length, head_dim) for rotate-half RoPE."""
    inv_freq = 1.0 / base ** (torch.arange(0, head_dim, 2, device=device, dtype=torch.float32) / head_dim)
    angles = torch.outer(torch.arange(length, device=device, dtype=torch.float32), inv_freq)
    angles = torch.cat([angles, angles], -1)
    return angles.cos(), angles.sin()


def apply_rope(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    half = x.shape[-1] // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], -1)
    return x * cos + rotated * sin


class CausalSelfAttention(nn.Module):
    def __init__(self, d_model: int, n_heads: int) -> None:
        super().__init__()
        self.n_heads, self.head_dim = n_heads, d_model // n_heads
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.out = nn.Linear(d_model, d_model)

    def forward(self, x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.n_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.out(y.transpose(1, 2).reshape(b, n, d))


class Block(nn.Module):
    def __init__(self, d_model: int, n_heads: int, ff_mult: int, dropout: float) -> None:
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.attn = CausalSelfAttention(d_model, n_heads)
        self.ff = nn.Sequential(
            nn.Linear(d_model, ff_mult * d_model), nn.GELU(), nn.Linear(ff_mult * d_model, d_model)
        )
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
        x = x + self.drop(self.attn(self.norm1(x), cos, sin))
        return x + self.drop(self.ff(self.norm2(x)))


class Transformer(SequenceModel):
    """``n_layers`` pre-LN blocks of ``n_heads``-head causal attention and a ``ff_mult * d_model`` MLP."""

    def __init__(
        self,
        vocab_size: int,
        d_model: int = 128,
        n_layers: int = 2,
        n_heads: int = 1,
        ff_mult: int = 4,
        dropout: float = 0.1,
        rope_base: float = 10000.0,
    ) -> None:
        super().__init__()
        check_vocab_size(vocab_size)
        require_positive("d_model", d_model)
        require_positive("n_layers", n_layers)
        require_positive("n_heads", n_heads)
        require_positive("ff_mult", ff_mult)
        if d_model % n_heads:
            raise ConfigError("n_heads", n_heads, f"a divisor of d_model ({d_model})")
        if (d_model // n_heads) % 2:
            raise ConfigError(
                "n_heads", n_heads, f"a head width d_model/n_heads that is even (RoPE), d_model={d_model}"
            )
        if rope_base <= 1:
            raise ConfigError("rope_base", rope_base, "a number > 1")
        self.d_model, self.n_layers, self.n_heads, self.ff_mult = d_model, n_layers, n_heads, ff_mult
        self.dropout, self.rope_base = check_dropout(dropout), float(rope_base)
        self.embedding = nn.Embedding(vocab_size, d_model)
        self.blocks = nn.ModuleList(Block(d_model, n_heads, ff_mult, dropout) for _ in range(n_layers))
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, vocab_size)

    settings_canonical = {"dropout": float, "rope_base": float}

    @property
    def sites(self) -> dict[str, int]:
        """``embedding`` and the residual stream after each block."""
        return layer_sites(self.d_model, self.n_layers)

    def _run(self, ids: Tensor, intervention: Intervention | None, stop_at: int | None = None) -> Tensor:
        """The residual stream after block ``stop_at`` (-1: the embedding), or after the last block."""
        target = None if intervention is None else self.check_site(intervention.site)
        x = self.embedding(ids)
        if intervention is not None and target == -1:
            x = intervention.apply(x)
        if stop_at == -1:
            return x
        cos, sin = rope_tables(ids.shape[1], self.d_model // self.n_heads, self.rope_base, ids.device)
        for i, block in enumerate(self.blocks):
            x = block(x, cos, sin)
            if intervention is not None and target == i:
                x = intervention.apply(x)
            if stop_at == i:
                return x
        return x

    def encode(self, ids: Tensor, intervention: Intervention | None = None) -> Tensor:
        return self._run(ids, intervention)

    def readout(self, hidden: Tensor) -> Tensor:
        return self.head(self.norm(hidden))

    def activations(self, ids: Tensor, site: str) -> Tensor:
        return self._run(ids, None, stop_at=self.check_site(site))
