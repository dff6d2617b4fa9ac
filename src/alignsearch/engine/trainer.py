"""The trainer both halves use: a step-based Lightning trainer on the chosen hardware, checkpoints that
can be resumed, and quiet logs.

Checkpoints are read as data, never with pickle's power to call code (``weights_only=True``, whatever
torch's default or ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD`` say), both here (:func:`read_checkpoint`, which
checks a checkpoint before a training resumes from it) and where Lightning resumes
(:class:`WeightsOnlyCheckpointIO`). A checkpoint of these trainers holds only what that reading allows
anyway: tensors, dicts, lists, tuples, numbers, strings (the model's, optimizer's, scheduler's, loops'
and callbacks' states, the hyperparameters and what alignsearch records in it); nothing else is let in.
"""

from __future__ import annotations

import logging
import math
import os
import pickle
import re
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import ProgressBar
from lightning.pytorch.plugins.environments import SLURMEnvironment
from lightning.pytorch.plugins.io import TorchCheckpointIO

from alignsearch.engine.progress import progress_callbacks
from alignsearch.errors import ConfigError
from alignsearch.settings import HardwareSettings

LAST_CHECKPOINT = "last.ckpt"


def check_checkpoint(path: Path, key: str = "ckpt_path") -> Path:
    """``path`` if it is a readable Lightning checkpoint, else a one-line ConfigError."""
    read_checkpoint(path, key)
    return path


def load_weights_only(source: Any, map_location: Any = "cpu") -> Any:
    """``torch.load`` of a checkpoint as data only: tensors, containers, numbers and strings; a file
    that would have pickle build anything else (call a function, make an object) is refused by torch's
    restricted unpickler (``pickle.UnpicklingError``) before it runs."""
    return torch.load(source, map_location=map_location, weights_only=True)


UNSAFE_GLOBAL = re.compile(r"GLOBAL ([\w.]+)")


def read_checkpoint(path: Path, key: str = "ckpt_path") -> dict[str, Any]:
    """The contents of the Lightning checkpoint at ``path``, read as data (:func:`load_weights_only`): a
    one-line ConfigError naming ``key`` if it is missing, unreadable, not a Lightning checkpoint, or holds
    something that reading it would call (a crafted file: nothing in it runs)."""
    if not path.is_file():
        raise ConfigError(key, str(path), "an existing Lightning checkpoint file")
    try:
        state = load_weights_only(path)
    except Exception as e:  # noqa: BLE001 - any failure to read means the file is unusable
        unsafe = UNSAFE_GLOBAL.search(str(e)) if isinstance(e, pickle.UnpicklingError) else None
        if unsafe:  # torch's restricted reading refused it, before anything ran
            raise ConfigError(
                key,
                str(path),
                f"a checkpoint of plain data (it asks to call {unsafe.group(1)} when read; alignsearch reads "
                "checkpoints as tensors, numbers, strings and containers only, all that its trainers write)",
            ) from None
        raise ConfigError(
            key,
            str(path),
            f"a readable checkpoint (it is corrupt: {type(e).__name__}); delete it to start over",
        ) from None
    if not isinstance(state, dict) or "state_dict" not in state or "global_step" not in state:
        raise ConfigError(key, str(path), "a Lightning checkpoint (no state_dict/global_step in it)")
    return state


class WeightsOnlyCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint files, read as data when a training resumes (``trainer.fit(ckpt_path=...)``,
    a SLURM requeue): with :func:`load_weights_only`, as :func:`read_checkpoint` reads them (a local file
    only: the trainers write nowhere else)."""

    def load_checkpoint(self, path: Any, map_location: Any = None, weights_only: bool | None = None) -> dict:
        if not Path(path).is_file():
            raise FileNotFoundError(f"Checkpoint file not found: {path}")
        return load_weights_only(path, map_location or "cpu")  # whatever ``weights_only`` Lightning asks


def quiet_lightning() -> None:
    """Silence Lightning's advice that does not apply here (workers for in-memory data, tips)."""
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.pytorch.accelerators.cuda"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*LeafSpec.*")
    warnings.filterwarnings(
        "ignore", message=".*module\\(s\\) in eval mode.*"
    )  # frozen task models, on purpose
    # a resumed run's own checkpoints (a run in another's folder moves that one's outputs aside first)
    warnings.filterwarnings("ignore", message=".*Checkpoint directory .* exists and is not empty.*")
    # resuming from a checkpoint of another folder (ckpt_path): its best-k bookkeeping is not ours anyway
    warnings.filterwarnings("ignore", message=".*The dirpath has changed from.*")
    # a machine with Slurm installed (a login node): a run of ours is one process on one device, and a
    # sweep's jobs are started by the launcher, so "prepend srun" is not advice for our users
    warnings.filterwarnings(
        "ignore", message=".*The `srun` command is available on your system but is not used.*"
    )


