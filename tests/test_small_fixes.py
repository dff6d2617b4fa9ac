"""File modes of written files, api.align's temporary folder, site hints, sweep job folder names."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from alignsearch import api, atomic
from alignsearch.cli import MAX_DIR_NAME, register_resolvers, run_dir_name
from alignsearch.cli.sweep import swept_keys
from alignsearch.errors import ConfigError
from alignsearch.models import GRU, Transformer, hooks
from tests.helpers import TINY_ALIGNMENT, TINY_TRAINING, compose_config


@pytest.fixture
def umask():
    """Set the process umask for a test; the old one comes back after it."""
    old = os.umask(0o022)
    yield os.umask
    os.umask(old)


@pytest.mark.parametrize(("mask", "mode"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_written_files_get_0666_less_the_umask(umask, mask, mode, tmp_path) -> None:
    umask(mask)
    atomic.write_text(tmp_path / "a.txt", "text")
    atomic.write_json(tmp_path / "results.json", {"iia": 1.0})
    atomic.save_torch(tmp_path / "weights.pt", {"w": torch.ones(2)})
    atomic.write_text(tmp_path / "a.txt", "again")  # replacing a file gives the same mode
    for name in ("a.txt", "results.json", "weights.pt"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == mode, name
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "results.json", "weights.pt"]


def test_a_failed_write_leaves_the_old_file_and_no_temporary_one(tmp_path) -> None:
    atomic.write_text(tmp_path / "a.txt", "old")

    def half(f):
        f.write(b"half of the n")
        raise RuntimeError("stopped")

    with pytest.raises(RuntimeError):
        atomic._atomic(tmp_path / "a.txt", half)
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]
    assert (tmp_path / "a.txt").read_text() == "old"


def test_a_write_killed_midway_leaves_no_visible_partial_file(tmp_path) -> None:
    """SIGKILL while the bytes are being written: no ``results.json``, only the hidden temporary file."""
    script = f"""
import sys, time
from pathlib import Path
from alignsearch import atomic

def slow(f):
    f.write(b'{{"iia": ')
    f.flush()
    print("writing", flush=True)
    time.sleep(60)

atomic._atomic(Path({str(tmp_path)!r}) / "results.json", slow)
"""
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "writing"
        child.kill()
    finally:
        child.wait(timeout=30)
    (left,) = tmp_path.iterdir()
    assert left.name.startswith(".results.json.") and left.name.endswith(".tmp")
    assert not (tmp_path / "results.json").exists()


@pytest.fixture(scope="module")
def tiny_gru(tiny_zoo):
    """A GRU trained for a few steps (its alignments need not be good), from the session's tiny zoo."""
    return api.model(zoo_dir=tiny_zoo, overrides=TINY_TRAINING)


def test_align_removes_its_temporary_folder(tiny_gru, tmp_path, monkeypatch) -> None:
    """Without out_dir, api.align works in a temporary folder and removes it, also when it fails."""
    temp = tmp_path / "temp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    gru = tiny_gru
    tiny = [o for o in TINY_ALIGNMENT if not o.startswith("alignment.max_steps")]
    result = api.align(gru, n_units=4, max_steps=2, overrides=tiny)
    assert result.steps == 2
    assert list(temp.iterdir()) == []

    seen: list[Path] = []

    def fail(plan, models, work, **settings):
        seen.append(work)
        work.mkdir(parents=True, exist_ok=True)
        (work / "partial").write_text("")
        raise RuntimeError("failed in training")

    from alignsearch.search import run

    monkeypatch.setattr(run, "fit_alignment", fail)
    with pytest.raises(RuntimeError, match="failed in training"):
        api.align(gru, n_units=4, max_steps=2, overrides=tiny)
    assert seen and seen[0].parent == temp and list(temp.iterdir()) == []

    kept = tmp_path / "kept"
    with pytest.raises(RuntimeError):
        api.align(gru, n_units=4, max_steps=2, out_dir=kept, overrides=tiny)
    assert (kept / "partial").is_file()  # the user's folder stays


def test_bad_layer_names_each_layer_once(tiny_gru) -> None:
    with pytest.raises(ConfigError) as error:
        api.align(tiny_gru, layer=7, overrides=TINY_ALIGNMENT)
    assert str(error.value) == "layer=7 is not allowed: expected a layer of the gru: embedding, 0"


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


# Many overrides: sorted, the swept seed comes after them and used to fall past the cut.
LONG = [
    "alignment.batch_size=32",
    "alignment.eval_batch_size=128",
    "alignment.max_steps=20",
    "alignment.n_heldout=128",
    "alignment.n_test=128",
    "alignment.n_train=256",
    "alignment.n_val=128",
    "alignment.val_every=10",
    "model.d_model=32",
]


