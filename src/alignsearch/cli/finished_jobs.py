"""Which jobs of a sweep are done before they are submitted, read from their folders without running them.

A Slurm sweep run again should not take an allocation (a GPU one, under the defaults) for a job only to
print "already done". The launching process decides it here, cheaply and only when sure; a job it cannot
vouch for is submitted, and the job's own check (:func:`alignsearch.search.run.previous_results`, by the
models' weights and the settings' digest) decides there. A job folder counts as done when:

* it holds readable results (``results.json``, :class:`~alignsearch.search.results.RunResults`) and the
  alignment file;
* the config Hydra recorded when the job last ran (``.hydra/config.yaml``, read as data: nothing in it is
  resolved) equals the one the job would run with now, but for the settings that do not name a job
  (``hydra.job.config.override_dirname.exclude_keys``: hardware, loggers, the zoo's folder, ...);
* every zoo model its results name still has the weights they were computed with (``entry.json``'s
  ``weights_sha256``); a model of any other kind (brought from Python, a language model folder) leaves
  the decision to the job.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf, open_dict

from alignsearch.file_data import FileDataError, read_json
from alignsearch.search.results import RunResults

RECORDED_CONFIG = Path(".hydra") / "config.yaml"
ZOO_ENTRY_INFO = "entry.json"


def finished_results(cfg: DictConfig, folder: Path) -> RunResults | None:
    """The results of the job ``cfg`` (a job's composed config, with its ``hydra`` node) if its folder
    holds them for the same settings and models (see the module docstring); else None."""
    from alignsearch.search.run_folder import ALIGNMENT, RESULTS

    if not (folder / RESULTS).is_file() or not (folder / ALIGNMENT).is_file():
        return None
    try:
        results = RunResults.read(folder / RESULTS)
        recorded = yaml.safe_load((folder / RECORDED_CONFIG).read_text())
    except (OSError, yaml.YAMLError, FileDataError):
        return None
    ignored = [str(key) for key in cfg.hydra.job.config.override_dirname.exclude_keys or []]
    if without(recorded, ignored) != without(job_config(cfg), ignored):
        return None
    zoo = OmegaConf.select(cfg, "paths.zoo_dir", throw_on_resolution_failure=False)
    models = (results.identity or {}).get("models") or []
    if zoo is None or not models or not all(same_zoo_weights(Path(str(zoo)), m) for m in models):
        return None
    return results


def job_config(cfg: DictConfig) -> Any:
    """The job's config as Hydra records it in ``.hydra/config.yaml``: without its ``hydra`` node, not
    resolved."""
    copy = cfg.copy()
    with open_dict(copy):
        copy.pop("hydra", None)
    return OmegaConf.to_container(copy, resolve=False)


def without(config: Any, keys: list[str]) -> Any:
    """``config`` (plain data) without the dotted ``keys`` (``hardware``, ``hardware.threads``).

    >>> without({"a": 1, "b": {"c": 2, "d": 3}}, ["a", "b.c"])
    {'b': {'d': 3}}
    """
    if not isinstance(config, dict):
        return config
    config = {k: (dict(v) if isinstance(v, dict) else v) for k, v in config.items()}
    for key in keys:
        *parents, last = key.split(".")
        node: Any = config
        for part in parents:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node.pop(last, None)
    return config


def same_zoo_weights(zoo: Path, model: Any) -> bool:
    """Whether the zoo entry a result names (``{"name": "multiobject/gru/seed0", "weights_sha256": ...}``)
    still holds those weights."""
    if not isinstance(model, dict) or set(model) != {"name", "weights_sha256"}:
        return False  # identified by more than its weights (a model brought from Python): the job decides
    try:
        info = read_json(zoo / str(model["name"]) / ZOO_ENTRY_INFO)
    except (OSError, FileDataError):
        return False
    return isinstance(info, dict) and info.get("weights_sha256") == model["weights_sha256"]
