"""``run_alignment.py``: align a causal variable in zoo models (or language models on text) and write
``results.json``: the composed config turned into the run core's typed inputs
(:func:`alignsearch.search.run.run_alignment`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from alignsearch import inputs, zoo
from alignsearch.cli.checks import check_common, run_requests
from alignsearch.cli.text_run import is_text_run, text_inputs
from alignsearch.cli.train_task_model import make_loggers
from alignsearch.engine.progress import duration
from alignsearch.search.planning import check_task_accuracy
from alignsearch.search.records import models_legend, records_table
from alignsearch.search.results import RunStatus
from alignsearch.search.run import RunResult, run_alignment
from alignsearch.search.run_folder import RESULTS
from alignsearch.search.spec import RunData, RunModel
from alignsearch.settings import HardwareSettings, RunSettings


def main(cfg: DictConfig) -> dict[str, Any]:
    out_dir = Path(cfg.paths.output_dir)
    alignment, run = check_common(cfg)  # every setting checked before any work
    models, data = run_inputs(cfg, out_dir)
    result = run_alignment(
        models,
        alignment,
        run,
        HardwareSettings.parse(cfg.hardware),
        out_dir,
        data=data,
        loggers=lambda config: run_loggers(cfg, config),
        similarity_baselines=bool(cfg.get("similarity", True)),
    )
    done = result.status == RunStatus.ALREADY_DONE
    show(result, f"{RunStatus.ALREADY_DONE if done else 'results'}: {out_dir / RESULTS}")
    # what the job hands a sweep (its line and summary.csv): the results, the status and the headline IIA
    return {**result.results.to_json(), "status": result.status, "iia": result.results.headline_iia}


def run_inputs(cfg: DictConfig, out_dir: Path) -> tuple[list[RunModel], RunData | None]:
    """The models a run aligns and its data: language models from their folders with the pairs of the
    data, or task models from the zoo (each missing one trained once, under its lock, ending with a line
    of its accuracy) and no data; a task model below ``min_task_accuracy`` is refused as soon as it is
    there (:func:`alignsearch.search.planning.check_task_accuracy`)."""
    if is_text_run(cfg):
        return text_inputs(cfg, out_dir)
    run = RunSettings.parse(cfg)
    models = []
    for i, req in enumerate(run_requests(cfg)):
        trains = not req.path.is_dir()
        model = inputs.zoo_model(zoo.get_or_train(req, snapshot=cfg.snapshot), i)
        if trains:
            print(trained_line(model), flush=True)
        check_task_accuracy([model], run)  # an under-trained model is refused before its partner trains
        models.append(model)
    return models, None


def trained_line(model: RunModel) -> str:
    """The line that ends a task model's training inside an alignment (``training <path>`` began it):
    ``trained multiobject/gru/seed0: validation trial accuracy 0.999 after 600 steps (41.3 s)``."""
    metrics = model.training_metrics or {}
    return (
        f"trained {model.name}: validation trial accuracy {metrics.get('val_trial_acc', float('nan')):.3f} "
        f"after {metrics.get('steps')} steps ({duration(float(metrics.get('train_seconds', 0.0)))})"
    )


def run_loggers(cfg: DictConfig, config: dict[str, Any]) -> list:
    """The run's loggers; a W&B run is grouped by task/model/alignment, typed by layer and tagged."""
    tags = [str(config[k]) for k in ("task", "model", "alignment", "causal_model") if config[k] is not None]
    return make_loggers(
        cfg,
        group=f"{config['task']}/{config['model']}/{config['alignment']}",
        job_type=f"layer{config['layer']}",
        tags=tags + list(config["variables"]),
        run_config=config,
    )


def show(result: RunResult, status: str) -> None:
    """Print the records as a table: one row per direction and variable (models named below it); for a
    layout that learns its sizes (``alignment=boundless``), the sizes it found."""
    results = result.results
    print(status, flush=True)
    print(records_table(result.records), flush=True)
    print(
        f"{models_legend(result.records)}; {results.steps} steps (best at {results.best_step}), "
        f"{results.train_seconds or 0.0:.1f} s",
        flush=True,
    )
    learned = learned_sizes_line(result)
    if learned:
        print(learned, flush=True)


def learned_sizes_line(result: RunResult) -> str | None:
    """``learned sizes at layer.0.head.1 (width 32): count 7.3``: the subspace size each variable ended
    with, for a layout that learns them (``results.json``'s ``learned_units``); None for fixed sizes."""
    learned = result.results.learned_units
    if result.config.get("layout") != "BoundlessLayout" or not learned:
        return None
    member = result.plan.members[0]
    sizes = ", ".join(f"{variable} {size:.1f}" for variable, size in learned.items())
    return f"learned sizes at {member.site} (width {member.width}): {sizes}"


if __name__ == "__main__":  # python -m alignsearch.cli.run_alignment <overrides>
    from alignsearch.cli.commands import align

    align()
