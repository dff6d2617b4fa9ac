"""The cheaper paths for real sizes: the low-rank rotation, runs that resume above the site from cached
target states (in memory or memory-mapped), gradient accumulation, and bfloat16 language models."""

from __future__ import annotations

import copy

import lightning as L
import pytest
import torch

from alignsearch.alignment import FixedLayout, Interchange, LowRankRotation, Rotation
from alignsearch.errors import ConfigError
from alignsearch.models import GRU, Intervention, hooks
from alignsearch.search.datamodule import PairDataModule
from alignsearch.search.module import AlignmentModule
from alignsearch.search.pairs import (
    BASE,
    PrefixCache,
    Track,
    add_base_states,
    pair_tensors,
    resumable,
    select,
)
from alignsearch.seeding import generator
from alignsearch.settings import AlignmentSettings
from alignsearch.tasks import NumericTask, causal_model_for
from alignsearch.tasks.counterfactual import make_pairs
from tests.helpers import compose_config

WIDTH, RANK = 24, 4
EXACT = {"rtol": 0.0, "atol": 1e-5}
ARCHITECTURES = ["gpt2", "llama"]
MODULE_PATHS = {"gpt2": "transformer.h.0", "llama": "model.layers.0"}
RESUME_SITES = ["embedding", "layer.0", "layer.1"]


# -- the low-rank rotation ------------------------------------------------------------------------------------
def test_low_rank_rotation_is_das_on_its_columns() -> None:
    """Orthonormal columns, a swap of the first k coordinates is ``h_t + (h_s - h_t) U_k U_k^T``, and it
    learns only width x rank numbers."""
    torch.manual_seed(0)
    f = LowRankRotation(WIDTH, RANK)
    u = f.basis
    assert u.shape == (WIDTH, RANK) and (f.code_width, f.n_aligned) == (RANK + WIDTH, RANK)
    torch.testing.assert_close(u.T @ u, torch.eye(RANK), **EXACT)
    assert sum(p.numel() for p in f.parameters()) == WIDTH * RANK
    interchange = Interchange([f], FixedLayout(["count"], [3], f.code_width, f.n_aligned))
    h_t, h_s = torch.randn(8, WIDTH), torch.randn(8, WIDTH)
    k = u[:, :3]
    torch.testing.assert_close(interchange(h_t, h_s, "count"), h_t + (h_s - h_t) @ k @ k.T, **EXACT)
    with pytest.raises(ConfigError, match=r"^rank=25 is not allowed: expected an integer in \[1, 24\]"):
        LowRankRotation(WIDTH, WIDTH + 1)


def test_low_rank_rotation_swaps_like_a_rotation_with_the_same_columns() -> None:
    """With its columns completed to a square orthogonal matrix, ``das`` makes the same swap."""
    torch.manual_seed(1)
    low = LowRankRotation(WIDTH, RANK)
    full = Rotation(WIDTH)
    rest = torch.linalg.qr(torch.cat([low.basis.detach(), torch.randn(WIDTH, WIDTH - RANK)], 1)).Q[:, RANK:]
    with torch.no_grad():
        full.rotate.weight = torch.cat([low.basis.detach(), rest], 1)
    h_t, h_s = torch.randn(8, WIDTH), torch.randn(8, WIDTH)
    swap_low = Interchange([low], FixedLayout(["count"], [RANK], low.code_width, low.n_aligned))
    swap_full = Interchange([full], FixedLayout(["count"], [RANK], WIDTH, WIDTH))
    torch.testing.assert_close(swap_low(h_t, h_s, "count"), swap_full(h_t, h_s, "count"), **EXACT)


# -- resuming above the site ----------------------------------------------------------------------------------
def toy_batch(lm, n: int = 6, side: str = "right"):
    from alignsearch.text import toy

    lm.tokenizer.padding_side = side
    try:
        return lm.tokenizer(toy.count_prompts(n, seed=5), padding=True, return_tensors="pt")
    finally:
        lm.tokenizer.padding_side = "right"


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_resumed_run_equals_the_full_run(toy_lms, arch) -> None:
    """From the site's activations, the blocks above give the full run's logits (float32, 1e-5), without
    an intervention, with one, and left-padded with the attention mask."""
    from alignsearch.models.lm import TextLM

    lm = TextLM(str(toy_lms[arch]))
    enc = toy_batch(lm)
    ids = enc.input_ids
    mask = torch.zeros_like(ids, dtype=torch.bool)
    mask[:, 1] = mask[:, 3] = True
    shift = torch.randn(lm.d_model, generator=torch.Generator().manual_seed(0))
    for site in RESUME_SITES:
        assert lm.supports_resume(site)
        h = lm.activations(ids, site)
        torch.testing.assert_close(lm.readout(lm.encode_from(site, h)), lm(ids), **EXACT)
        moved = Intervention(site, mask, lambda v, rows, cols: v + shift * (1 + cols[:, None]))
        full = lm(ids, moved)
        assert (full - lm(ids)).abs().max() > 0.1  # the intervention changes the run
        torch.testing.assert_close(lm.readout(lm.encode_from(site, h, moved)), full, **EXACT)
    left = toy_batch(lm, side="left")
    real = left.attention_mask.bool()
    assert not real.all()
    h = lm.activations(left.input_ids, "layer.0", attention_mask=left.attention_mask)
    resumed = lm.readout(lm.encode_from("layer.0", h, attention_mask=left.attention_mask))
    full = lm(left.input_ids, attention_mask=left.attention_mask)
    torch.testing.assert_close(resumed[real], full[real], **EXACT)


