"""Pretrained causal LMs as frozen models (``alignsearch.models.lm``) and the small trained ones of
``alignsearch.text.toy`` (built once per session by the ``toy_lms`` fixture)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

pytest.importorskip("transformers")

from alignsearch.errors import ConfigError  # noqa: E402
from alignsearch.models import Intervention, hooks  # noqa: E402
from alignsearch.models.base import is_layer_site  # noqa: E402
from alignsearch.models.lm import TextLM, folder_sha256  # noqa: E402
from alignsearch.text import toy  # noqa: E402

MODULE_PATHS = {
    "gpt2": ("transformer.h.1", "transformer.h.0.mlp"),
    "llama": ("model.layers.1", "model.layers.0.mlp"),
}
ARCHITECTURES = ["gpt2", "llama"]
HELD_OUT_SEED = 123
"""Seed of prompts no build drew (the builds draw from their own streams)."""
EXACT = {"rtol": 0.0, "atol": 1e-5}


def batch(lm: TextLM, texts: list[str], side: str = "right"):
    lm.tokenizer.padding_side = side
    try:
        return lm.tokenizer(texts, padding=True, return_tensors="pt")
    finally:
        lm.tokenizer.padding_side = "right"


def greedy_accuracy(lm: TextLM, n: int, style: str) -> float:
    examples = toy.count_examples(n, seed=HELD_OUT_SEED, style=style)
    enc = batch(lm, [prompt for prompt, _, _ in examples])
    with torch.no_grad():
        logits = lm(enc.input_ids)
    last = enc.attention_mask.sum(-1) - 1
    predicted = logits[torch.arange(n), last].argmax(-1)
    wanted = torch.tensor([lm.tokenizer.convert_tokens_to_ids(answer.strip()) for _, answer, _ in examples])
    return (predicted == wanted).float().mean().item()


# -- the toy models -------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("name", "style"), [("gpt2", "plain"), ("llama", "plain"), ("gpt2_terse", "terse")])
def test_toy_lms_answer_held_out_prompts(toy_lms, name, style) -> None:
    assert greedy_accuracy(TextLM(str(toy_lms[name])), 200, style) >= 0.95


def test_untrained_lm_has_the_shape_but_not_the_skill(toy_lms) -> None:
    trained, untrained = TextLM(str(toy_lms["gpt2"])), TextLM(str(toy_lms["gpt2_untrained"]))
    assert untrained.sites == trained.sites and untrained.vocab_size == trained.vocab_size
    assert greedy_accuracy(untrained, 200, "plain") < 0.5


def test_toy_builds_are_seeded(tmp_path) -> None:
    one, again = (toy.build_toy_lm(tmp_path / name, steps=2) for name in ("one", "again"))
    other = toy.build_toy_lm(tmp_path / "other", steps=2, seed=1)
    assert folder_sha256(one.folder) == folder_sha256(again.folder) != folder_sha256(other.folder)


def test_count_pairs_ask_for_the_source_count() -> None:
    rows = toy.count_pair_rows(50, seed=0)
    for row in rows:
        assert set(row) == {"base", "source", "target"}
        base_count, source_count = (len(row[key].split()) - 4 for key in ("base", "source"))  # ". how many ?"
        assert base_count != source_count
        assert row["target"] == f" {toy.NUMBERS[source_count - 1]}"
    assert toy.count_pair_rows(50, seed=0) == rows != toy.count_pair_rows(50, seed=1)
    assert all(s.endswith("=") for s in toy.count_prompts(5, seed=0, style="terse"))
    with pytest.raises(ConfigError, match=r"^style=loud is not allowed: expected one of plain, terse$"):
        toy.count_sentences(1, seed=0, style="loud")


def test_tokenizer_is_word_level_with_offsets(toy_lms) -> None:
    lm = TextLM(str(toy_lms["gpt2"]))
    enc = lm.tokenizer("cup pear . how many ? two", return_offsets_mapping=True)
    assert lm.tokenizer.convert_ids_to_tokens(enc.input_ids) == [
        "cup",
        "pear",
        ".",
        "how",
        "many",
        "?",
        "two",
    ]
    assert enc.offset_mapping[:3] == [(0, 3), (4, 8), (9, 10)]
    assert lm.tokenizer("cup banana").input_ids[-1] == lm.tokenizer.unk_token_id


# -- the model ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_sites_widths_and_settings(toy_lms, arch) -> None:
    lm = TextLM(str(toy_lms[arch]))
    assert {site: width for site, width in lm.sites.items() if is_layer_site(site)} == {
        "embedding": 64,
        "layer.0": 64,
        "layer.1": 64,
    }  # and the parts of each layer: tests/integration/test_lm_sites.py
    assert (lm.d_model, lm.n_layers, lm.vocab_size, lm.pad_id) == (64, 2, len(toy.WORDS), 0)
    assert lm.name == f"lm_{arch}" and lm.settings() == {
        "path": str(toy_lms[arch].resolve()),
        "dtype": "float32",
    }
    enc = batch(lm, toy.count_prompts(3, seed=0))
    assert lm(enc.input_ids).shape == (*enc.input_ids.shape, len(toy.WORDS))
    for site in [*filter(is_layer_site, lm.sites), *MODULE_PATHS[arch]]:
        assert lm.activations(enc.input_ids, site).shape == (*enc.input_ids.shape, 64)
        assert hooks.site_width(lm, site) == 64
    torch.testing.assert_close(
        hooks.site_activations(lm, enc.input_ids, MODULE_PATHS[arch][0]),
        lm.activations(enc.input_ids, "layer.1"),
    )


def test_frozen_and_always_in_eval_mode(toy_lms) -> None:
    lm = TextLM(str(toy_lms["gpt2"]))
    assert not any(p.requires_grad for p in lm.parameters())
    assert not lm.train().training and not lm.lm.training
    torch.nn.Sequential(lm).train()  # a parent put in training mode (a LightningModule) leaves it as it is
    assert not lm.training and not any(m.training for m in lm.modules())
    enc = batch(lm, toy.count_prompts(2, seed=0))
    shift = torch.zeros(64, requires_grad=True)  # what an alignment would learn: it gets gradients
    everywhere = torch.ones_like(enc.input_ids, dtype=torch.bool)
    lm(enc.input_ids, Intervention("layer.0", everywhere, lambda h, r, c: h + shift)).sum().backward()
    assert shift.grad is not None and shift.grad.abs().sum() > 0


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_left_padding_reads_like_right_padding(toy_lms, arch) -> None:
    """With the attention mask (and the positions it implies), a left-padded batch gives the activations of
    the right-padded one at every real token, at the named sites, at module paths and in the logits."""
    lm = TextLM(str(toy_lms[arch]))
    texts = toy.count_prompts(6, seed=3)
    right, left = batch(lm, texts), batch(lm, texts, side="left")
    lengths = right.attention_mask.sum(-1).tolist()
    assert len(set(lengths)) > 1  # some rows padded
    for site in ["layer.0", "layer.1", *MODULE_PATHS[arch]]:
        plain = lm.activations(right.input_ids, site)  # no mask: later padding cannot change earlier tokens
        masked = lm.activations(right.input_ids, site, attention_mask=right.attention_mask)
        lefted = lm.activations(left.input_ids, site, attention_mask=left.attention_mask)
        for row, n in enumerate(lengths):
            torch.testing.assert_close(lefted[row, -n:], plain[row, :n], **EXACT)
            torch.testing.assert_close(masked[row, :n], plain[row, :n], **EXACT)
    logits = lm(left.input_ids, attention_mask=left.attention_mask)
    plain = lm(right.input_ids)
    for row, n in enumerate(lengths):
        torch.testing.assert_close(logits[row, -n:], plain[row, :n], **EXACT)


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_interchange_gives_the_source_run(toy_lms, arch) -> None:
    """Writing a source run's activations at every position gives the source's logits; at the last position
    after the last block, the base answers with the source's count."""
    lm = TextLM(str(toy_lms[arch]))
    base = batch(lm, ["apple pear . how many ?", "cup . how many ?"])
    source = batch(lm, ["egg egg . how many ?", "pen . how many ?"])  # the same lengths
    plain_base, plain_source = lm(base.input_ids), lm(source.input_ids)
    everywhere = torch.ones_like(base.input_ids, dtype=torch.bool)
    for site in [*filter(is_layer_site, lm.sites), *MODULE_PATHS[arch][:1]]:
        acts = lm.activations(source.input_ids, site)
        swap = Intervention(site, everywhere, lambda h, rows, cols, acts=acts: acts[rows, cols])
        torch.testing.assert_close(
            hooks.encode(lm, base.input_ids, swap), lm.encode(source.input_ids), **EXACT
        )
        torch.testing.assert_close(lm(base.input_ids, swap), plain_source, **EXACT)
    source = batch(lm, ["egg egg egg egg . how many ?", "pen pen pen . how many ?"])
    plain_source = lm(source.input_ids)
    last = f"layer.{lm.n_layers - 1}"
    acts = lm.activations(source.input_ids, last)
    lengths = base.attention_mask.sum(-1) - 1, source.attention_mask.sum(-1) - 1
    at_end = torch.zeros_like(base.input_ids, dtype=torch.bool)
    at_end[torch.arange(2), lengths[0]] = True
    out = lm(base.input_ids, Intervention(last, at_end, lambda h, rows, cols: acts[rows, lengths[1][rows]]))
    rows = torch.arange(2)
    torch.testing.assert_close(out[rows, lengths[0]], plain_source[rows, lengths[1]], **EXACT)
    answers = lm.tokenizer.convert_ids_to_tokens(out[rows, lengths[0]].argmax(-1))
    assert answers == ["four", "three"]
    assert lm.tokenizer.convert_ids_to_tokens(plain_base[rows, lengths[0]].argmax(-1)) == ["two", "one"]