def make_trainer(
    hardware: HardwareSettings,
    *,
    max_steps: int,
    val_every: int,
    callbacks: list,
    loggers: list | bool,
    root: Path,
    **extra: Any,
) -> L.Trainer:
    """A step-based Lightning trainer on ``hardware`` (validation every ``val_every`` steps); with
    ``hardware.progress_bar``, a rich progress bar on a terminal and progress lines elsewhere
    (:func:`alignsearch.engine.progress.progress_callbacks`)."""
    progress = progress_callbacks(hardware)
    plugins: list = [WeightsOnlyCheckpointIO()]
    if hardware.slurm_requeue is False and SLURMEnvironment.detect():
        plugins.append(SLURMEnvironment(auto_requeue=False))  # submitit requeues; Lightning must not
    return L.Trainer(
        accelerator=hardware.accelerator,
        devices=hardware.devices,
        precision=hardware.precision,  # type: ignore[arg-type]  # one of settings.PRECISIONS
        max_steps=max_steps,
        val_check_interval=val_every,
        check_val_every_n_epoch=None,
        num_sanity_val_steps=0,
        logger=loggers,
        callbacks=[*callbacks, *progress],
        enable_progress_bar=any(isinstance(c, ProgressBar) for c in progress),
        enable_model_summary=False,
        default_root_dir=root,
        plugins=plugins,
        **extra,
    )


def use_threads(hardware: HardwareSettings) -> None:
    """Set torch's thread count: the hardware settings' ``threads``, else :func:`usable_cpus`."""
    torch.set_num_threads(hardware.threads or usable_cpus())


CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")
"""cgroup v2's CPU quota of this process's group: ``<quota> <period>`` in microseconds, or ``max``."""


def usable_cpus(environ: Mapping[str, str] | None = None, cpu_max: Path = CGROUP_CPU_MAX) -> int:
    """How many CPUs this process may use, the default of ``hardware.threads``: ``OMP_NUM_THREADS`` where
    set (the user's own choice), else the least of the CPUs it may run on (its affinity), its container's
    CPU quota (cgroup v2 ``cpu.max``, rounded up) and Slurm's ``SLURM_CPUS_PER_TASK``. Torch's own default
    counts every core of the machine, so a job given one CPU of a large node ran with dozens of threads.

    >>> usable_cpus({"SLURM_CPUS_PER_TASK": "1"}) == 1
    True
    >>> usable_cpus({"OMP_NUM_THREADS": "3", "SLURM_CPUS_PER_TASK": "1"})
    3
    """
    environ = os.environ if environ is None else environ
    given = _positive(environ.get("OMP_NUM_THREADS"))
    if given:
        return given
    affinity = getattr(os, "sched_getaffinity", None)
    counts = [len(affinity(0)) if affinity else (os.cpu_count() or 1)]
    try:
        quota, period = cpu_max.read_text().split()[:2]
        if quota != "max":
            counts.append(max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass  # no cgroup v2 quota here
    slurm = _positive(environ.get("SLURM_CPUS_PER_TASK"))
    if slurm:
        counts.append(slurm)
    return max(1, min(counts))


def _positive(text: str | None) -> int | None:
    """``text`` as a positive integer, or None."""
    try:
        value = int(text) if text is not None else 0
    except ValueError:
        return None
    return value if value > 0 else None
