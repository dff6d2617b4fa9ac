"""On a machine with a CUDA GPU: the same runs on ``hardware=gpu`` as on the CPU give the same findings,
and what they write loads on a machine without one. Skipped where torch sees no CUDA GPU.

What runs on the GPU besides the training steps: the pairs' source activations, the frozen-prefix cache,
the language models' predictions and the final evaluation (``alignsearch.engine.accelerator``).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tests.helpers import SMALL_GRU, TINY_ALIGNMENT, run_here

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="torch sees no CUDA GPU")

GPU = ["hardware=gpu", "hardware.precision=32-true", "hardware.progress_bar=false"]
CPU = ["hardware=cpu", "hardware.progress_bar=false"]


def records(folder: Path) -> dict[str, dict]:
    (path,) = folder.glob("**/results.json")
    return {r["direction"]: r for r in json.loads(path.read_text())["records"]}


def assert_saved_on_the_cpu(folder: Path) -> None:
    """The kept alignment's tensors were saved from the CPU: it loads where there is no GPU."""
    (path,) = folder.glob("**/alignment.pt")
    state = torch.load(path, weights_only=True)["state_dict"]
    assert state and all(t.device.type == "cpu" for t in state.values())


def test_das_with_controls_on_the_gpu_finds_what_the_cpu_finds(trained_zoo, tmp_path) -> None:
    args = [*SMALL_GRU, *TINY_ALIGNMENT, "alignment.max_steps=150", "alignment.val_every=50",
            "alignment.controls=[random_subspace]"]  # fmt: skip
    found = {}
    for name, hardware in (("cpu", CPU), ("gpu", GPU)):
        (tmp_path / name).mkdir()
        done = run_here("run_alignment.py", *args, *hardware, zoo=trained_zoo, cwd=tmp_path / name)
        assert done.returncode == 0, done.stderr
        found[name] = records(tmp_path / name)["0>0"]
        assert_saved_on_the_cpu(tmp_path / name)
    for key in ("iia", "iia_test", "iia_control_random_subspace"):
        assert found["gpu"][key] == pytest.approx(found["cpu"][key], abs=0.05), key


def test_a_language_model_aligns_on_the_gpu_with_its_prefix_cache(toy_lms, tmp_path) -> None:
    from alignsearch.text.toy import count_pair_rows

    pairs = tmp_path / "count.jsonl"
    pairs.write_text("".join(json.dumps(r) + "\n" for r in count_pair_rows(600, seed=0)))
    args = ["model=lm", f"model.path={toy_lms['gpt2']}", "data=pairs", f"data.path={pairs}", "layer=0",
            "n_units=8", "alignment.max_steps=150", "alignment.val_every=50", "alignment.prefix_cache=true"]  # fmt: skip
    found = {}
    for name, hardware in (("cpu", CPU), ("gpu", GPU)):
        (tmp_path / name).mkdir()
        done = run_here("run_alignment.py", *args, *hardware, zoo=tmp_path / "zoo", cwd=tmp_path / name)
        assert done.returncode == 0, done.stderr
        found[name] = records(tmp_path / name)["0>0"]
    assert found["gpu"]["iia"] >= 0.9
    assert found["gpu"]["iia"] == pytest.approx(found["cpu"]["iia"], abs=0.05)
