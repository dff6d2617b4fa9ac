"""Sequence models: sites, widths, and interventions that do exactly what they say.

The contract tests run on every ``conf/model`` choice (``hf`` where ``transformers`` is installed), so a
new model YAML is tested by adding it.
"""

from __future__ import annotations

import importlib.util

import pytest
import torch
from omegaconf import OmegaConf

from alignsearch.components import build_model
from alignsearch.errors import ConfigError
from alignsearch.models import GRU, LSTM, RNN, Intervention, SequenceModel, Transformer, hooks
from alignsearch.models.base import is_layer_site
from alignsearch.models.windows import Windows
from tests.helpers import CONF, conf_node, task_model_configs


def model_choices() -> list:
    """Every ``conf/model`` choice; those built by ``alignsearch.models.hf`` need ``transformers``."""
    out = []
    for path in task_model_configs():
        hf = str(conf_node(path)["_target_"]).startswith("alignsearch.models.hf.")
        missing = hf and importlib.util.find_spec("transformers") is None
        out.append(pytest.param(path.stem, marks=pytest.mark.skipif(missing, reason="needs transformers")))
    return out


MODELS = model_choices()


def build(choice: str, **small) -> SequenceModel:
    """The ``conf/model`` choice for a vocabulary of 8, with ``small`` settings where it has them, in eval
    mode."""
    node = OmegaConf.load(CONF / "model" / f"{choice}.yaml")
    for key, value in small.items():
        if key in node:
            node[key] = value
    return build_model(node, vocab_size=8).eval()


def ids_batch(vocab: int = 8, batch: int = 5, length: int = 14) -> torch.Tensor:
    return torch.randint(0, vocab, (batch, length), generator=torch.Generator().manual_seed(0))


def one_position_per_row(ids: torch.Tensor) -> torch.Tensor:
    """An intervention mask for a (6, 12) batch: one position in each row but row 3, at both ends too."""
    mask = torch.zeros_like(ids, dtype=torch.bool)
    for row, col in [(0, 0), (1, 5), (2, 11), (4, 3), (5, 5)]:
        mask[row, col] = True
    return mask


@pytest.mark.parametrize(
    ("cls", "kwargs", "sites"),
    [
        (GRU, {}, {"embedding": 128, "layer.0": 128}),
        (LSTM, {}, {"embedding": 128, "layer.0": 128, "layer.0.h": 64}),
        (RNN, {"n_layers": 2, "d_model": 64}, {"embedding": 64, "layer.0": 64, "layer.1": 64}),
        (Transformer, {}, {"embedding": 128, "layer.0": 128, "layer.1": 128}),
    ],
)
def test_sites_and_widths(cls, kwargs, sites) -> None:
    model = cls(8, **kwargs).eval()
    assert model.sites == sites
    ids = ids_batch()
    assert model(ids).shape == (5, 14, 8)
    for site, width in sites.items():
        assert model.activations(ids, site).shape == (5, 14, width)


def test_lstm_site_is_h_and_c() -> None:
    model = LSTM(8, d_model=16).eval()
    assert model.hidden == 8
    ids = ids_batch()
    acts = model.activations(ids, "layer.0")
    out, (h, c) = model.layers[0](model.embedding(ids))
    torch.testing.assert_close(acts[:, :, :8], out)
    torch.testing.assert_close(acts[:, -1, 8:], c[0])


@pytest.mark.parametrize("choice", MODELS)
def test_every_site_has_its_width(choice) -> None:
    model = build(choice, d_model=32, n_layers=2)
    ids = ids_batch()
    assert model.sites, f"{choice} names no site"
    assert model(ids).shape == (5, 14, 8)
    for site, width in model.sites.items():
        assert model.activations(ids, site).shape == (5, 14, width)
        assert hooks.site_activations(model, ids, site).shape == (5, 14, width)


