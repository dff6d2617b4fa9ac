"""The sites inside a language model's blocks: ``layer.<i>.attn``, ``layer.<i>.mlp`` and
``layer.<i>.head.<j>`` (their widths, what they read, what an intervention there changes), alignments at
them (DAS, and boundless DAS reporting the size it learned), the one-line error for a site the model lacks,
and the listing (``api.sites``; ``python -m alignsearch.sites`` run for real:
``commands/test_sites_command.py``)."""

from __future__ import annotations

import json

import pytest
import torch

pytest.importorskip("transformers")

from alignsearch import api  # noqa: E402
from alignsearch.errors import ConfigError  # noqa: E402
from alignsearch.models import GRU, Intervention, hooks  # noqa: E402
from alignsearch.models.base import is_layer_site  # noqa: E402
from alignsearch.models.lm import TextLM  # noqa: E402
from alignsearch.text import toy  # noqa: E402
from tests.helpers import refusal, run_here  # noqa: E402

ARCHITECTURES = ["gpt2", "llama"]
PARTS = {  # per family: the attention, the MLP and the attention output projection of block i
    "gpt2": ("transformer.h.{i}.attn", "transformer.h.{i}.mlp", "transformer.h.{i}.attn.c_proj"),
    "llama": ("model.layers.{i}.self_attn", "model.layers.{i}.mlp", "model.layers.{i}.self_attn.o_proj"),
}
D_MODEL, N_HEADS, HEAD_DIM = 64, toy.N_HEADS, 64 // toy.N_HEADS
EXACT = {"rtol": 0.0, "atol": 1e-6}
TINY_RUN = {"max_steps": 4, "val_every": 2, "batch_size": 16, "eval_batch_size": 64, "progress": False}


def expected_sites(n_layers: int, d_model: int, n_heads: int, head_dim: int) -> dict[str, int]:
    sites = {"embedding": d_model}
    for i in range(n_layers):
        sites |= {f"layer.{i}": d_model, f"layer.{i}.attn": d_model, f"layer.{i}.mlp": d_model}
        sites |= {f"layer.{i}.head.{j}": head_dim for j in range(n_heads)}
    return sites


def prompts(lm: TextLM, n: int = 5, seed: int = 4):
    return lm.tokenizer(toy.count_prompts(n, seed=seed), padding=True, return_tensors="pt")


def manual(module: torch.nn.Module, pre: bool, change=None) -> tuple[list, object]:
    """A hook of the test's own on ``module``: records its input (``pre``) or its output's first tensor,
    and replaces the input with ``change(x)`` if given."""
    seen: list = []
    if pre:

        def hook(mod, args):
            seen.append(args[0].detach().clone())
            return None if change is None else (change(args[0]), *args[1:])

        return seen, module.register_forward_pre_hook(hook)

    def out_hook(mod, args, output):
        seen.append((output[0] if isinstance(output, tuple) else output).detach().clone())

    return seen, module.register_forward_hook(out_hook)


def in_memory(architecture: str, **sizes):
    """A random causal LM of ``architecture`` built from a config (no folder), with the toy tokenizer."""
    import transformers

    tokenizer = toy.build_tokenizer()
    config = transformers.AutoConfig.for_model(architecture, vocab_size=len(tokenizer), **sizes)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = transformers.AutoModelForCausalLM.from_config(config)
    return model, tokenizer


# -- widths ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_every_site_has_its_width_known_before_any_run(toy_lms, arch) -> None:
    """Heads are head-size wide, the attention and MLP outputs model-wide; the folder's config alone gives
    the same sites (``api.sites`` of the folder), and each site's activations have its width."""
    lm = TextLM(str(toy_lms[arch]))
    want = expected_sites(2, D_MODEL, N_HEADS, HEAD_DIM)
    assert lm.sites == want and list(lm.sites) == list(want)  # in order: embedding, then layer by layer
    assert (
        api.sites(lm) == want and api.sites(toy_lms[arch]) == want and api.sites(str(toy_lms[arch])) == want
    )
    assert (lm.site_layout.n_heads, lm.site_layout.head_dim) == (N_HEADS, HEAD_DIM)
    enc = prompts(lm)
    for site, width in want.items():
        assert lm.activations(enc.input_ids, site).shape == (*enc.input_ids.shape, width), site
        assert hooks.site_width(lm, site) == width
    assert [s for s in want if is_layer_site(s)] == ["embedding", "layer.0", "layer.1"]


