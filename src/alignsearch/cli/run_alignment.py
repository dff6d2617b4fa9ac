"""``run_alignment.py``: align a causal variable in a zoo model and write ``results.json``."""

from __future__ import annotations

import csv
import io as text_io
import json
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig
from rich.console import Console
from rich.table import Table

from alignsearch import io, zoo
from alignsearch.cli.sweep import ALREADY_DONE
from alignsearch.cli.train_task_model import make_loggers
from alignsearch.errors import ConfigError
from alignsearch.loggers import log_final_records
from alignsearch.seeding import generator
from alignsearch.similarity import similarity
from alignsearch.similarity import to_markdown as similarity_markdown
from alignsearch.training.fit_alignment import fit_alignment, flat_config
from alignsearch.training.metrics import task_accuracy
from alignsearch.training.plan import AlignmentPlan, member_configs, plan_alignment
from alignsearch.training.saved_alignment import save_alignment
from alignsearch.training.task_module import check_training_settings

GROUPS = ("task", "model", "alignment", "hardware", "logger", "training", "experiment", "causal")
RESULTS = "results.json"
SIMILARITY = "similarity.json"
HISTORY_COLUMNS = (
    "step",
    "split",
    "direction",
    "source",
    "target",
    "variable",
    "trained",
    "iia",
    "token_iia",
    "cl_loss",
    "cl_divergence",
)


def main(cfg: DictConfig) -> dict[str, Any]:
    out_dir = Path(cfg.paths.output_dir)
    snapshot = cfg.get("snapshot")
    if snapshot is not None and (isinstance(snapshot, bool) or not isinstance(snapshot, int) or snapshot < 1):
        raise ConfigError("snapshot", snapshot, "a training step kept in the zoo entry, or null")
    check_training_settings(cfg.training)
    cfgs = member_configs(cfg)
    requests = [zoo.request(c) for c in cfgs]
    plan = plan_alignment(cfgs, requests)  # every setting checked before any work
    if (out_dir / RESULTS).is_file():
        results = json.loads((out_dir / RESULTS).read_text())
        show(results, f"already done: {out_dir / RESULTS}")
        return {**results, "status": ALREADY_DONE}
    for req in requests:
        if not req.path.is_dir() and not cfg.auto_train:
            raise ConfigError("auto_train", cfg.auto_train, f"true, or a trained zoo entry at {req.path}")
    models = [zoo.get_or_train(c).model for c in cfgs]  # each missing model trained once, under its lock
    if len(models) == 2 and cfg.get("similarity", True):
        write_similarity(plan, models, int(cfg.seed), out_dir)
    choices = dict(HydraConfig.get().runtime.choices) if HydraConfig.initialized() else {}
    config = flat_config(cfg, plan, choices)
    loggers = make_loggers(
        cfg,
        group=f"{config['task']}/{config['model']}/{config['alignment']}",
        job_type=f"layer{config['layer']}",
        tags=[str(config[k]) for k in ("task", "model", "alignment", "causal_model")]
        + list(config["variables"]),
        run_config=config,
    )
    out = fit_alignment(cfg, plan, models, out_dir, loggers=loggers)
    results = {
        "config": config,
        "steps": out["steps"],
        "best_step": out["best_step"],
        "train_seconds": out["train_seconds"],
        "learned_units": out["learned_units"],
        "task_accuracy": [  # of each model as aligned (a snapshot's accuracy when aligning one)
            task_accuracy(model, member.task, 1000, generator(int(cfg.seed), "task-accuracy"))
            for model, member in zip(models, plan.members, strict=True)
        ],
        "records": out["records"],
    }
    save_alignment(out_dir / "alignment.pt", plan, out["state"], results["config"])
    io.write_text(out_dir / "metrics.csv", history_csv(out["history"], [m.name for m in plan.members]))
    io.write_json(out_dir / RESULTS, results)  # written last: its presence marks the run complete
    log_final_records(loggers, results["records"])
    show(results, f"results: {out_dir / RESULTS}")
    return results


def write_similarity(plan: AlignmentPlan, models: list, seed: int, out_dir: Path) -> None:
    """RSA, CKA and probes of the two models (``similarity.json``, ``similarity.md``), unless present."""
    if (out_dir / SIMILARITY).is_file():
        return
    names = [m.name for m in plan.members]
    sites = [m.site for m in plan.members]
    measures = similarity(
        [m.task for m in plan.members],
        models,
        sites,
        [m.causal_model for m in plan.members],
        names,
        seed=seed,
    )
    io.write_text(out_dir / "similarity.md", similarity_markdown(measures, names, sites))
    io.write_json(out_dir / SIMILARITY, {"models": names, "sites": sites, "measures": measures})
    headline = ", ".join(f"{k} {measures[k]:.3f}" for k in ("cka_linear", "cka_rbf", "rsa_cos_spearman"))
    print(f"similarity ({SIMILARITY}): {headline}", flush=True)


def history_csv(history: list[dict[str, Any]], model_names: list[str]) -> str:
    """The evaluation history as CSV, one row per (step, split, track), models by their zoo names."""
    buffer = text_io.StringIO()
    writer = csv.DictWriter(buffer, HISTORY_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    for row in history:
        writer.writerow(
            {
                **row,
                "direction": f"{row['source']}>{row['target']}",
                "source": model_names[row["source"]],
                "target": model_names[row["target"]],
            }
        )
    return buffer.getvalue()


def show(results: dict[str, Any], status: str) -> None:
    """Print the records as a table: one row per direction and variable (models named in the caption)."""
    print(status, flush=True)
    models: list[str] = []
    for r in results["records"]:
        for name in (r["source"], r["target"]):
            if name not in models:
                models.append(name)
    table = Table()
    for column in (
        "direction",
        "variable",
        "trained by",
        "IIA val",
        "held-out",
        "test",
        "token IIA",
        "step 0",
    ):
        table.add_column(column)
    for r in results["records"]:
        cells = [r["iia"], r["iia_heldout"], r["iia_test"], r["token_iia"], r["iia_step0"]]
        variable = r["variable"]
        if "source_variable" in r:
            variable = f"{r['source_variable']} -> {r['target_variable']}"
        table.add_row(
            r.get("direction", "0>0"),
            variable,
            r.get("loss") or "-",
            *("-" if c is None else f"{c:.3f}" for c in cells),
        )
    legend = ", ".join(f"model {i} = {name}" for i, name in enumerate(models))
    table.caption = f"{legend}; {results['steps']} steps (best at {results['best_step']}), {results['train_seconds']:.1f} s"
    Console(width=120).print(table)