@pytest.mark.parametrize("choice", MODELS)
def test_identity_intervention_changes_nothing(choice) -> None:
    model = build(choice, d_model=32, n_layers=2)
    ids = ids_batch()
    plain = model(ids)
    mask = torch.rand(ids.shape, generator=torch.Generator().manual_seed(1)) < 0.3
    for site in model.sites:
        out = model(ids, Intervention(site, mask, lambda h, rows, cols: h))
        torch.testing.assert_close(out, plain, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("choice", MODELS)
def test_intervention_acts_from_its_position_on(choice) -> None:
    model = build(choice, d_model=32, n_layers=2)
    ids = ids_batch()
    plain = model(ids)
    mask = torch.zeros_like(ids, dtype=torch.bool)
    mask[1, 6] = True
    seen = []

    def zero(h, rows, cols):
        seen.append((rows.tolist(), cols.tolist(), h.shape))
        return torch.zeros_like(h)

    for site in model.sites:
        seen.clear()
        out = model(ids, Intervention(site, mask, zero))
        assert seen == [([1], [6], (1, model.sites[site]))]
        torch.testing.assert_close(out[:, :6], plain[:, :6])  # the past is untouched
        torch.testing.assert_close(out[[0, 2, 3, 4]], plain[[0, 2, 3, 4]])  # other rows too
        assert (out[1, 6:] - plain[1, 6:]).abs().max() > 1e-4


@pytest.mark.parametrize("choice", MODELS)
def test_replacing_with_activations_of_another_run(choice) -> None:
    """Writing another input's activations at every position of a site holding the whole state
    (``embedding``, ``layer.<i>``) reproduces that input's output (a part inside a layer, ``layer.0.mlp``,
    is not the whole state: the residual stream around it stays the base's)."""
    model = build(choice, d_model=32)
    ids, other = ids_batch(), ids_batch().flip(0)
    for site in filter(is_layer_site, model.sites):
        source = model.activations(other, site)
        everywhere = torch.ones_like(ids, dtype=torch.bool)
        out = model(
            ids, Intervention(site, everywhere, lambda h, rows, cols, source=source: source[rows, cols])
        )
        torch.testing.assert_close(out, model(other), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    ("cls", "kwargs", "key"),
    [
        (GRU, {"d_model": 0}, "d_model"),
        (GRU, {"n_layers": -1}, "n_layers"),
        (LSTM, {"d_model": 127}, "d_model"),
        (Transformer, {"n_heads": 3}, "n_heads"),
        (Transformer, {"dropout": 1.5}, "dropout"),
    ],
)
def test_bad_model_settings(cls, kwargs, key) -> None:
    with pytest.raises(ConfigError) as err:
        cls(8, **kwargs)
    assert err.value.key == key


def test_unknown_site_lists_the_sites() -> None:
    with pytest.raises(ConfigError, match="one of embedding, layer.0"):
        GRU(8).activations(ids_batch(), "layer.3")


@pytest.mark.parametrize("cls", [GRU, LSTM, RNN])
@pytest.mark.parametrize("n_layers", [1, 2])
def test_single_position_fast_path_matches_stepping_the_cells(cls, n_layers) -> None:
    """One intervened position per row runs fused kernels around it; it must equal the unrolled run."""
    model = cls(8, d_model=32, n_layers=n_layers).eval()
    ids = ids_batch(batch=6, length=12)
    mask = one_position_per_row(ids)
    noise = torch.randn(6, 12, 32, generator=torch.Generator().manual_seed(2))
    for site in model.sites:
        if site == "embedding":
            continue
        width = model.sites[site]  # an LSTM's layer.<i>.h is half as wide as its [h; c]
        intervention = Intervention(
            site, mask, lambda h, rows, cols, w=width: h * 0.5 + noise[rows, cols, :w]
        )
        layer = model.check_site(site)
        x = model.embedding(ids)
        fast = model._run_single_position(x, layer, intervention)
        slow = model._run_unrolled(x, layer, intervention)
        torch.testing.assert_close(fast, slow, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("cls", [GRU, LSTM, RNN])
@pytest.mark.parametrize("n_layers", [1, 2])
def test_single_position_gradients_match_stepping_the_cells(cls, n_layers) -> None:
    """The packed runs around an intervention pass the same gradients back to what it put in."""
    model = cls(8, d_model=16, n_layers=n_layers).eval()
    ids = ids_batch(batch=6, length=12)
    mask = one_position_per_row(ids)
    lengths = torch.tensor([1, 9, 12, 7, 4, 12])
    read = torch.arange(12)[None, :] < lengths[:, None]
    weights = torch.randn(6, 12, 16, generator=torch.Generator().manual_seed(3))
    for site in model.sites:
        if site == "embedding":
            continue
        layer, x = model.check_site(site), model.embedding(ids).detach()
        grads = []
        for run, given in [(model._run_single_position, lengths), (model._run_unrolled, None)]:
            width = model.sites[site]
            noise = torch.randn(6, 12, width, generator=torch.Generator().manual_seed(2)).requires_grad_()
            out = run(
                x,
                layer,
                Intervention(
                    site, mask, lambda h, rows, cols, noise=noise: h * 0.5 + noise[rows, cols], given
                ),
            )
            (out * weights[..., : out.shape[-1]])[read].sum().backward()
            grads.append(noise.grad)
        assert grads[0][mask].abs().sum() > 0
        torch.testing.assert_close(grads[0], grads[1], rtol=1e-4, atol=1e-5)


def test_windows_pack_like_the_fused_kernels_padding() -> None:
    """One window per row, packed in the order ``pack_padded_sequence`` gives (time-major, longest first)."""
    grid = torch.randn(4, 6, 3)
    steps = torch.tensor([2, 6, 1, 4])
    windows = Windows.of(torch.zeros(4, dtype=torch.long), steps, 6)
    reference = torch.nn.utils.rnn.pack_padded_sequence(grid, steps, batch_first=True, enforce_sorted=False)
    packed = windows.gather(grid)
    torch.testing.assert_close(packed, reference.data)
    assert torch.equal(windows.batch_sizes, reference.batch_sizes)
    shifted = Windows.of(torch.tensor([1, 0, 5, 2]), torch.tensor([3, 2, 1, 0]), 6)
    assert shifted.flat.tolist() == [1, 6, 17, 20, 2, 7, 3]  # rows 0, 1, 2, 3 at the first step; 0, 1; 0
    shorter = Windows.of(torch.zeros(4, dtype=torch.long), steps - 1, 6)
    torch.testing.assert_close(shorter.take(windows, packed), shorter.gather(grid))


@pytest.mark.parametrize("choice", MODELS)
@pytest.mark.parametrize("n_layers", [1, 2])
def test_lengths_only_skip_unread_outputs(choice, n_layers) -> None:
    """With ``lengths`` a model may skip work past each row's length; what it gives before is unchanged."""
    model = build(choice, d_model=32, n_layers=n_layers)
    ids = ids_batch(batch=6, length=12)
    mask = one_position_per_row(ids)
    lengths = torch.tensor([1, 9, 12, 7, 4, 12])
    noise = torch.randn(6, 12, 32, generator=torch.Generator().manual_seed(2))
    read = torch.arange(12)[None, :] < lengths[:, None]
    for site in model.sites:

        def fn(h, rows, cols):
            return h * 0.5 + noise[rows, cols, : h.shape[-1]]

        full = model.encode(ids, Intervention(site, mask, fn))
        short = model.encode(ids, Intervention(site, mask, fn, lengths))
        torch.testing.assert_close(short[read], full[read], rtol=1e-4, atol=1e-5)


class EncodeOnly(SequenceModel):
    """A model that implements only ``encode`` and ``readout``: it handles no named site itself."""

    def __init__(self, vocab_size: int, width: int = 16) -> None:
        super().__init__()
        self.embed = torch.nn.Embedding(vocab_size, width)
        self.rnn = torch.nn.GRU(width, width, batch_first=True)
        self.head = torch.nn.Linear(width, vocab_size)

    def encode(self, ids, intervention=None):
        return self.rnn(self.embed(ids))[0]

    def readout(self, hidden):
        return self.head(hidden)


def test_a_model_with_only_encode_and_readout_offers_module_paths_only() -> None:
    """No ``layer.<i>`` it would silently ignore: a named site is refused, a module path works by hook."""
    model = EncodeOnly(8).eval()
    assert model.sites == {} and model.settings() == {"width": 16}
    ids = ids_batch()
    mask = torch.zeros_like(ids, dtype=torch.bool)
    mask[1, 6] = True
    for site in ("embedding", "layer.0"):
        with pytest.raises(ConfigError, match=f"site={site} is not allowed"):
            hooks.encode(model, ids, Intervention(site, mask, lambda h, rows, cols: h * 0))
        with pytest.raises(ConfigError, match="has no named sites"):
            model.check_site(site)
    plain = model.encode(ids)
    out = hooks.encode(model, ids, Intervention("rnn", mask, lambda h, rows, cols: h * 0))
    assert out[1, 6].abs().max() == 0
    keep = torch.ones_like(mask)
    keep[1, 6] = False
    torch.testing.assert_close(out[keep], plain[keep])  # a hook changes the output, not the carried state
    assert hooks.site_width(model, "embed") == 16


@pytest.mark.parametrize("positions", [[2], [2, 4]])  # one position (fused windows) and several (unrolled)
def test_an_lstm_hidden_state_site_swaps_h_and_keeps_c(positions) -> None:
    from alignsearch.models import Intervention, hooks
    from alignsearch.models.recurrent import LSTM

    torch.manual_seed(0)
    model = LSTM(10, d_model=8, n_layers=2).eval()
    assert (model.sites["layer.0.h"], model.sites["layer.0"]) == (4, 8)
    ids = torch.randint(0, 10, (3, 7))
    with torch.no_grad():
        assert torch.allclose(model.activations(ids, "layer.1.h"), model.activations(ids, "layer.1")[..., :4])
        mask = torch.zeros(3, 7, dtype=torch.bool)
        mask[:, positions] = True
        out = hooks.encode(model, ids, Intervention("layer.0.h", mask, lambda v, rows, cols: v * 0 + 1))
        # the reference: step the cells, setting layer 0's h (not c) to ones at the positions
        states, expected = [None, None], []
        for t in range(ids.shape[1]):
            x = model.embedding(ids[:, t])
            for layer in range(2):
                h, c = model._cell(layer, x, states[layer])
                if layer == 0 and t in positions:
                    h = torch.ones_like(h)
                states[layer], x = (h, c), h
            expected.append(x)
        assert torch.allclose(out, torch.stack(expected, 1), atol=1e-5)