def write_sweep_record(sweep: Path, task: list[str], params: dict | None = None) -> None:
    """The ``multirun.yaml`` a sweep writes before its jobs start (the part run_dir_name reads)."""
    sweep.mkdir(parents=True, exist_ok=True)
    record = {"hydra": {"overrides": {"task": task}, "sweeper": {"params": params}}}
    OmegaConf.save(OmegaConf.create(record), sweep / "multirun.yaml")


def test_long_sweep_job_names_start_with_the_swept_keys(tmp_path) -> None:
    write_sweep_record(tmp_path, ["seed=0,1", "n_units=4,8", *LONG])
    names = {}
    for seed in (0, 1):
        for n_units in (4, 8):
            job = [f"seed={seed}", f"n_units={n_units}", *LONG]
            overrides = ",".join(sorted(job))
            assert len(overrides) > MAX_DIR_NAME
            names[seed, n_units] = run_dir_name(overrides, job, str(tmp_path))
    for (seed, n_units), name in names.items():
        assert name.startswith(f"n_units={n_units},seed={seed},alignment.batch_size=32,"), name
        assert len(name) == MAX_DIR_NAME
    assert len(set(names.values())) == 4  # one folder per job
    # stable: the same job of a rerun of the sweep gets the same folder
    job = ["seed=1", "n_units=8", *LONG]
    assert run_dir_name(",".join(sorted(job)), job, str(tmp_path)) == names[1, 8]


def test_sweep_job_names_short_or_without_a_sweep_record_are_as_before(tmp_path) -> None:
    job = ["seed=1", *LONG]
    overrides = ",".join(sorted(job))
    before = f"{overrides[: MAX_DIR_NAME - 9]}-"
    assert run_dir_name(overrides).startswith(before)  # a single run: no swept keys
    assert run_dir_name(overrides, job, str(tmp_path / "none")).startswith(before)  # no multirun.yaml
    write_sweep_record(tmp_path, ["seed=1,2", "n_units=4"])
    assert run_dir_name("n_units=4,seed=1", ["seed=1", "n_units=4"], str(tmp_path)) == "n_units=4,seed=1"


def test_preset_sweep_params_count_as_swept(tmp_path) -> None:
    """Keys swept by ``hydra.sweeper.params`` (the paper presets) come first too; constant params do not."""
    write_sweep_record(
        tmp_path, ["+experiment=x", *LONG], {"seed": "0,1", "n_units": "16", "alignment.variables": "[a],[b]"}
    )
    job = ["seed=1", "n_units=16", "alignment.variables=[b]", "+experiment=x", *LONG]
    name = run_dir_name(",".join(sorted(job)), job, str(tmp_path))
    assert name.startswith("alignment.variables=[b],seed=1,+experiment=x,alignment.batch_size=32,"), name
    assert swept_keys(tmp_path) == {"seed", "alignment.variables"}  # what each job's sweep line shows
    write_sweep_record(tmp_path, ["seed=0,1", "model=gru"], {"n_units": "${oc.env:NOT_SET_ANYWHERE}"})
    assert swept_keys(tmp_path) == {"seed", "n_units"}  # a value that does not resolve here: swept
    assert swept_keys(tmp_path / "none") == set()


TRAINING = [
    "model.d_model=32",
    "training.batch_size=32",
    "training.checkpoint_every=20",
    "training.max_steps=40",
    "training.n_heldout=32",
    "training.n_val=64",
    "training.val_every=20",
]


@pytest.mark.parametrize(("entry", "many"), [("run_alignment", LONG), ("train_task_model", TRAINING)])
def test_composed_sweep_subdir_shows_the_swept_seed(entry, many, tmp_path) -> None:
    """The entry points' hydra.sweep.subdir, resolved as the jobs of ``-m seed=0,1 <many overrides>`` do."""
    from hydra import compose, initialize_config_dir

    from tests.helpers import CONF

    register_resolvers()
    sweep = tmp_path / "sweep"
    write_sweep_record(sweep, ["seed=0,1", *many])
    names = []
    for seed in (0, 1):
        with initialize_config_dir(str(CONF), version_base="1.3"):
            cfg = compose(
                entry, [f"seed={seed}", *many, f"hydra.sweep.dir={sweep}"], return_hydra_config=True
            )
        assert len(cfg.hydra.job.override_dirname) > MAX_DIR_NAME
        names.append(cfg.hydra.sweep.subdir)
    assert [n.split(",")[0] for n in names] == ["seed=0", "seed=1"], names
    assert names[0] != names[1] and all(len(n) == MAX_DIR_NAME for n in names)