def test_bfloat16_loads_and_runs(toy_lms) -> None:
    lm = TextLM(str(toy_lms["llama"]), dtype="bfloat16")
    assert lm.dtype == torch.bfloat16 and {p.dtype for p in lm.parameters()} == {torch.bfloat16}
    assert lm.settings()["dtype"] == "bfloat16"
    enc = batch(lm, toy.count_prompts(4, seed=0))
    seen = []
    mask = torch.ones_like(enc.input_ids, dtype=torch.bool)
    lm(enc.input_ids, Intervention("layer.0", mask, lambda h, r, c: seen.append(h.dtype) or h))
    assert seen == [torch.bfloat16]
    assert lm.activations(enc.input_ids, "layer.1").dtype == torch.bfloat16
    assert greedy_accuracy(lm, 100, "plain") >= 0.95


def test_no_pad_token_pads_with_eos_and_leaves_the_files(toy_lms, tmp_path) -> None:
    folder = shutil.copytree(toy_lms["gpt2"], tmp_path / "nopad")
    config = json.loads((folder / "tokenizer_config.json").read_text())
    del config["pad_token"]
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    lm = TextLM(str(folder))
    assert lm.tokenizer.pad_token == "[EOS]" and lm.pad_id == lm.tokenizer.eos_token_id == 2
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before


