"""What users extend is registered by name, from outside the package: a control (a class registered with
``alignsearch.controls.register_control``) runs through ``api.align`` and reaches the records and the report;
a HuggingFace family (one ``alignsearch.models.hf.register_family`` record) gives a model of a type the
package does not list its component and head sites. Unknown names are one line listing the registered
ones."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import torch

from alignsearch import api
from alignsearch.controls import CONTROLS, Control, register_control
from alignsearch.errors import ConfigError
from alignsearch.settings import AlignmentSettings, ScanSettings
from tests.helpers import SMALL_GRU, TINY_ALIGNMENT, TINY_TRAINING, compose_config


# -- a control of the test's own --------------------------------------------------------------------------------
class Zero(Control):
    """The run's trained alignment applied with an all-zero mask: nothing is swapped, so its IIA is that
    of the target model left alone on the counterfactual pairs, and its interventions move nothing."""

    name = "zero"
    note = "the trained alignment with an all-zero mask (nothing swapped)"

    def run(self, run):
        alignment = run.trained_alignment()
        alignment.layout.masks.zero_()
        return run.evaluate(alignment)


@pytest.fixture
def zero_control() -> Iterator[type[Control]]:
    """``Zero`` registered for one test (the registry as it was afterwards)."""
    before = dict(CONTROLS)
    register_control(Zero)
    try:
        yield Zero
    finally:
        CONTROLS.clear()
        CONTROLS.update(before)


def unintervened_iia(plan, model) -> float:
    """The validation pairs' IIA of the target model without any intervention, computed here."""
    from alignsearch.search.fit import build_pairs

    _, evals, _ = build_pairs(plan, [model], seed=0)
    (batch,) = evals["val"].values()
    ids = batch["ids"]
    task = batch["task_mask"][:, 1:]
    targets = batch.get("labels", ids)[:, 1:]
    with torch.no_grad():
        preds = model(ids[:, :-1]).argmax(-1)
    return ((preds == targets) | ~task).all(1).float().mean().item()


def test_a_control_registered_outside_the_package_runs_and_is_reported(
    zero_control, trained_zoo, tmp_path
) -> None:
    from alignsearch.report import report

    gru = api.model(zoo_dir=trained_zoo, overrides=SMALL_GRU)
    result = api.align(
        gru, n_units=8, controls=["random_subspace", "zero"], out_dir=tmp_path / "run",
        overrides=TINY_ALIGNMENT, max_steps=20, val_every=10, progress=False,
    )  # fmt: skip
    (record,) = result.records
    assert list(record.controls) == ["random_subspace", "zero"]
    # nothing swapped: the model's own answers (computed here without the alignment), and the natural
    # states, as far off the other natural half as one half is (the divergence's floor)
    assert record.controls["zero"] == pytest.approx(unintervened_iia(result.plan, gru.model), abs=1e-9)
    assert record.control_divergence["zero"] == pytest.approx(record.divergence_floor, abs=1e-4)
    (saved,) = json.loads((tmp_path / "run" / "results.json").read_text())["records"]
    assert saved["iia_control_zero"] == record.controls["zero"]
    assert saved["divergence_control_zero"] == record.control_divergence["zero"]
    markdown, (row,) = report(tmp_path / "run")
    assert "control: zero" in markdown and "control divergence: zero" in markdown
    assert f"zero = {Zero.note}" in markdown  # its note, from the registry
    assert row["iia_control_zero_mean"] == pytest.approx(record.controls["zero"])


def test_a_report_keeps_the_columns_of_a_control_not_registered_where_it_runs(tmp_path) -> None:
    from alignsearch.report import report

    record = {"source": "a", "target": "a", "direction": "0>0", "variable": "count", "iia": 0.9,
              "iia_control_elsewhere": 0.25, "divergence_control_elsewhere": 0.5}  # fmt: skip
    (tmp_path / "results.json").write_text(
        json.dumps({"schema": 4, "config": {"seed": 0}, "records": [record]})
    )
    markdown, (row,) = report(tmp_path)
    assert "control: elsewhere" in markdown and row["iia_control_elsewhere_mean"] == 0.25


def test_unknown_controls_are_one_line_naming_the_registered_ones(zero_control, tiny_zoo) -> None:
    names = "untrained, random_subspace, shuffled, zero"
    cfg = compose_config("run_alignment", ["alignment.controls=[zero,nope]"])
    with pytest.raises(ConfigError) as caught:
        AlignmentSettings.parse(cfg.alignment)
    assert str(caught.value) == (
        f"alignment.controls=[zero,nope] is not allowed: expected a list of distinct controls from {names} (or [])"
    )
    assert AlignmentSettings.parse(compose_config("run_alignment", ["alignment.controls=[zero]"]).alignment)
    cfg = compose_config("scan", ["scan.controls=[nope]"])
    with pytest.raises(
        ConfigError, match=rf"^scan\.controls=\[nope\] is not allowed: .* from {names} \(or \[\]\)$"
    ):
        ScanSettings.parse(cfg.scan)
    with pytest.raises(ConfigError) as caught:
        api.align(api.model(zoo_dir=tiny_zoo, overrides=TINY_TRAINING), controls=["nope"])
    assert "\n" not in str(caught.value) and names in str(caught.value)


