"""HuggingFace task models, module-path sites, and the Python API."""

from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path

import pytest
import torch

from alignsearch import api
from alignsearch.cli import run_alignment
from alignsearch.errors import ConfigError
from alignsearch.models import Intervention, SequenceModel, Transformer, hooks
from alignsearch.models.hf import HFCausalLM
from tests.helpers import (
    ROOT,
    TINY_ALIGNMENT,
    TINY_SUFFIX,
    TINY_TRAINING,
    assert_refused,
    compose_config,
    quick_similarity,
    run_here,
)

HF_QUICK = ["model=hf", "hardware.progress_bar=false", "training.n_val=256", "training.n_heldout=128"]


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


def test_hf_model_trains_aligns_and_pairs_with_a_gru(tiny_zoo, zoo, tmp_path, monkeypatch) -> None:
    """The commands run in this process (``run_here``): training, a sweep over sites, a MAS with a GRU."""
    quick_similarity(monkeypatch)
    shutil.copytree(tiny_zoo, zoo)  # the GRU partner of the MAS below is there
    trained = run_here("train_task_model.py", *HF_QUICK, zoo=zoo, cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr
    metrics = json.loads((zoo / "multiobject" / "hf_gpt2" / "seed0-n_val256" / "metrics.json").read_text())
    assert metrics["val_trial_acc"] >= 0.99, metrics

    from alignsearch import zoo as model_zoo

    saved = tmp_path / "saved_gpt2"
    model_zoo.load(zoo / "multiobject" / "hf_gpt2" / "seed0-n_val256").model.lm.save_pretrained(saved)
    again = run_here("train_task_model.py", *HF_QUICK, f"model.path={saved}", zoo=zoo, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    (entry,) = [p for p in (zoo / "multiobject" / "hf_gpt2").glob("seed0-path*") if p.is_dir()]
    reloaded = json.loads((entry / "metrics.json").read_text())
    assert reloaded["val_trial_acc"] >= 0.99 and reloaded["steps"] == 50  # already trained: stops at once

    das = run_here(
        "run_alignment.py", *HF_QUICK, "-m", "layer=embedding,1", *TINY_ALIGNMENT, zoo=zoo, cwd=tmp_path
    )
    assert das.returncode == 0, das.stderr
    sites = sorted(
        json.loads(p.read_text())["config"]["site"] for p in tmp_path.glob("multirun/**/results.json")
    )
    assert sites == ["embedding", "layer.1"]

    mas = run_here(
        "run_alignment.py",
        "alignment=mas",
        "partner.model=hf",
        "partner.seed=0",
        *TINY_TRAINING,
        *TINY_ALIGNMENT,
        zoo=zoo,
        cwd=tmp_path,
    )
    assert mas.returncode == 0, mas.stderr
    (results,) = [json.loads(p.read_text()) for p in tmp_path.glob("outputs/run_alignment/*/results.json")]
    names = {r["direction"]: (r["source"], r["target"]) for r in results["records"]}
    assert names["0>1"] == (
        f"multiobject/gru/seed0-d_model32{TINY_SUFFIX}",
        f"multiobject/hf_gpt2/seed0{TINY_SUFFIX}",
    )


def test_module_path_site_matches_the_layer_end_to_end(in_command_env, tmp_path) -> None:
    """run_alignment's body with ``site=blocks.1`` (a module path) and with ``layer=1``: the same results."""
    records = {}
    for name, choice in (("a", "layer=1"), ("b", "site=blocks.1")):
        overrides = ["model=transformer", *TINY_TRAINING, *TINY_ALIGNMENT, choice]
        run_alignment.main(
            compose_config("run_alignment", [*overrides, f"paths.output_dir={tmp_path / name}"])
        )
        (records[name],) = json.loads((tmp_path / name / "results.json").read_text())["records"]
    a, b = records["a"], records["b"]
    assert (a["iia"], a["iia_test"], a["token_iia"]) == (b["iia"], b["iia_test"], b["token_iia"])


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["model=transformer", "site=blocks.7"], ["site=blocks.7", "close matches: blocks"]),
        (
            ["model=hf", "model.path=/nonexistent/folder"],
            ["model.path=/nonexistent/folder", "save_pretrained"],
        ),
    ],
)
def test_bad_sites_and_hf_folders(args, fragments, in_command_env) -> None:
    assert_refused("run_alignment.py", *args, says=fragments)


def test_hf_folder_that_is_not_a_causal_lm(in_command_env, tmp_path) -> None:
    import transformers

    folder = tmp_path / "encoder"
    transformers.BertConfig(
        vocab_size=16, hidden_size=16, num_hidden_layers=1, num_attention_heads=2
    ).save_pretrained(folder)
    assert_refused(
        "train_task_model.py",
        "model=hf",
        f"model.path={folder}",
        says=[f"model.path={folder}", "a causal language model"],
    )


def test_hf_without_transformers_says_how_to_get_it(monkeypatch) -> None:
    """Where transformers is not installed, choosing an HF model is one clear error (one line on the CLI)."""
    from alignsearch.components import build_model, load_choice

    monkeypatch.setitem(sys.modules, "transformers", None)  # `import transformers` now fails
    with pytest.raises(ConfigError) as error:
        build_model(load_choice("model", "hf", "model"), 8)
    assert str(error.value) == (
        'model=hf is not allowed: expected the transformers package: pip install -e ".[hf]" '
        "(it is an optional extra)"
    )


def readme_api_example() -> str:
    text = (ROOT / "README.md").read_text()
    return re.search(r"<!-- ci:api -->\n```python\n(.*?)```", text, re.S).group(1)


@pytest.mark.slow
def test_readme_api_example_runs(tmp_path, monkeypatch) -> None:
    """The README's Python example, as written (its zoo in a temporary folder)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ALIGNSEARCH_ZOO", str(tmp_path / "zoo"))
    namespace: dict = {}
    exec(compile(readme_api_example(), "README.md", "exec"), namespace)
    result, saved = namespace["result"], namespace["saved"]
    assert result.iia("0>0", "count") >= 0.8
    assert saved.models == ["multiobject/gru/seed0"] and (tmp_path / "das_count.pt").is_file()


@pytest.mark.slow
def test_quickstart_notebook_runs_top_to_bottom(tmp_path, monkeypatch) -> None:
    notebook = json.loads((ROOT / "examples" / "quickstart.ipynb").read_text())
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ALIGNSEARCH_ZOO", str(tmp_path / "zoo"))
    namespace: dict = {}
    for cell in notebook["cells"]:
        if cell["cell_type"] == "code":
            exec(compile("".join(cell["source"]), "quickstart.ipynb", "exec"), namespace)
    result, saved, fresh, gru = (namespace[k] for k in ("result", "saved", "fresh", "gru"))
    on_fresh = api.iia(saved, [gru], fresh)["iia"]  # the saved DAS map on new pairs: as good as on its own
    assert on_fresh == pytest.approx(result.iia("0>0", "count"), abs=0.1)
    mas = namespace["mas"]
    assert sorted(r.direction for r in mas.records) == ["0>0", "0>1", "1>0", "1>1"]
    into_gpt2 = next(r for r in mas.records if r.direction == "0>1")  # the GRU's count into GPT-2
    assert mas.iia("0>1", "count") == into_gpt2.iia
    crossed = [r for r in mas.records if r.direction in ("0>1", "1>0")]
    assert (
        max(r.iia - r.iia_step0 for r in crossed) > 0.05
    )  # a cross direction learned (200 steps: GPT-2 into the GRU)
    assert Path(tmp_path / "outputs" / "quickstart_das.pt").is_file()