def test_bad_input_is_one_line(toy_lms, tmp_path) -> None:
    cases = [
        ({"path": None}, r"^model\.path=None is not allowed: expected a folder written by save_pretrained"),
        (
            {"path": str(tmp_path / "nowhere")},
            r"^model\.path=.*nowhere is not allowed: expected an existing folder",
        ),
        ({"path": str(tmp_path)}, r"^model\.path=.* is not allowed: .*it has no config\.json"),
        (
            {"path": str(toy_lms["gpt2"]), "dtype": "float64"},
            r"^model\.dtype=float64 .* float32, bfloat16, float16$",
        ),
    ]
    no_tokenizer = shutil.copytree(toy_lms["gpt2"], tmp_path / "no_tokenizer")
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (no_tokenizer / name).unlink()
    cases.append(({"path": str(no_tokenizer)}, r"^model\.path=.* expected a folder with a saved tokenizer"))
    for kwargs, pattern in cases:
        with pytest.raises(ConfigError, match=pattern) as err:
            TextLM(**kwargs)
        assert "\n" not in str(err.value)


def test_weights_sha256_names_the_weights_not_the_place(toy_lms, tmp_path) -> None:
    original = TextLM(str(toy_lms["gpt2"])).weights_sha256()
    copy = shutil.copytree(toy_lms["gpt2"], tmp_path / "elsewhere" / "gpt2")
    assert TextLM(str(copy)).weights_sha256() == original == folder_sha256(toy_lms["gpt2"])
    (copy / "README.md").write_text("not part of the model")
    assert folder_sha256(copy) == original
    changed = TextLM(str(copy))
    with torch.no_grad():
        changed.lm.get_input_embeddings().weight[0, 0] += 1
    changed.lm.save_pretrained(copy)
    assert folder_sha256(copy) != original
    retokenized = shutil.copytree(toy_lms["gpt2"], tmp_path / "retokenized")
    config = json.loads((retokenized / "tokenizer_config.json").read_text())
    (retokenized / "tokenizer_config.json").write_text(json.dumps({**config, "model_max_length": 64}))
    assert folder_sha256(retokenized) != original


def test_two_loads_of_a_folder_are_one_model(toy_lms) -> None:
    """Two loads of one folder are the same model: same activations, same hash (what a run records)."""
    one, two = TextLM(str(toy_lms["llama"])), TextLM(str(Path(toy_lms["llama"]) / ".." / "llama"))
    enc = batch(one, toy.count_prompts(3, seed=0))
    torch.testing.assert_close(
        one.activations(enc.input_ids, "layer.1"), two.activations(enc.input_ids, "layer.1")
    )
    assert one.settings() == two.settings() and one.weights_sha256() == two.weights_sha256()


def test_the_untrained_control_of_a_random_lm_is_another_draw(toy_lms) -> None:
    """The benchmark's random GPT-2 (built under ``torch.manual_seed(0)``) was its own ``untrained``
    control: re-initialised under the run's seed 0, weight for weight the same model, the same IIA, so
    every cell's selectivity came out 0.000. The copy is drawn from a seed derived from the run's."""
    import torch

    from alignsearch.search.text_data import untrained_copy

    random = TextLM(str(toy_lms["gpt2_untrained"]))  # toy.build_untrained_lm: torch.manual_seed(0)
    before = {k: v.clone() for k, v in random.lm.state_dict().items()}
    copy, again, other = untrained_copy(random, 0), untrained_copy(random, 0), untrained_copy(random, 1)
    weights = [k for k, v in before.items() if v.dim() == 2]  # the weight matrices (embeddings, blocks)
    assert weights and all(not torch.equal(copy.lm.state_dict()[k], before[k]) for k in weights)
    assert all(torch.equal(copy.lm.state_dict()[k], again.lm.state_dict()[k]) for k in before)  # seeded
    assert any(not torch.equal(copy.lm.state_dict()[k], other.lm.state_dict()[k]) for k in weights)
    assert all(torch.equal(random.lm.state_dict()[k], before[k]) for k in before)  # the model is untouched
