"""Recurrent task models: GRU, LSTM and vanilla (tanh) RNN.

Training and plain runs use the fused cuDNN/oneDNN kernels (one ``nn.GRU`` etc. per layer, so every
layer's outputs are at hand). A run with one intervened position per row runs the fused kernels on
packed windows around it (:class:`~alignsearch.models.windows.Windows`); a run with several unrolls
the cells over the same parameters, but only between the first and the last intervened positions.

An LSTM's site ``layer.<i>`` is its full state ``[h; c]``: with ``d_model = 128`` each of ``h`` and ``c``
has 64 units. ``layer.<i>.h`` is its hidden state ``h`` alone (64 units; the cell state ``c`` is left as
the run has it): ``c`` is unbounded (on MultiObject its RMS is about 3.6 against 0.6 for ``h``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import torch
from torch import Tensor, nn

from alignsearch.errors import ConfigError, require_positive
from alignsearch.models.base import (
    Intervention,
    SequenceModel,
    capture,
    check_dropout,
    check_vocab_size,
    full_mask,
    layer_sites,
)
from alignsearch.models.windows import Windows

State = Tensor | tuple[Tensor, Tensor]  # h, or (h, c) for an LSTM
H_ONLY = ".h"
"""The suffix of an LSTM site that is its hidden state alone (``layer.0.h``)."""


class RecurrentModel(SequenceModel):
    """Embedding -> ``n_layers`` recurrent layers -> MLP read-out (``head_mult * d_model`` GELU units)."""

    rnn_class: type[nn.GRU] | type[nn.LSTM] | type[nn.RNN]

    def __init__(
        self, vocab_size: int, d_model: int = 128, n_layers: int = 1, dropout: float = 0.0, head_mult: int = 4
    ) -> None:
        super().__init__()
        check_vocab_size(vocab_size)
        require_positive("d_model", d_model)
        require_positive("n_layers", n_layers)
        require_positive("head_mult", head_mult)
        self.d_model, self.n_layers, self.dropout, self.head_mult = (
            d_model,
            n_layers,
            check_dropout(dropout),
            head_mult,
        )
        self.hidden = self._hidden_size(d_model)
        self.embedding = nn.Embedding(vocab_size, d_model)
        self.layers = nn.ModuleList(
            self.rnn_class(d_model if i == 0 else self.hidden, self.hidden, batch_first=True)
            for i in range(n_layers)
        )
        self.head = nn.Sequential(
            nn.Linear(self.hidden, head_mult * d_model),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(head_mult * d_model, vocab_size),
        )

    settings_canonical = {"dropout": float}

    @property
    def sites(self) -> dict[str, int]:
        """``embedding`` and each layer's state (an LSTM's ``[h; c]``), all ``d_model`` wide."""
        return layer_sites(self.d_model, self.n_layers)

    def _hidden_size(self, d_model: int) -> int:
        return d_model

    # -- state helpers (overridden by the LSTM) ---------------------------------------------------------------
    # A model only ever gets its own kind of state: a Tensor here, (h, c) in the LSTM's overrides (which
    # therefore narrow their argument types).
    def _cell(self, layer: int, x: Tensor, state: State | None) -> State:
        raise NotImplementedError

    def _output(self, state: State) -> Tensor:
        return cast(Tensor, state)

    def _site_vector(self, state: State, site: str) -> Tensor:
        """The part of a layer's state that ``site`` names."""
        return cast(Tensor, state)

    def _from_site_vector(self, v: Tensor, state: State, site: str) -> State:
        """``state`` with the part ``site`` names replaced by ``v``."""
        return v

    def _to_fused(self, state: State | None) -> Tensor | tuple[Tensor, Tensor] | None:
        return None if state is None else cast(Tensor, state).unsqueeze(0)

    def _from_fused(self, state) -> State:
        return state.squeeze(0)

    # -- running ----------------------------------------------------------------------------------------------
    def _layer_input(self, x: Tensor, layer: int) -> Tensor:
        """Dropout between stacked layers (not before the first)."""
        return x if layer == 0 else nn.functional.dropout(x, self.dropout, self.training)

    def _fused(
        self, x: Tensor, states: list[State | None], upto: int | None = None
    ) -> tuple[Tensor, list[State]]:
        """Run layers ``0..upto`` (all by default) with the fused kernels from the given states."""
        new_states = []
        for i, rnn in enumerate(self.layers[: None if upto is None else upto + 1]):
            x, state = rnn(self._layer_input(x, i), self._to_fused(states[i]))
            new_states.append(self._from_fused(state))
        return x, new_states

    def encode(self, ids: Tensor, intervention: Intervention | None = None) -> Tensor:
        x = self.embedding(ids)
        layer = -2 if intervention is None else self.check_site(intervention.site)
        if intervention is not None and layer == -1:
            x = intervention.apply(x)
        if intervention is None or layer < 0:
            return self._fused(x, [None] * self.n_layers)[0]
        return self._run_with_layer_intervention(x, layer, intervention)

    def readout(self, hidden: Tensor) -> Tensor:
        return self.head(hidden)

    def _run_with_layer_intervention(self, x: Tensor, layer: int, intervention: Intervention) -> Tensor:
        if int(intervention.mask.sum(1).max()) <= 1:
            return self._run_single_position(x, layer, intervention)
        return self._run_unrolled(x, layer, intervention)

    def _run_packed(
        self, windows: Windows, entries: Tensor, layers: range, states: Sequence[State | None] | None = None
    ) -> tuple[Tensor, list[State]]:
        """The given layers over ``windows`` (``entries``: the first one's inputs, packed), each from its
        state in ``states`` (indexed by layer; zeros where None); returns the last layer's outputs,
        packed, and every layer's state after each row's window."""
        finals = []
        for i in layers:
            state = None if states is None else states[i]
            out, final = self.layers[i](windows.pack(self._layer_input(entries, i)), self._to_fused(state))
            entries = out.data
            finals.append(self._from_fused(final))
        return entries, finals

    def _run_single_position(self, x: Tensor, layer: int, intervention: Intervention) -> Tensor:
        """At most one intervened position per row: fused kernels before and after it, one cell step at it.

        The plain run reads each row up to its position ``p`` (the layers above the site up to ``p - 1``);
        the intervention changes the site's state at ``p`` (layers above are stepped once at ``p``); then
        every layer continues from its new state over the row's own inputs ``p + 1, p + 2, ...``, as far
        as its outputs are read. Each run is packed (:class:`Windows`), so no work or memory goes to
        cells outside it; rows without an intervention run plainly to their end.
        """
        batch, length, _ = x.shape
        rows = torch.arange(batch, device=x.device)
        has = intervention.mask.any(1)
        pos = intervention.mask.float().argmax(1)  # 0 where a row has none
        if intervention.lengths is None:
            end = torch.full_like(pos, length)
        else:
            end = intervention.lengths.clamp(max=length)
        first = torch.zeros_like(pos)
        plain_end = torch.where(has, pos + 1, end)
        top = upto = Windows.of(first, plain_end, length)  # layers up to the site: through p
        plain, states = self._run_packed(upto, upto.gather(x), range(layer + 1))
        if layer + 1 < self.n_layers:  # layers above it: through p - 1 (their initial state for p = 0)
            top = Windows.of(first, plain_end - has.long(), length)
            plain, above = self._run_packed(top, top.take(upto, plain), range(layer + 1, self.n_layers))
            states += [_zero_rows(state, has & (pos == 0)) for state in above]

        at = rows[has]
        vector = self._site_vector(states[layer], intervention.site)
        vector = vector.index_put((at,), intervention.fn(vector[at], at, pos[at]))
        states[layer] = self._from_site_vector(vector, states[layer], intervention.site)
        out_at = self._output(states[layer])
        for k in range(layer + 1, self.n_layers):
            states[k] = self._cell(k, self._layer_input(out_at, k), states[k])
            out_at = self._output(states[k])

        ahead = Windows.of(pos + 1, torch.where(has, end - pos - 1, 1), length)
        continued = self._run_packed(ahead, ahead.gather(x), range(self.n_layers), states)[0]

        # outputs: the plain run's before p, the intervened state's at p, the continued run's after p
        before = (~has[top.rows] | (top.cols < pos[top.rows])).nonzero().squeeze(1)
        after = (has[ahead.rows] & (ahead.cols < end[ahead.rows])).nonzero().squeeze(1)
        cells = torch.cat([top.flat[before], at * length + pos[at], ahead.flat[after]])
        values = torch.cat([plain.index_select(0, before), out_at[at], continued.index_select(0, after)])
        out = values.new_zeros(batch * length, values.shape[-1]).index_copy_(0, cells, values)
        return out.view(batch, length, -1)

    def _run_unrolled(self, x: Tensor, layer: int, intervention: Intervention) -> Tensor:
        """Step the cells between the first and last intervened positions; fused kernels elsewhere."""
        touched = intervention.mask.any(0).nonzero()
        if touched.numel() == 0:
            return self._fused(x, [None] * self.n_layers)[0]
        start, stop = int(touched[0]), int(touched[-1]) + 1
        states: list[State | None] = [None] * self.n_layers
        outputs = []
        if start > 0:
            out, after = self._fused(x[:, :start], states)
            states = list(after)
            outputs.append(out)
        for t in range(start, stop):
            inp = x[:, t]
            for i in range(self.n_layers):
                state = self._cell(i, self._layer_input(inp, i), states[i])
                if i == layer:
                    vector = intervention.apply_step(self._site_vector(state, intervention.site), t)
                    state = self._from_site_vector(vector, state, intervention.site)
                states[i] = state
                inp = self._output(state)
            outputs.append(inp.unsqueeze(1))
        if stop < x.shape[1]:
            outputs.append(self._fused(x[:, stop:], states)[0])
        return torch.cat(outputs, 1)

    def activations(self, ids: Tensor, site: str) -> Tensor:
        layer = self.check_site(site)
        x = self.embedding(ids)
        if layer == -1:
            return x
        return self._fused(x, [None] * self.n_layers, upto=layer)[0]


