"""``python -m alignsearch.scan``: where does the variable live? A short alignment at every site x position
(:mod:`alignsearch.search.scan`), from the overrides ``run_alignment.py`` takes plus ``scan.*``::

    python -m alignsearch.scan model=lm model.path=<folder> data=pairs data.path=pairs.jsonl n_units=8 \\
        'scan.sites=[layer.0,layer.1]' 'scan.positions=[last,-2,-3]' scan.steps=50 scan.then_align=true

The config is ``conf/scan.yaml``: ``run_alignment.yaml`` and a ``scan`` node (:class:`ScanSettings`);
the folder ``outputs/scan/<overrides>/`` (or ``paths.output_dir``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig, open_dict

from alignsearch.cli.checks import check_common, check_run_config, run_requests
from alignsearch.cli.run_alignment import run_inputs
from alignsearch.cli.text_run import is_text_run
from alignsearch.inputs import planned_model
from alignsearch.search.results import RunStatus
from alignsearch.search.scan import check_scan, run_scan
from alignsearch.settings import HardwareSettings, ScanSettings


def run_config(cfg: DictConfig) -> DictConfig:
    """The run's own config: the scan's without its ``scan`` node."""
    run_cfg = cfg.copy()
    with open_dict(run_cfg):
        run_cfg.pop("scan", None)
    return run_cfg


def check_scan_config(cfg: DictConfig) -> None:
    """Every setting of a scan before Hydra starts: the run's (``check_run_config``), the ``scan`` node's,
    and for task models every site and position on the models as initialised (text runs: once the
    models are loaded, before any training)."""
    scan = ScanSettings.parse(cfg.get("scan"))
    run_cfg = run_config(cfg)
    check_run_config(run_cfg)
    if not is_text_run(run_cfg):
        alignment, run = check_common(run_cfg)
        models = [planned_model(r) for r in run_requests(run_cfg)]
        check_scan(models, alignment, run, scan)


def main(cfg: DictConfig) -> dict[str, Any]:
    out_dir = Path(cfg.paths.output_dir)
    scan = ScanSettings.parse(cfg.get("scan"))
    run_cfg = run_config(cfg)
    alignment, run = check_common(run_cfg)
    models, data = run_inputs(run_cfg, out_dir)
    from alignsearch.report.plots import scan_heatmap  # matplotlib only when a scan runs

    hardware = HardwareSettings.parse(cfg.hardware)
    result = run_scan(models, alignment, run, hardware, out_dir, scan, data=data, heatmap=scan_heatmap)
    best = result.best()
    summary = result.summary()
    # what a sweep's line and summary.csv show of a job: the best cell's IIA
    return {**summary, "iia": best.iia, "status": RunStatus.DONE}


if __name__ == "__main__":  # python -m alignsearch.cli.scan <overrides>
    from alignsearch.cli.commands import scan

    scan()
