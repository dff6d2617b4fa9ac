"""The config folders a job's ``hydra.searchpath`` adds, where a partner's ``task`` or ``model`` choice
and the ``alignment`` choices are looked up too: what the checks (:mod:`alignsearch.cli.checks`), the
partner's config (:mod:`alignsearch.cli.plan`) and text runs (:mod:`alignsearch.cli.text_run`) all read."""

from __future__ import annotations

from contextvars import ContextVar
from pathlib import Path

from alignsearch.components import job_search_dirs

SEARCH_DIRS: ContextVar[tuple[Path, ...]] = ContextVar("search_dirs", default=())
"""The ``hydra.searchpath`` folders of the job :func:`alignsearch.cli.checks.precheck` is checking
(before Hydra runs)."""


def search_dirs() -> tuple[Path, ...]:
    """The config folders ``hydra.searchpath`` adds (:func:`alignsearch.components.search_path_dirs`),
    where a partner's ``task`` or ``model`` choice is looked up too: the running Hydra job's, or the one
    :func:`alignsearch.cli.checks.precheck` checks."""
    from hydra.core.hydra_config import HydraConfig

    return job_search_dirs() if HydraConfig.initialized() else SEARCH_DIRS.get()