def test_what_cannot_resume_runs_the_whole_model(toy_lms) -> None:
    from alignsearch.models.hf import HFCausalLM
    from alignsearch.models.lm import TextLM

    lm = TextLM(str(toy_lms["gpt2"]))
    assert not lm.supports_resume(MODULE_PATHS["gpt2"]) and not resumable(lm, MODULE_PATHS["gpt2"])
    with pytest.raises(ConfigError, match=r"^site=transformer\.h\.0 is not allowed"):
        lm.encode_from(MODULE_PATHS["gpt2"], torch.zeros(1, 3, lm.d_model))
    assert not resumable(GRU(vocab_size=8, d_model=8), "layer.0")
    assert resumable(HFCausalLM(vocab_size=8, architecture="llama", d_model=16, n_heads=2), "layer.1")


def text_pairs_of(lm, n: int = 40):
    from alignsearch.search.text_data import TextPairSource
    from alignsearch.text import toy
    from alignsearch.text.pairs import text_pairs

    return TextPairSource(text_pairs(toy.count_pair_rows(n, seed=2), lm.tokenizer), "count")


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_cached_states_give_the_same_loss_and_gradients(toy_lms, arch, tmp_path) -> None:
    """A training batch with cached target states (in memory, or in a file) gives the loss and gradients
    of the full run, and the blocks up to the site do not run."""
    from alignsearch.models.lm import TextLM

    lm = TextLM(str(toy_lms[arch]))
    source = text_pairs_of(lm)
    track = Track(0, 0, "count")
    train, _, _ = source.build([track], [lm], ["layer.0"], seed=0)
    full = dict(train[track.name])
    for budget_mb in (64, 0):  # in memory, then in a memory-mapped file
        cache = PrefixCache(budget_mb, tmp_path / "cache")
        cached = {track.name: dict(full)}
        add_base_states([cached], [track], [lm], ["layer.0"], cache)
        states = cached[track.name][BASE]
        assert states.dtype == torch.float32 and states.shape == (*full["ids"][:, :-1].shape, lm.d_model)
        assert (cache.on_disk > 0) == (budget_mb == 0) and (tmp_path / "cache").exists() == (budget_mb == 0)
        torch.testing.assert_close(states, lm.activations(full["ids"][:, :-1], "layer.0"), **EXACT)
        rows = torch.arange(16)
        outputs = []
        for batch, count_runs in ((select(full, rows), False), (select(cached[track.name], rows), True)):
            torch.manual_seed(3)
            interchange = Interchange([LowRankRotation(lm.d_model, 8)], FixedLayout(["count"], [8], 72, 8))
            module = AlignmentModule([lm], ["layer.0"], interchange, [track])
            calls = []
            handle = lm.blocks[0].register_forward_hook(lambda *args, calls=calls: calls.append(1))
            out = module.run(track, batch)
            handle.remove()
            out.loss.backward()
            assert bool(calls) != count_runs  # the cached run starts above block 0
            outputs.append((out.loss.detach(), [p.grad.clone() for p in interchange.parameters()]))
        (loss_full, grads_full), (loss_cached, grads_cached) = outputs
        torch.testing.assert_close(loss_cached, loss_full, **EXACT)
        for g_cached, g_full in zip(grads_cached, grads_full, strict=True):
            torch.testing.assert_close(g_cached, g_full, rtol=1e-4, atol=1e-6)
        cache.close()
        assert not (tmp_path / "cache").exists()


def test_tracks_of_one_target_share_its_cached_states(toy_lms, tmp_path) -> None:
    from alignsearch.models.lm import TextLM

    lms = [TextLM(str(toy_lms["gpt2"])), TextLM(str(toy_lms["gpt2_terse"]))]
    source = text_pairs_of(lms[0])
    tracks = [Track(s, t, "count") for s in (0, 1) for t in (0, 1)]
    train, evals, _ = source.build(tracks, lms, ["layer.1", "layer.1"], seed=0)
    cache = PrefixCache(64, tmp_path)
    add_base_states([train, evals["val"]], tracks, lms, ["layer.1", "layer.1"], cache)
    assert train["0>1/count"][BASE] is train["1>1/count"][BASE]
    assert train["0>0/count"][BASE] is not train["0>1/count"][BASE]
    n, length = train["0>0/count"]["ids"].shape
    per_split = n * (length - 1) * lms[0].d_model * 4
    assert cache.in_memory > 2 * per_split and cache.on_disk == 0  # two models' train states, and val