@pytest.mark.parametrize(
    ("architecture", "sizes", "heads", "head_dim"),
    [
        # Llama with its own head size (48 = 2 x 24 columns into o_proj, not 32 / 2) and grouped keys
        (
            "llama",
            {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 1,
             "head_dim": 24, "intermediate_size": 64},
            2, 24,
        ),
        # a family found by its module paths (Qwen2 is built like Llama) and one of its own (GPT-NeoX)
        (
            "qwen2",
            {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 4, "num_key_value_heads": 2,
             "intermediate_size": 64},
            4, 8,
        ),
        (
            "gpt_neox",
            {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 4, "intermediate_size": 64},
            4, 8,
        ),
    ],
)  # fmt: skip
def test_head_width_follows_the_config_and_the_projection(architecture, sizes, heads, head_dim) -> None:
    model, tokenizer = in_memory(architecture, **sizes)
    lm = TextLM.from_model(model, tokenizer)
    assert lm.sites == expected_sites(1, 32, heads, head_dim) == api.sites(model)
    out_proj = lm.blocks[0].get_submodule(lm.site_layout.components.out_proj)
    seen, handle = manual(out_proj, pre=True)
    enc = prompts(lm)
    try:
        for j in range(heads):
            head = lm.activations(enc.input_ids, f"layer.0.head.{j}")
            torch.testing.assert_close(head, seen[-1][..., j * head_dim : (j + 1) * head_dim], **EXACT)
    finally:
        handle.remove()
    assert not lm.supports_resume("layer.0.head.0") and not lm.supports_resume("layer.0.mlp")


def test_a_model_without_known_parts_keeps_its_layer_sites() -> None:
    """OPT's blocks have no ``mlp`` module: no component sites, and the error names only what it has."""
    model, tokenizer = in_memory(
        "opt", hidden_size=32, num_hidden_layers=2, num_attention_heads=2, ffn_dim=64, word_embed_proj_dim=32
    )
    lm = TextLM.from_model(model, tokenizer)
    assert lm.sites == {"embedding": 32, "layer.0": 32, "layer.1": 32}
    with pytest.raises(ConfigError) as caught:
        hooks.site_width(lm, "layer.0.mlp")
    assert str(caught.value) == (
        "site=layer.0.mlp is not allowed: expected a site of the lm_opt: embedding, layer.<i> (i in 0..1), "
        "or a module path; python -m alignsearch.sites lists them"
    )