def _zero_rows(state: State, rows: Tensor) -> State:
    """``state`` with the rows where ``rows`` is true set to zeros (the initial state)."""
    if isinstance(state, tuple):
        h, c = (torch.where(rows[:, None], torch.zeros_like(part), part) for part in state)
        return h, c
    return torch.where(rows[:, None], torch.zeros_like(state), state)


class GRU(RecurrentModel):
    """Gated recurrent unit; its site is the hidden state ``h``."""

    rnn_class = nn.GRU

    def _cell(self, layer: int, x: Tensor, state: Tensor | None) -> Tensor:  # type: ignore[override]
        rnn: Any = self.layers[layer]  # its weight_ih_l0, ... are set by name
        h = x.new_zeros(x.shape[0], self.hidden) if state is None else state
        return torch.gru_cell(x, h, rnn.weight_ih_l0, rnn.weight_hh_l0, rnn.bias_ih_l0, rnn.bias_hh_l0)


class RNN(RecurrentModel):
    """Vanilla tanh RNN; its site is the hidden state ``h``."""

    rnn_class = nn.RNN

    def _cell(self, layer: int, x: Tensor, state: Tensor | None) -> Tensor:  # type: ignore[override]
        rnn: Any = self.layers[layer]  # its weight_ih_l0, ... are set by name
        h = x.new_zeros(x.shape[0], self.hidden) if state is None else state
        return torch.rnn_tanh_cell(x, h, rnn.weight_ih_l0, rnn.weight_hh_l0, rnn.bias_ih_l0, rnn.bias_hh_l0)


