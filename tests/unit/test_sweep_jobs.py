"""A sweep's jobs on disk: each job's folder name starts with the keys the sweep varies (long override
lists are cut after them), ``summary.csv`` keeps one row per job (its latest), and the lines printed at the
end are this run's jobs in job order (sweeps run for real: ``commands/test_sweeps.py``)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from alignsearch.cli import MAX_DIR_NAME, register_resolvers, run_dir_name
from alignsearch.cli import sweep as sweep_module
from alignsearch.cli.sweep import swept_keys

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


def test_a_rerun_keeps_one_row_per_job_its_latest(tmp_path) -> None:
    """summary.csv holds one row per job (the rerun's replaces the interrupted one), rewritten whole."""
    sweep = tmp_path / "sweep"
    first = {"job": "seed=0", "status": "interrupted", "overrides": "seed=0", "iia": "", "error": "SIGTERM"}
    other = {"job": "seed=1", "status": "done", "overrides": "seed=1", "iia": "0.9000", "error": ""}
    sweep_module.write_row(sweep, first)
    sweep_module.write_row(sweep, other)
    sweep_module.write_row(sweep, {**first, "status": "done", "iia": "0.9500", "error": ""})
    rows = list(csv.DictReader((sweep / "summary.csv").open()))
    assert [(r["job"], r["status"], r["iia"]) for r in rows] == [
        ("seed=0", "done", "0.9500"),
        ("seed=1", "done", "0.9000"),
    ]
    assert sorted(p.name for p in sweep.iterdir()) == ["summary.csv", "summary.csv.lock"]  # no temporary left
    assert sweep_module.job_line(3, rows[0]) == "[job 3] done: seed=0: IIA 0.950"
    assert sweep_module.job_line(None, first) == "[job] interrupted: seed=0: SIGTERM"


def test_the_lines_printed_at_the_end_are_this_runs_jobs_in_job_order(tmp_path) -> None:
    """What the sweep's process prints when the jobs printed into their own logs (submitit)."""
    import os

    sweep = tmp_path / "sweep"
    for num, job in ((1, "seed=1"), (0, "seed=0"), (0, "seed=9")):
        (sweep / job / ".hydra").mkdir(parents=True)
        (sweep / job / ".hydra" / "hydra.yaml").write_text(f"hydra:\n  job:\n    num: {num}\n")
        sweep_module.write_row(sweep, row(job))
    (sweep / "multirun.yaml").write_text("{}\n")  # written when this run started, before its jobs
    os.utime(sweep / "multirun.yaml", (2_000_000, 2_000_000))
    os.utime(sweep / "seed=9" / ".hydra" / "hydra.yaml", (1_000_000, 1_000_000))  # an earlier run's job
    assert sorted(sweep_module.this_runs_jobs(sweep), key=lambda job: job[0]) == [
        (0, {**row("seed=0"), "slurm_job": "", "log": ""}),  # columns the file has, empty
        (1, {**row("seed=1"), "slurm_job": "", "log": ""}),  # columns the file has, empty
    ]
    assert [num for num, _ in sweep_module.this_runs_jobs(sweep, None)] == [None, None, None]


def row(job: str) -> dict[str, str]:
    return {"job": job, "status": "done", "overrides": job, "iia": "0.5", "error": ""}


def test_a_slurm_jobs_line_ends_with_its_id_and_log() -> None:
    """A job that ran in Slurm: its line says where to find it (its row's ``slurm_job`` and ``log``)."""
    slurm_row = {**row("seed=1"), "slurm_job": "17_2", "log": "multirun/x/.submitit/17_2/17_2_0_log.out"}
    assert sweep_module.job_line(2, slurm_row) == (
        "[job 2] done: seed=1: IIA 0.500 (Slurm job 17_2, log multirun/x/.submitit/17_2/17_2_0_log.out)"
    )