# -- what the sites read and change ---------------------------------------------------------------------------
@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_sites_read_the_modules_they_name(toy_lms, arch) -> None:
    """``layer.i.attn`` is the attention's output, ``layer.i.mlp`` the MLP's, and ``layer.i.head.j`` head j's
    columns of the output projection's input, as hooks of the test's own see them."""
    lm = TextLM(str(toy_lms[arch]))
    enc = prompts(lm)
    for i in range(lm.n_layers):
        attn, mlp, out_proj = (lm.lm.get_submodule(path.format(i=i)) for path in PARTS[arch])
        for site, module, pre in ((f"layer.{i}.attn", attn, False), (f"layer.{i}.mlp", mlp, False)):
            seen, handle = manual(module, pre)
            try:
                torch.testing.assert_close(lm.activations(enc.input_ids, site), seen[-1], **EXACT)
            finally:
                handle.remove()
        seen, handle = manual(out_proj, pre=True)
        try:
            for j in range(N_HEADS):
                head = lm.activations(enc.input_ids, f"layer.{i}.head.{j}")
                columns = seen[-1][..., j * HEAD_DIM : (j + 1) * HEAD_DIM]
                assert head.shape[-1] == HEAD_DIM
                torch.testing.assert_close(head, columns, **EXACT)
        finally:
            handle.remove()


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_zeroing_a_head_is_zeroing_its_columns(toy_lms, arch) -> None:
    """The identity at a head changes nothing; zeros at head 1 of block 0 at some positions give what a hook
    zeroing those columns (and only those) of the projection's input gives, and change the output from
    there on only."""
    lm = TextLM(str(toy_lms[arch]))
    ids = prompts(lm).input_ids
    plain = lm(ids)
    everywhere = torch.ones_like(ids, dtype=torch.bool)
    site = "layer.0.head.1"
    torch.testing.assert_close(lm(ids, Intervention(site, everywhere, lambda h, r, c: h)), plain, **EXACT)
    mask = torch.zeros_like(ids, dtype=torch.bool)
    mask[0, 2] = mask[1, 4] = mask[3, 1] = True
    zeroed = lm(ids, Intervention(site, mask, lambda h, r, c: torch.zeros_like(h)))

    def zero_columns(x):
        x = x.clone()
        x[..., HEAD_DIM : 2 * HEAD_DIM][mask] = 0
        return x

    out_proj = lm.lm.get_submodule(PARTS[arch][2].format(i=0))
    _, handle = manual(out_proj, pre=True, change=zero_columns)
    try:
        by_hand = lm(ids)
    finally:
        handle.remove()
    torch.testing.assert_close(zeroed, by_hand, **EXACT)
    assert (zeroed - plain).abs().amax(-1)[mask].min() > 1e-4  # each zeroed position changes
    first = mask.long().argmax(-1)  # positions before a row's first intervention are untouched
    before = torch.arange(ids.shape[1])[None, :] < torch.where(mask.any(-1), first, ids.shape[1])[:, None]
    torch.testing.assert_close(zeroed[before], plain[before], **EXACT)
    torch.testing.assert_close(zeroed[2], plain[2], **EXACT)  # a row without an intervention


# -- alignments -----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def count_rows() -> list[dict]:
    return toy.count_pair_rows(160, seed=0)


def test_das_at_component_and_head_sites(toy_lms, count_rows) -> None:
    """A few DAS steps at the attention, the MLP and a head of block 0: the run aligns that site, at its
    width, without the prefix cache (the blocks above a part of a block cannot start from it alone)."""
    lm = api.language_model(toy_lms["gpt2"])
    pairs = api.text_pairs(count_rows, lm.tokenizer)
    for site, width in (("layer.0.attn", D_MODEL), ("layer.0.mlp", D_MODEL), ("layer.0.head.1", HEAD_DIM)):
        result = api.align(lm, data=pairs, site=site, n_units=4, **TINY_RUN)
        (record,) = result.records
        assert result.results.config["site"] == site and result.config["site"] == site
        assert (result.plan.members[0].site, result.plan.members[0].width) == (site, width)
        again = api.iia(result, [lm], pairs)  # the saved alignment on the run's validation split
        assert record.variable == "count" and again["iia"] == record.iia
        assert again["token_iia"] == record.token_iia
        assert not lm.supports_resume(site)
    assert lm.supports_resume("layer.0")


def test_a_site_the_model_lacks_is_one_line(toy_lms, count_rows) -> None:
    lm = api.language_model(toy_lms["gpt2"])
    allowed = (
        "expected a site of the lm_gpt2: embedding, layer.<i>, layer.<i>.attn, layer.<i>.mlp, "
        "layer.<i>.head.<j> (i in 0..1, j in 0..1), or a module path; python -m alignsearch.sites lists them"
    )
    for site in ("layer.9.head.3", "layer.0.head.2", "layer.2.mlp", "layer.0.attention"):
        with pytest.raises(ConfigError) as caught:
            hooks.site_width(lm, site)
        assert str(caught.value) == f"site={site} is not allowed: {allowed}"
        with pytest.raises(ConfigError) as caught:
            lm.activations(prompts(lm).input_ids, site)
        assert str(caught.value) == f"site={site} is not allowed: {allowed}"
    pairs = api.text_pairs(count_rows, lm.tokenizer)
    with pytest.raises(ConfigError) as caught:
        api.align(lm, data=pairs, site="layer.9.head.3", n_units=4, **TINY_RUN)
    assert str(caught.value) == f"site='layer.9.head.3' is not allowed: {allowed}"
    assert "\n" not in str(caught.value)
    with pytest.raises(ConfigError) as caught:  # layer= names whole layers only
        api.align(lm, data=pairs, layer=5, n_units=4, **TINY_RUN)
    assert str(caught.value) == "layer=5 is not allowed: expected a layer of the lm_gpt2: embedding, 0, 1"


