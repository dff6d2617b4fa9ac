"""HuggingFace task models (``model=hf``: GPT-2 and Llama trained on a task): one trains, aligns over its
sites and pairs with a GRU through the commands (run in this process); a bad site, a folder that is not a
causal language model and a machine without ``transformers`` are one line each. Their sites:
``unit/test_sites.py``."""

from __future__ import annotations

import json
import shutil
import sys

import pytest

from alignsearch.errors import ConfigError
from tests.helpers import (
    TINY_ALIGNMENT,
    TINY_SUFFIX,
    TINY_TRAINING,
    assert_refused,
    quick_similarity,
    run_here,
)

HF_QUICK = ["model=hf", "hardware.progress_bar=false", "training.n_val=256", "training.n_heldout=128"]


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
