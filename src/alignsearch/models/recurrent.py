"""Recurrent task models: GRU, LSTM and vanilla (tanh) RNN.

Training and plain runs use the fused cuDNN/oneDNN kernels (one ``nn.GRU`` etc. per layer, so every
layer's outputs are at hand). A run with an intervention on a layer unrolls the cells over the same
parameters, but only between the first and the last intervened positions; before and after that
window the fused kernels run.

An LSTM's site is its full state ``[h; c]``: with ``d_model = 128`` each of ``h`` and ``c`` has 64 units.
"""

from __future__ import annotations

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
)

State = Tensor | tuple[Tensor, Tensor]  # h, or (h, c) for an LSTM


class RecurrentModel(SequenceModel):
    """Embedding -> ``n_layers`` recurrent layers -> MLP read-out (``head_mult * d_model`` GELU units)."""

    rnn_class: type[nn.RNNBase]

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

    def settings(self) -> dict:
        return {
            "d_model": self.d_model,
            "n_layers": self.n_layers,
            "dropout": self.dropout,
            "head_mult": self.head_mult,
        }

    def _hidden_size(self, d_model: int) -> int:
        return d_model

    # -- state helpers (overridden by the LSTM) ---------------------------------------------------------------
    def _cell(self, layer: int, x: Tensor, state: State | None) -> State:
        raise NotImplementedError

    def _output(self, state: State) -> Tensor:
        return state

    def _site_vector(self, state: State) -> Tensor:
        return state

    def _from_site_vector(self, v: Tensor) -> State:
        return v

    def _to_fused(self, state: State | None) -> Tensor | tuple[Tensor, Tensor] | None:
        return None if state is None else state.unsqueeze(0)

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

    def _fused_packed(self, x: Tensor, states: list[State], lengths: Tensor) -> Tensor:
        """:meth:`_fused` over the first ``lengths[r]`` steps of each row only (zeros after them)."""
        for i, rnn in enumerate(self.layers):
            x = self._packed(rnn, self._layer_input(x, i), states[i], lengths)
        return x

    def _packed(self, rnn: nn.RNNBase, x: Tensor, state: State | None, lengths: Tensor) -> Tensor:
        """One fused layer over the first ``lengths[r]`` steps of each row (zeros after them)."""
        packed = nn.utils.rnn.pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        out, _ = rnn(packed, self._to_fused(state))
        return nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])[0]

    def encode(self, ids: Tensor, intervention: Intervention | None = None) -> Tensor:
        x = self.embedding(ids)
        layer = -2 if intervention is None else self.check_site(intervention.site)
        if layer == -1:
            x = intervention.apply(x)
        if layer < 0:
            return self._fused(x, [None] * self.n_layers)[0]
        return self._run_with_layer_intervention(x, layer, intervention)

    def readout(self, hidden: Tensor) -> Tensor:
        return self.head(hidden)

    def _run_with_layer_intervention(self, x: Tensor, layer: int, intervention: Intervention) -> Tensor:
        if int(intervention.mask.sum(1).max()) <= 1:
            return self._run_single_position(x, layer, intervention)
        return self._run_unrolled(x, layer, intervention)

    def _state_sequence(self, layer: int, inputs: Tensor, outputs: Tensor) -> State:
        """Every step's state of a layer, from its inputs and fused outputs: (batch, length, ...)."""
        return outputs

    def _run_single_position(self, x: Tensor, layer: int, intervention: Intervention) -> Tensor:
        """At most one intervened position per row: fused kernels before and after it, one cell step at it.

        The plain run gives every layer's state at each row's position ``p``; the intervention changes the
        site there (layers above are stepped once more at ``p``); then every row continues from its new
        state over its own inputs ``p+1, p+2, ...``, shifted to the left so one fused call serves all rows.
        """
        batch, length, _ = x.shape
        rows = torch.arange(batch, device=x.device)
        has = intervention.mask.any(1)
        pos = intervention.mask.float().argmax(1)
        sequences, inp = [], x
        # the plain run is read up to each row's position (and to its end where it has none)
        plain_steps = (
            None if intervention.lengths is None else torch.where(has, pos + 1, intervention.lengths)
        )
        for i, rnn in enumerate(self.layers):
            layer_in = self._layer_input(inp, i)
            if plain_steps is None:
                inp = rnn(layer_in)[0]
            else:
                inp = self._packed(rnn, layer_in, None, plain_steps.clamp(1, length))
            sequences.append(self._state_sequence(i, layer_in, inp))
        plain = inp
        states = [_state_at(seq, rows, pos) for seq in sequences]
        site = self._site_vector(states[layer])
        site = site.index_put((rows[has],), intervention.fn(site[has], rows[has], pos[has]))
        states[layer] = self._from_site_vector(site)
        out_at = self._output(states[layer])
        for k in range(layer + 1, self.n_layers):
            states[k] = self._cell(k, self._layer_input(out_at, k), _state_at(sequences[k], rows, pos - 1))
            out_at = self._output(states[k])
        cols = torch.arange(length, device=x.device)[None, :]
        ahead = cols + pos[:, None] + 1
        shifted = x[rows[:, None], ahead.clamp(max=length - 1)] * (ahead < length)[..., None]
        if intervention.lengths is None:
            continued = self._fused(shifted, states)[0]
        else:  # each row continues only as far as its outputs are read: packed, no work past that
            steps = torch.where(has, intervention.lengths - pos - 1, 0).clamp(1, length)
            continued = self._fused_packed(shifted, states, steps)
        back = continued[rows[:, None], (cols - pos[:, None] - 1).clamp(min=0)]
        out = torch.where((cols < pos[:, None])[..., None], plain, back)
        out = torch.where((cols == pos[:, None])[..., None], out_at[:, None, :], out)
        return torch.where(has[:, None, None], out, plain)

    def _run_unrolled(self, x: Tensor, layer: int, intervention: Intervention) -> Tensor:
        """Step the cells between the first and last intervened positions; fused kernels elsewhere."""
        touched = intervention.mask.any(0).nonzero()
        if touched.numel() == 0:
            return self._fused(x, [None] * self.n_layers)[0]
        start, stop = int(touched[0]), int(touched[-1]) + 1
        states: list[State | None] = [None] * self.n_layers
        outputs = []
        if start > 0:
            out, states = self._fused(x[:, :start], states)
            outputs.append(out)
        for t in range(start, stop):
            inp = x[:, t]
            for i in range(self.n_layers):
                state = self._cell(i, self._layer_input(inp, i), states[i])
                if i == layer:
                    state = self._from_site_vector(intervention.apply_step(self._site_vector(state), t))
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


