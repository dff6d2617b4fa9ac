"""Whether this machine has the accelerator the hardware settings ask for, checked before any work.

Lightning finds out only when a trainer is made (after the pairs are built or the training folder is
set up) and says so with a traceback; here a run that asks for a GPU on a machine without one stops at
once with one line. The check runs where the job runs (a Slurm job on its GPU node, not on the login
node that submits it).

>>> check_accelerator(HardwareSettings(accelerator="cpu", devices=1, precision="32-true",
...                                    threads=None, progress_bar=False))
"""

from __future__ import annotations

import torch

from alignsearch.errors import ConfigError
from alignsearch.settings import HardwareSettings

CUDA = ("gpu", "cuda")
BFLOAT16 = ("bf16-mixed", "bf16-true")


def check_accelerator(hardware: HardwareSettings) -> None:
    """A ConfigError naming the setting if this machine cannot run ``hardware``: a CUDA accelerator
    without a CUDA GPU (or fewer than ``devices``), ``mps`` without Apple's GPU, a bfloat16 precision
    on a CUDA GPU without bfloat16, or more than one device on the CPU (Lightning would run one DDP
    process per device, each doing the same work). ``cpu`` and ``auto`` run otherwise."""
    if hardware.accelerator in CUDA:
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ConfigError(
                "hardware.accelerator",
                hardware.accelerator,
                "cpu or auto on this machine: torch sees no CUDA GPU here",
            )
        if hardware.devices > count:
            raise ConfigError(
                "hardware.devices", hardware.devices, f"at most {count}, the CUDA GPUs torch sees here"
            )
        if hardware.precision in BFLOAT16 and not torch.cuda.is_bf16_supported():
            raise ConfigError(
                "hardware.precision",
                hardware.precision,
                f"32-true or 16-mixed: {torch.cuda.get_device_name(0)} has no bfloat16",
            )
    elif hardware.accelerator == "mps" and not torch.backends.mps.is_available():
        raise ConfigError("hardware.accelerator", "mps", "cpu or auto on this machine: it has no MPS device")
    if (
        hardware.devices > 1 and compute_device(hardware).type == "cpu"
    ):  # Lightning would start a DDP process each
        raise ConfigError(
            "hardware.devices",
            hardware.devices,
            "1 on the CPU: a CPU run is one process (more threads: hardware.threads)",
        )


def compute_device(hardware: HardwareSettings) -> torch.device:
    """The device Lightning trains on (its first), where a run's work outside the training loop runs too:
    source activations, cached states, predictions and the final evaluation.

    >>> compute_device(HardwareSettings(accelerator="cpu", devices=1, precision="32-true",
    ...                                 threads=None, progress_bar=False))
    device(type='cpu')
    """
    auto = hardware.accelerator == "auto"
    if hardware.accelerator in CUDA or (auto and torch.cuda.is_available()):
        return torch.device("cuda", 0)
    if hardware.accelerator == "mps" or (auto and torch.backends.mps.is_available()):
        return torch.device("mps")
    return torch.device("cpu")