def test_unit_sizes_are_checked_against_the_sites_width_before_loading(
    toy_lms, count_rows, tmp_path, in_command_env
) -> None:
    """Before the model is loaded, ``n_units`` is checked against the site's width as ``config.json``
    states it: a head's is the head size; a module path's is not known until the model is loaded."""
    from alignsearch.models.hf import folder_width

    pairs_file = tmp_path / "count.jsonl"
    pairs_file.write_text("".join(json.dumps(row) + "\n" for row in count_rows))
    line = refusal(
        "run_alignment.py", "model=lm", f"model.path={toy_lms['llama']}", "data=pairs",
        f"data.path={pairs_file}", "site=layer.1.head.1", "n_units=40",
    )  # fmt: skip
    assert line.startswith(f"error: n_units=40 is not allowed: expected an integer in [1, {HEAD_DIM}]"), line
    folder = toy_lms["gpt2"]
    assert [folder_width(folder, site) for site in (None, "layer.1", "layer.0.mlp", "layer.0.head.1")] == [
        D_MODEL, D_MODEL, D_MODEL, HEAD_DIM,
    ]  # fmt: skip
    assert folder_width(folder, "transformer.h.0.mlp.c_fc") is None  # 4 x 64 wide: known once loaded


def test_boundless_on_a_head_site_reports_the_size_it_learned(toy_lms, count_rows, tmp_path) -> None:
    """``alignment=boundless`` on a language model's head, through the command line: ``results.json`` holds
    the learned size (``learned_units``), and the run prints it."""
    pairs_file = tmp_path / "count.jsonl"
    pairs_file.write_text("".join(json.dumps(row) + "\n" for row in count_rows))
    result = run_here(
        "run_alignment.py", "model=lm", f"model.path={toy_lms['gpt2']}", "data=pairs",
        f"data.path={pairs_file}", "alignment=boundless", "site=layer.1.head.0", "n_units=8",
        "alignment.max_steps=6", "alignment.val_every=3", "alignment.batch_size=16",
        "alignment.eval_batch_size=64", "hardware.progress_bar=false", f"paths.output_dir={tmp_path / 'run'}",
        zoo=tmp_path / "zoo", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["config"]["site"] == "layer.1.head.0" and results["config"]["layout"] == "BoundlessLayout"
    (size,) = results["learned_units"].values()
    assert list(results["learned_units"]) == ["count"] and 0 < size <= HEAD_DIM
    assert f"learned sizes at layer.1.head.0 (width {HEAD_DIM}): count {size:.1f}" in result.stdout


def test_das_results_show_no_learned_sizes(toy_lms, count_rows) -> None:
    """Fixed sizes are not reported as learned (only a layout that learns them is)."""
    from alignsearch.cli.run_alignment import learned_sizes_line

    lm = api.language_model(toy_lms["gpt2"])
    result = api.align(lm, data=api.text_pairs(count_rows, lm.tokenizer), site="layer.0.mlp", **TINY_RUN)
    assert learned_sizes_line(result) is None


# -- listing --------------------------------------------------------------------------------------------------
def test_api_sites_takes_every_kind_of_model(toy_lms, tmp_path) -> None:
    gru = GRU(8, d_model=16)
    assert api.sites(gru) == {"embedding": 16, "layer.0": 16}
    assert api.sites(torch.nn.Linear(2, 2)) == {}  # a plain module: its sites are module paths
    lm = api.language_model(toy_lms["llama"])
    assert api.sites(lm.lm) == api.sites(lm) == lm.sites  # the HuggingFace model in memory
    with pytest.raises(ConfigError) as caught:
        api.sites(tmp_path)
    assert str(caught.value).startswith(f"model='{tmp_path}' is not allowed: expected a folder written by")
    with pytest.raises(ConfigError, match=r"^model=42 is not allowed"):
        api.sites(42)


def test_the_command_lists_a_task_models_sites(tmp_path) -> None:
    from alignsearch.sites import main

    assert main(["model=gru", "model.d_model=32"]) == 0
    assert main(["model=hf", "--json"]) == 0
    assert main(["model=gru", "some_folder"]) == 2