def _state_at(sequence: State, rows: Tensor, pos: Tensor) -> State:
    """Each row's state at its position (zeros, the initial state, where the position is -1)."""
    if isinstance(sequence, tuple):
        return tuple(_state_at(part, rows, pos) for part in sequence)
    picked = sequence[rows, pos.clamp(min=0)]
    return torch.where((pos >= 0)[:, None], picked, torch.zeros_like(picked))


class GRU(RecurrentModel):
    """Gated recurrent unit; its site is the hidden state ``h``."""

    rnn_class = nn.GRU

    def _cell(self, layer: int, x: Tensor, state: Tensor | None) -> Tensor:
        rnn = self.layers[layer]
        h = x.new_zeros(x.shape[0], self.hidden) if state is None else state
        return torch.gru_cell(x, h, rnn.weight_ih_l0, rnn.weight_hh_l0, rnn.bias_ih_l0, rnn.bias_hh_l0)


class RNN(RecurrentModel):
    """Vanilla tanh RNN; its site is the hidden state ``h``."""

    rnn_class = nn.RNN

    def _cell(self, layer: int, x: Tensor, state: Tensor | None) -> Tensor:
        rnn = self.layers[layer]
        h = x.new_zeros(x.shape[0], self.hidden) if state is None else state
        return torch.rnn_tanh_cell(x, h, rnn.weight_ih_l0, rnn.weight_hh_l0, rnn.bias_ih_l0, rnn.bias_hh_l0)


class LSTM(RecurrentModel):
    """Long short-term memory with ``d_model / 2`` units, so that its site ``[h; c]`` is ``d_model`` wide."""

    rnn_class = nn.LSTM

    def _hidden_size(self, d_model: int) -> int:
        if d_model % 2:
            raise ConfigError(
                "d_model", d_model, "an even width for an LSTM (its site [h; c] splits in halves)"
            )
        return d_model // 2

    def _cell(self, layer: int, x: Tensor, state: tuple[Tensor, Tensor] | None) -> tuple[Tensor, Tensor]:
        rnn = self.layers[layer]
        if state is None:
            zeros = x.new_zeros(x.shape[0], self.hidden)
            state = (zeros, zeros)
        return torch.lstm_cell(x, state, rnn.weight_ih_l0, rnn.weight_hh_l0, rnn.bias_ih_l0, rnn.bias_hh_l0)

    def _output(self, state: tuple[Tensor, Tensor]) -> Tensor:
        return state[0]

    def _state_sequence(self, layer: int, inputs: Tensor, outputs: Tensor) -> tuple[Tensor, Tensor]:
        """``(h, c)`` at every step: the gates follow from the inputs and the previous ``h`` in one pass;
        the cell state is then a cheap elementwise recurrence."""
        rnn = self.layers[layer]
        h_prev = torch.nn.functional.pad(outputs, (0, 0, 1, 0))[:, :-1]
        gates = inputs @ rnn.weight_ih_l0.T + rnn.bias_ih_l0 + h_prev @ rnn.weight_hh_l0.T + rnn.bias_hh_l0
        i, f, g, _ = gates.chunk(4, -1)
        i, f, g = torch.sigmoid(i), torch.sigmoid(f), torch.tanh(g)
        c = torch.zeros_like(outputs[:, 0])
        cells = []
        for t in range(outputs.shape[1]):
            c = f[:, t] * c + i[:, t] * g[:, t]
            cells.append(c)
        return outputs, torch.stack(cells, 1)

    def _site_vector(self, state: tuple[Tensor, Tensor]) -> Tensor:
        return torch.cat(state, -1)

    def _from_site_vector(self, v: Tensor) -> tuple[Tensor, Tensor]:
        return v[:, : self.hidden], v[:, self.hidden :]

    def _to_fused(self, state):
        return None if state is None else (state[0].unsqueeze(0), state[1].unsqueeze(0))

    def _from_fused(self, state):
        return state[0].squeeze(0), state[1].squeeze(0)

    def activations(self, ids: Tensor, site: str) -> Tensor:
        """``[h; c]`` needs every step's cell state, which the fused kernel does not return: unroll."""
        layer = self.check_site(site)
        if layer == -1:
            return self.embedding(ids)
        store: list[Tensor] = []
        self(ids, Intervention(site, full_mask(ids), capture(store)))
        return torch.stack(store, 1)