# -- gradient accumulation ------------------------------------------------------------------------------------
class GradientsBeforeStep(L.Callback):
    """The alignment's gradients when the optimizer steps."""

    def on_before_optimizer_step(self, trainer, module, optimizer) -> None:
        self.grads = [p.grad.clone() for p in module.interchange.parameters()]


@pytest.fixture(scope="module")
def gru_pairs():
    """Count pairs of MultiObject (2 to 21 task tokens a pair) read by a random GRU, with latent targets."""
    task = NumericTask(objects="multi")
    torch.manual_seed(0)
    model = GRU(vocab_size=task.vocab.size, d_model=WIDTH).eval().requires_grad_(False)
    pairs = make_pairs(task, causal_model_for(task, "updown"), "count", 256, generator(0, "accumulate"))
    tensors = pair_tensors(pairs, model, "layer.0")
    g = torch.Generator().manual_seed(1)
    tensors |= {
        "cl": torch.randn(len(pairs), WIDTH, generator=g),
        "cl_found": torch.rand(len(pairs), generator=g) < 0.7,
    }
    assert len(set(tensors["task_mask"].sum(1).tolist())) > 1
    return model, tensors


def first_step(model, tensors, batch_size: int, accumulate: int, latent: bool):
    track = Track(0, 0, "count", latent=latent)
    torch.manual_seed(2)
    interchange = Interchange([Rotation(WIDTH)], FixedLayout(["count"], [4], WIDTH, WIDTH))
    module = AlignmentModule(
        [copy.deepcopy(model)], ["layer.0"], interchange, [track], eval_splits=(), accumulate=accumulate
    )
    seen = GradientsBeforeStep()
    trainer = L.Trainer(
        max_steps=1, limit_val_batches=0, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, callbacks=[seen],
    )  # fmt: skip
    data = PairDataModule({track.name: tensors}, {}, batch_size * accumulate, 64, seed=0)
    trainer.fit(module, datamodule=data)
    return seen.grads


@pytest.mark.parametrize("latent", [False, True])
def test_two_accumulated_batches_of_32_make_the_step_of_one_batch_of_64(gru_pairs, latent) -> None:
    """The same 64 rows, in one batch or in two micro-batches of 32 (whose task tokens differ in number):
    the same gradient when the optimizer steps, so the same first update (Adam's first step is a function
    of the gradient alone)."""
    model, tensors = gru_pairs
    one, two = first_step(model, tensors, 64, 1, latent), first_step(model, tensors, 32, 2, latent)
    for a, b in zip(two, one, strict=True):
        assert a.abs().max() > 0
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-7)


def test_settings_refuse_bad_values_in_one_line() -> None:
    node = compose_config("run_alignment", []).alignment
    assert AlignmentSettings.parse(node).accumulate == 1
    for key, value, allowed in [
        ("accumulate", 0, "a positive integer"),
        ("accumulate", 1.5, "a positive integer"),
        ("prefix_cache", "yes", "true or false"),
        ("prefix_cache_mb", -1, "a non-negative number"),
    ]:
        with pytest.raises(ConfigError) as err:
            AlignmentSettings.parse({**dict(node), key: value})
        assert str(err.value) == f"alignment.{key}={value} is not allowed: expected {allowed}"


# -- bfloat16 -------------------------------------------------------------------------------------------------
def test_a_bfloat16_lm_aligns_with_its_states_in_a_file(toy_lms, tmp_path, capsys) -> None:
    """A bfloat16 model aligns (the alignment in float32, the cached states in bfloat16, spilled to a file
    by a zero budget and removed at the end), as well as in float32: far above chance (about 0.1)."""
    from alignsearch import api
    from alignsearch.text import toy

    lm = api.language_model(toy_lms["llama"], dtype="bfloat16")
    track = Track(0, 0, "count")
    train, _, _ = text_pairs_of(lm).build([track], [lm], ["layer.1"], seed=0)
    add_base_states([train], [track], [lm], ["layer.1"], PrefixCache(64, tmp_path / "unused"))
    assert train[track.name][BASE].dtype == torch.bfloat16
    pairs = api.text_pairs(toy.count_pair_rows(600, seed=0), lm.tokenizer)
    result = api.align(
        lm, data=pairs, layer=1, n_units=8, max_steps=150, val_every=50, batch_size=64,
        prefix_cache_mb=0, out_dir=tmp_path / "run",
    )  # fmt: skip
    assert "in memory-mapped files" in capsys.readouterr().out
    assert not (tmp_path / "run" / "prefix_cache").exists()
    assert result.iia() >= 0.9 and result.records[0].iia_test >= 0.9
    assert {p.dtype for p in result.state.values()} == {torch.float32}
    assert hooks.site_activations(lm, pairs.splits["val"].ids[:2], "layer.1").dtype == torch.bfloat16
