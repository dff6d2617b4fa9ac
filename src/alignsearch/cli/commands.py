"""The commands, ``alignsearch-train``, ``alignsearch-align`` and ``alignsearch-scan``, light to import.

A command names its body and its checks as ``module:function``: both are imported only once the command
line has been read, so a refused command answers before torch's training stack (Lightning, the
alignment search) is loaded, and a sweep's launching process never loads it.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass

from alignsearch.cli import launch


@dataclass(frozen=True)
class Command:
    """An entry point: its Hydra config (``conf/<config_name>.yaml``), the config groups whose choices are
    checked before Hydra starts, and where its body and checks live.

    >>> ALIGN.config_name, ALIGN.body
    ('run_alignment', 'alignsearch.cli.run_alignment:main')
    """

    config_name: str
    groups: tuple[str, ...]
    body: str
    """``module:function`` run on each composed job config."""
    check: str
    """``module:function`` run on every job's config before Hydra starts (raises a one-line error)."""

    def body_function(self) -> Callable:
        return locate(self.body)

    def check_function(self) -> Callable:
        return locate(self.check)


def locate(path: str) -> Callable:
    """The function ``module:function`` names (the module is imported on first use)."""
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


TRAIN = Command(
    config_name="train_task_model",
    groups=("task", "model", "hardware", "logger", "training"),
    body="alignsearch.cli.train_task_model:main",
    check="alignsearch.cli.checks:check_train_config",
)
ALIGN = Command(
    config_name="run_alignment",
    groups=("task", "model", "alignment", "hardware", "logger", "training", "experiment", "causal", "data"),
    body="alignsearch.cli.run_alignment:main",
    check="alignsearch.cli.checks:check_run_config",
)


SCAN = Command(
    config_name="scan",
    groups=ALIGN.groups,
    body="alignsearch.cli.scan:main",
    check="alignsearch.cli.scan:check_scan_config",
)


def train() -> None:
    """``alignsearch-train`` (also ``python train_task_model.py``): train one task model into the zoo."""
    launch(TRAIN)


def align() -> None:
    """``alignsearch-align`` (also ``python run_alignment.py``): align a causal variable in trained models."""
    launch(ALIGN)


def scan() -> None:
    """``alignsearch-scan`` (also ``python -m alignsearch.scan``): a short alignment at every site x
    position, ``scan.csv`` and ``scan.png``."""
    launch(SCAN)