class LSTM(RecurrentModel):
    """Long short-term memory with ``d_model / 2`` units, so that its site ``[h; c]`` is ``d_model`` wide;
    ``layer.<i>.h`` is ``h`` alone (``d_model / 2`` wide)."""

    rnn_class = nn.LSTM

    @property
    def sites(self) -> dict[str, int]:
        """``embedding``, each layer's ``[h; c]`` (``layer.<i>``) and its ``h`` alone (``layer.<i>.h``).

        >>> list(LSTM(10, d_model=8).sites.items())
        [('embedding', 8), ('layer.0', 8), ('layer.0.h', 4)]
        """
        sites = {"embedding": self.d_model}
        for i in range(self.n_layers):
            sites |= {f"layer.{i}": self.d_model, f"layer.{i}{H_ONLY}": self.hidden}
        return sites

    def _hidden_size(self, d_model: int) -> int:
        if d_model % 2:
            raise ConfigError(
                "d_model", d_model, "an even width for an LSTM (its site [h; c] splits in halves)"
            )
        return d_model // 2

    def _cell(  # type: ignore[override]
        self, layer: int, x: Tensor, state: tuple[Tensor, Tensor] | None
    ) -> tuple[Tensor, Tensor]:
        rnn: Any = self.layers[layer]  # its weight_ih_l0, ... are set by name
        if state is None:
            zeros = x.new_zeros(x.shape[0], self.hidden)
            state = (zeros, zeros)
        return torch.lstm_cell(x, state, rnn.weight_ih_l0, rnn.weight_hh_l0, rnn.bias_ih_l0, rnn.bias_hh_l0)

    def _output(self, state: tuple[Tensor, Tensor]) -> Tensor:  # type: ignore[override]
        return state[0]

    def _site_vector(self, state: tuple[Tensor, Tensor], site: str) -> Tensor:  # type: ignore[override]
        return state[0] if site.endswith(H_ONLY) else torch.cat(state, -1)

    def _from_site_vector(  # type: ignore[override]
        self, v: Tensor, state: tuple[Tensor, Tensor], site: str
    ) -> tuple[Tensor, Tensor]:
        if site.endswith(H_ONLY):
            return v, state[1]
        return v[:, : self.hidden], v[:, self.hidden :]

    def _to_fused(self, state):
        return None if state is None else (state[0].unsqueeze(0), state[1].unsqueeze(0))

    def _from_fused(self, state):
        return state[0].squeeze(0), state[1].squeeze(0)

    def activations(self, ids: Tensor, site: str) -> Tensor:
        """``[h; c]`` needs every step's cell state, which the fused kernel does not return: unroll
        (``h`` alone is what the fused kernel returns)."""
        layer = self.check_site(site)
        if layer == -1 or site.endswith(H_ONLY):
            return super().activations(ids, site)
        store: list[Tensor] = []
        self(ids, Intervention(site, full_mask(ids), capture(store)))
        return torch.stack(store, 1)