def test_a_control_name_is_taken_once_and_an_unregistered_one_runs_nothing() -> None:
    from alignsearch.search.controls import run_controls

    class Other(Control):
        name = "shuffled"
        note = "another control under a taken name"

    with pytest.raises(ValueError, match="taken by alignsearch.controls.Shuffled"):
        register_control(Other)
    with pytest.raises(ConfigError, match="controls from untrained, random_subspace, shuffled"):
        run_controls(None, [], ("gone",), None, seed=0, hardware=None)


# -- a HuggingFace family of the test's own ----------------------------------------------------------------------
@pytest.fixture
def gpt_neo_family() -> Iterator[None]:
    """GPT-Neo registered for one test: its blocks are at GPT-2's path, its parts elsewhere
    (``attn.attention.out_proj``) and its sizes under its own config keys."""
    from alignsearch.models.hf import FAMILIES, Components, Family, register_family

    before = dict(FAMILIES)
    register_family(
        Family(
            "gpt_neo",
            blocks="transformer.h",
            components=Components("attn", "mlp", "attn.attention.out_proj"),
            n_layers="num_layers",
            n_heads="num_heads",
            head_dim=None,
        )
    )
    try:
        yield
    finally:
        FAMILIES.clear()
        FAMILIES.update(before)


def tiny_gpt_neo():
    """A random GPT-Neo with 2 blocks of 4 heads of 8, built from a config (nothing downloaded)."""
    transformers = pytest.importorskip("transformers")
    from alignsearch.text import toy

    tokenizer = toy.build_tokenizer()
    config = transformers.AutoConfig.for_model(
        "gpt_neo", vocab_size=len(tokenizer), hidden_size=32, num_layers=2, num_heads=4, intermediate_size=64,
        attention_types=[[["global", "local"], 1]], max_position_embeddings=64,
        bos_token_id=None, eos_token_id=None,
    )  # fmt: skip
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return transformers.AutoModelForCausalLM.from_config(config), tokenizer


def test_a_model_of_a_family_not_registered_has_its_layer_sites() -> None:
    model, _ = tiny_gpt_neo()
    assert api.sites(model) == {"embedding": 32, "layer.0": 32, "layer.1": 32}  # its blocks, not their parts


def test_a_family_registered_outside_the_package_has_its_sites(gpt_neo_family, tmp_path) -> None:
    """Its attention, MLP and heads (4 of 8 columns, as its config says under its own keys), in memory and
    from its folder's config.json alone; a head site reads its columns of the output projection's input."""
    from alignsearch.models.lm import TextLM

    model, tokenizer = tiny_gpt_neo()
    model.save_pretrained(tmp_path / "gpt_neo")
    want = {"embedding": 32}
    for i in range(2):
        want |= {f"layer.{i}": 32, f"layer.{i}.attn": 32, f"layer.{i}.mlp": 32}
        want |= {f"layer.{i}.head.{j}": 8 for j in range(4)}
    assert api.sites(model) == want and api.sites(tmp_path / "gpt_neo") == want
    lm = TextLM.from_model(model, tokenizer)
    assert lm.sites == want and not lm.supports_resume("layer.0")  # no resume said: it runs whole
    ids = tokenizer(["cup cup . how many ?"], return_tensors="pt").input_ids
    seen = []
    out_proj = model.transformer.h[1].attn.attention.out_proj
    handle = out_proj.register_forward_pre_hook(lambda mod, args: seen.append(args[0].detach().clone()))
    try:
        head = lm.activations(ids, "layer.1.head.2")
    finally:
        handle.remove()
    torch.testing.assert_close(head, seen[-1][..., 16:24], rtol=0.0, atol=0.0)  # head 2's columns
    mlp = lm.activations(ids, "layer.0.mlp")
    assert mlp.shape == (*ids.shape, 32)


def test_a_family_record_is_taken_once() -> None:
    from alignsearch.models.hf import FAMILIES, Family, register_family

    assert register_family(FAMILIES["gpt2"]) is FAMILIES["gpt2"]  # the same record again: nothing changes
    with pytest.raises(ValueError, match="registered already"):
        register_family(Family("gpt2", blocks="h"))
    with pytest.raises(ValueError, match="positions, rotary"):
        register_family(Family("mine", blocks="h", resume="sideways", final_norm="ln_f"))
    assert "mine" not in FAMILIES


def test_model_hf_builds_the_registered_families_it_can() -> None:
    pytest.importorskip("transformers")
    from alignsearch.models.hf import HFCausalLM

    with pytest.raises(
        ConfigError, match=r"^architecture=gpt_neox is not allowed: expected one of gpt2, llama \("
    ):
        HFCausalLM(vocab_size=8, architecture="gpt_neox")


# -- the alignments an error lists --------------------------------------------------------------------------------
def test_errors_list_the_alignment_group_choices() -> None:
    from alignsearch.components import alignment_choices, group_choices

    one, two = alignment_choices(1), alignment_choices(2)
    assert sorted(one + two) == group_choices("alignment")
    assert {"das", "boundless"} <= set(one) and {"mas", "latent_stitch"} <= set(two)
