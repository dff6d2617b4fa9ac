"""Sites beyond a model's named ones: HuggingFace task models' blocks and their parts, hooks at module
paths (the same as the built-in site; refused where no site can work), and the hint for a site or layer a
model lacks (each name once, the model's own)."""

from __future__ import annotations

import pytest
import torch

from alignsearch.errors import ConfigError
from alignsearch.models import GRU, Intervention, SequenceModel, Transformer, hooks
from alignsearch.models.hf import HFCausalLM
from tests.helpers import (
    compose_config,
)


@pytest.mark.parametrize("architecture", ["gpt2", "llama"])
def test_hf_sites_act_from_their_position_on(architecture) -> None:
    model = HFCausalLM(8, architecture=architecture, d_model=32, n_layers=2, n_heads=2).eval()
    parts = [f"layer.{i}{part}" for i in (0, 1) for part in ("", ".attn", ".mlp", ".head.0", ".head.1")]
    assert model.sites == {"embedding": 32} | {site: 16 if ".head." in site else 32 for site in parts}
    ids = torch.randint(0, 8, (3, 10), generator=torch.Generator().manual_seed(0))
    mask = torch.zeros(3, 10, dtype=torch.bool)
    mask[:, 4] = True
    base = model(ids)
    shift = torch.linspace(-1, 1, 32)  # not a constant: the blocks' LayerNorms would undo that
    for site in model.sites:
        torch.testing.assert_close(model(ids, Intervention(site, mask, lambda h, r, c: h)), base)
        changed = model(ids, Intervention(site, mask, lambda h, r, c: h + shift[: h.shape[-1]]))
        torch.testing.assert_close(changed[:, :4], base[:, :4])  # causal: earlier positions untouched
        assert not torch.allclose(changed[:, 4:], base[:, 4:])
    path = "transformer.h.1" if architecture == "gpt2" else "model.layers.1"
    torch.testing.assert_close(hooks.site_activations(model, ids, path), model.activations(ids, "layer.1"))


def test_module_path_site_is_the_built_in_site() -> None:
    """A hook on the Transformer's block 1 intervenes exactly like its own ``layer.1`` site."""
    model = Transformer(8, d_model=32).eval()
    ids = torch.randint(0, 8, (4, 12), generator=torch.Generator().manual_seed(1))
    mask = torch.rand(4, 12, generator=torch.Generator().manual_seed(2)) < 0.3
    noise = torch.randn(4, 12, 32, generator=torch.Generator().manual_seed(3))

    def fn(h, rows, cols):
        return h * 0.3 + noise[rows, cols]

    built_in = hooks.encode(model, ids, Intervention("layer.1", mask, fn))
    hooked = hooks.encode(model, ids, Intervention("blocks.1", mask, fn))
    torch.testing.assert_close(hooked, built_in)
    assert hooks.site_width(model, "blocks.1") == 32


def test_module_sites_that_cannot_work_are_refused() -> None:
    class Flat(torch.nn.Module):
        def forward(self, x):
            return x.reshape(-1, x.shape[-1])  # (batch * sequence, width): not a site

    class Custom(SequenceModel):
        d_model, n_layers = 8, 0

        def __init__(self) -> None:
            super().__init__()
            self.embed, self.flat, self.head = torch.nn.Embedding(8, 8), Flat(), torch.nn.Linear(8, 8)

        def encode(self, ids, intervention=None):
            x = self.embed(ids)
            self.flat(x)
            return x

        def readout(self, hidden):
            return self.head(hidden)

    model = Custom()
    with pytest.raises(ConfigError, match=r"a module whose output is \(batch, sequence, width\)"):
        hooks.site_width(model, "flat")
    with pytest.raises(ConfigError, match="close matches: embed"):
        hooks.site_width(model, "embedd")
    with pytest.raises(ConfigError, match="runs while the model reads its input"):
        hooks.site_width(model, "head")
    assert hooks.site_width(model, "embed") == 8


@pytest.mark.parametrize(
    ("model", "site", "hint"),
    [
        (GRU(8, d_model=16), "embeding", "close matches: embedding)"),
        (Transformer(8, d_model=16), "embeding", "close matches: embedding)"),
        (GRU(8, d_model=16), "zzz", "e.g. embedding, layer.0, layers, layers.0, head, head.0)"),
    ],
)
def test_unknown_site_hint_names_each_site_once(model, site, hint) -> None:
    with pytest.raises(ConfigError) as error:
        hooks.site_width(model, site)
    assert str(error.value).endswith(hint), str(error.value)


def test_bad_layer_of_a_model_without_an_embedding_site() -> None:
    """The hint lists the model's own sites, not an ``embedding`` it does not have."""
    from alignsearch.search.planning import _member
    from alignsearch.search.spec import RunModel
    from alignsearch.settings import AlignmentSettings, RunSettings

    class NoEmbeddingSite(GRU):
        @property
        def sites(self) -> dict[str, int]:
            return {"layer.0": self.d_model}

    run = RunSettings.parse({"seed": 0, "layer": 7, "site": None, "n_units": 4})
    a = AlignmentSettings.parse(compose_config("run_alignment", []).alignment)
    with pytest.raises(ConfigError) as error:
        _member(RunModel(NoEmbeddingSite(8, d_model=16), "custom", None, ""), a, run, 0, None)
    assert str(error.value) == "layer=7 is not allowed: expected a layer of the noembeddingsite: 0"
