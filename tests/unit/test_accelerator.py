"""A run that asks for an accelerator this machine lacks stops with one line before any work.

The machine is simulated (``torch.cuda`` patched), so these hold on a CPU machine and on a GPU one.
"""

from __future__ import annotations

import pytest
import torch

from alignsearch.cli import check_command
from alignsearch.cli.commands import ALIGN
from alignsearch.components import build_model, build_task, load_choice
from alignsearch.engine.accelerator import check_accelerator, compute_device
from alignsearch.errors import ConfigError
from alignsearch.settings import HardwareSettings, TrainingSettings
from alignsearch.training.fit import fit_task_model
from tests.helpers import TINY_ALIGNMENT, TINY_TRAINING, assert_refused, body_refusal, compose_config


def hardware(**changes) -> HardwareSettings:
    settings = {"accelerator": "gpu", "devices": 1, "precision": "32-true", "threads": None}
    return HardwareSettings(**settings | changes, progress_bar=False)


@pytest.fixture
def no_gpu(monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)


@pytest.fixture
def one_old_gpu(monkeypatch) -> None:
    """One CUDA GPU without bfloat16 (a T4, say)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a, **k: "Tesla T4")


def test_a_gpu_run_on_a_machine_without_one_is_refused_before_hydra(no_gpu, in_command_env, tmp_path):
    assert_refused(
        "run_alignment.py", "hardware=gpu", *TINY_TRAINING,
        says=["hardware.accelerator=gpu", "cpu or auto on this machine", "torch sees no CUDA GPU"],
    )  # fmt: skip
    assert_refused(  # a local parallel sweep: every job would run here
        "train_task_model.py", "hardware=local_parallel", "hardware.accelerator=cuda", "-m", "seed=0,1",
        says=["hardware.accelerator=cuda", "torch sees no CUDA GPU"],
    )  # fmt: skip
    assert not in_command_env.exists() and not (tmp_path / "outputs").exists()


def test_a_slurm_sweep_is_checked_on_its_nodes_not_where_it_is_submitted(no_gpu, in_command_env):
    """The login node that submits the jobs has no GPU; the job checks its own node."""
    argv = ["-m", "hardware=slurm", "hardware.accelerator=gpu", "seed=0,1", *TINY_TRAINING, *TINY_ALIGNMENT]
    assert check_command(argv, ALIGN) == argv


def test_the_job_checks_its_own_machine(no_gpu, in_command_env, capsys):
    """What a Slurm job on a node without a GPU says: one line, before the model is trained."""
    line = body_refusal("train_task_model.py", "hardware=gpu", *TINY_TRAINING)
    assert line.startswith("error: hardware.accelerator=gpu is not allowed: expected cpu or auto")
    assert "training" not in capsys.readouterr().out
    assert not in_command_env.exists() or not any(in_command_env.rglob("*.ckpt"))


def test_devices_and_precision_the_gpu_lacks(one_old_gpu):
    check_accelerator(hardware())  # one GPU, float32: runs
    check_accelerator(hardware(precision="16-mixed"))
    with pytest.raises(
        ConfigError, match=r"^hardware\.devices=2 is not allowed: expected at most 1, the CUDA"
    ):
        check_accelerator(hardware(devices=2))
    with pytest.raises(
        ConfigError,
        match=r"^hardware\.precision=bf16-mixed is not allowed: expected 32-true or 16-mixed: Tesla T4 has no",
    ):
        check_accelerator(hardware(precision="bf16-mixed"))


def test_cpu_and_auto_always_run(no_gpu):
    check_accelerator(hardware(accelerator="cpu", precision="bf16-mixed"))
    check_accelerator(hardware(accelerator="auto"))


def test_the_library_checks_before_it_trains(no_gpu, tmp_path):
    """``fit_task_model`` (and ``fit_alignment``) check first: nothing is written."""
    task = build_task(load_choice("task", "multiobject", "task"))
    model = build_model(load_choice("model", "gru", "model"), task.vocab.size)
    settings = TrainingSettings.parse(load_choice("training", "default", "training"))
    with pytest.raises(ConfigError, match=r"^hardware\.accelerator=gpu"):
        fit_task_model(task, model, tmp_path / "work", settings=settings, hardware=hardware(), seed=0)
    assert not (tmp_path / "work").exists()


def test_work_outside_the_training_loop_runs_where_training_runs(one_old_gpu):
    """Source activations, cached states, predictions and the final evaluation: on Lightning's device."""
    assert compute_device(hardware()) == torch.device("cuda", 0)
    assert compute_device(hardware(accelerator="auto")) == torch.device("cuda", 0)
    assert compute_device(hardware(accelerator="cpu")) == torch.device("cpu")


def test_auto_without_a_gpu_is_the_cpu(no_gpu, monkeypatch):
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert compute_device(hardware(accelerator="auto")) == torch.device("cpu")


def test_no_advice_about_srun_where_slurm_is_installed(tmp_path, monkeypatch) -> None:
    """On a machine with Slurm's ``srun`` (a login node), Lightning advises prepending ``srun`` to every
    run; a run of ours is one process on one device, so that advice is not the user's business."""
    import warnings

    from alignsearch.engine.trainer import make_trainer, quiet_lightning

    srun = tmp_path / "bin" / "srun"
    srun.parent.mkdir()
    srun.write_text("#!/bin/sh\n")
    srun.chmod(0o755)
    monkeypatch.setenv("PATH", f"{srun.parent}:{__import__('os').environ['PATH']}")
    hardware = HardwareSettings.parse(compose_config("train_task_model", TINY_TRAINING).hardware)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        quiet_lightning()
        make_trainer(hardware, max_steps=1, val_every=1, callbacks=[], loggers=False, root=tmp_path)
    assert not [w for w in caught if "srun" in str(w.message)], [str(w.message) for w in caught]


@pytest.mark.parametrize(
    ("environ", "cpu_max", "expected"),
    [
        ({"SLURM_CPUS_PER_TASK": "1"}, "max 100000", 1),  # Slurm gave this job one CPU
        ({}, "50000 100000", 1),  # a container allowed half a CPU: one thread
        ({"OMP_NUM_THREADS": "3", "SLURM_CPUS_PER_TASK": "1"}, "50000 100000", 3),  # the user's choice wins
        ({"SLURM_CPUS_PER_TASK": "x"}, "no quota here", None),  # unreadable: the CPUs it may run on
    ],
)
def test_the_default_thread_count_is_what_the_process_may_use(environ, cpu_max, expected, tmp_path) -> None:
    import os

    from alignsearch.engine.trainer import usable_cpus

    path = tmp_path / "cpu.max"
    path.write_text(cpu_max)
    affinity = len(os.sched_getaffinity(0))
    assert usable_cpus(environ, path) == (affinity if expected is None else expected)


def test_a_run_without_hardware_threads_uses_slurms_cpus(monkeypatch) -> None:
    from alignsearch.engine.trainer import use_threads

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "1")
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        use_threads(
            HardwareSettings.parse({**compose_config("train_task_model", []).hardware, "threads": None})
        )
        assert torch.get_num_threads() == 1
        use_threads(HardwareSettings.parse({**compose_config("train_task_model", []).hardware, "threads": 2}))
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
