"""``run_alignment.py``: align a causal variable in a zoo model and write ``results.json``."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig
from rich.console import Console
from rich.table import Table

from alignsearch import atomic, zoo
from alignsearch.cli.checks import check_run_config, model_request
from alignsearch.cli.plan import flat_config, member_configs, named_settings
from alignsearch.cli.run_folder import METRICS, RESULTS, RUN, RUN_OUTPUTS, SIMILARITY, SUPERSEDED
from alignsearch.cli.sweep import ALREADY_DONE
from alignsearch.cli.text_run import is_text_run, prepare_text_run, untrained_copies
from alignsearch.cli.train_task_model import make_loggers
from alignsearch.engine.metrics import task_accuracy
from alignsearch.engine.trainer import LAST_CHECKPOINT
from alignsearch.loggers import log_final_records
from alignsearch.search.controls import run_controls, with_controls
from alignsearch.search.fit import fit_alignment
from alignsearch.search.saved import save_alignment
from alignsearch.search.spec import AlignmentPlan
from alignsearch.seeding import generator
from alignsearch.settings import AlignmentSettings, HardwareSettings, plain
from alignsearch.similarity import similarity
from alignsearch.similarity import to_markdown as similarity_markdown

NOT_IDENTITY = ("hardware", "logger", "paths", "auto_train", "training", "ckpt_path")
"""Settings that do not change a run's results (the models' training is identified by their weights)."""
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
    choices = dict(HydraConfig.get().runtime.choices) if HydraConfig.initialized() else {}
    data, named = None, {}
    if is_text_run(cfg):  # language models from their folders, pairs from the data
        text = prepare_text_run(cfg, out_dir)
        models, plan, data = text.models, text.plan, text.data
        identity = {**text.identity, "settings_sha256": settings_digest(cfg)}
        choices |= text.choices
        named = text.named
    else:
        cfgs, requests, plan = check_run_config(cfg)  # every setting checked before any work
        entries = [  # each missing model trained once, under its lock
            zoo.get_or_train(req, snapshot=cfg.snapshot) for req in requests
        ]
        identity = run_identity(cfg, entries)
        models = [e.model for e in entries]
        named = named_settings([(r.task, r.model, r.training) for r in requests])
    done = previous_results(out_dir, identity)
    if done is not None:
        show(done, f"already done: {out_dir / RESULTS}")
        return {**done, "status": ALREADY_DONE}
    if (out_dir / "checkpoints" / LAST_CHECKPOINT).is_file():
        print(f"resuming the alignment in {out_dir} from its last checkpoint", flush=True)
    if len(models) == 2 and cfg.get("similarity", True) and data is None:
        write_similarity(plan, models, int(cfg.seed), out_dir)
    config = flat_config(cfg, plan, choices) | named
    loggers = make_loggers(
        cfg,
        group=f"{config['task']}/{config['model']}/{config['alignment']}",
        job_type=f"layer{config['layer']}",
        tags=[str(config[k]) for k in ("task", "model", "alignment", "causal_model") if config[k] is not None]
        + list(config["variables"]),
        run_config=config,
    )
    hardware = HardwareSettings.parse(cfg.hardware)
    out = fit_alignment(plan, models, out_dir, seed=int(cfg.seed), hardware=hardware, loggers=loggers)
    records = out.records
    if plan.settings.controls:
        scores = run_controls(
            plan, models, plan.settings.controls, out_dir, seed=int(cfg.seed), hardware=hardware,
            untrained=untrained_models(cfg, models),
        )  # fmt: skip
        records = with_controls(records, scores)
    results = {
        "config": config,
        "steps": out.steps,
        "best_step": out.best_step,
        "train_seconds": out.train_seconds,
        "learned_units": out.learned_units,
        "task_accuracy": None
        if data is not None
        else [  # of each model as aligned (a snapshot's accuracy when aligning one)
            task_accuracy(model, member.task, 1000, generator(int(cfg.seed), "task-accuracy"))
            for model, member in zip(models, plan.members, strict=True)
        ],
        "records": records,
        "identity": identity,
    }
    if data is not None:
        results["data"] = data
    save_alignment(out_dir / "alignment.pt", plan, out.state, results["config"])
    atomic.write_text(out_dir / METRICS, history_csv(out.history, [m.name for m in plan.members]))
    atomic.write_json(out_dir / RESULTS, results)  # written last: its presence marks the run complete
    log_final_records(loggers, results["records"])
    show(results, f"results: {out_dir / RESULTS}")
    return results


def untrained_models(cfg: DictConfig, models: list) -> Callable[[], list]:
    """The ``untrained`` control's models: each model as initialised before training (task models: built
    from their settings and seed, as the zoo builds them; language models: fresh weights)."""
    if is_text_run(cfg):
        return lambda: untrained_copies(models, int(cfg.seed))
    return lambda: [model_request(c).model for c in member_configs(cfg)]


def run_identity(cfg: DictConfig, entries: list[zoo.ZooEntry]) -> dict[str, Any]:
    """What a run's results belong to: the weights of every aligned model (by content) and a digest of
    the run's settings (everything but hardware, loggers, paths and how missing models are trained)."""
    return {
        "models": [{"name": zoo.short_name(e.path), "weights_sha256": e.weights_sha256} for e in entries],
        "settings_sha256": settings_digest(cfg),
    }


def settings_digest(cfg: DictConfig) -> str:
    """A digest of the settings that change a run's results (not hardware, loggers, paths, ...)."""
    settings = {k: plain(cfg[k]) for k in cfg if k not in NOT_IDENTITY}
    for key in AlignmentSettings.parse(cfg.alignment).not_identity():
        settings["alignment"].pop(key, None)
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()


def previous_results(out_dir: Path, identity: dict[str, Any]) -> dict[str, Any] | None:
    """The finished results in ``out_dir`` if they belong to ``identity``; results or checkpoints of
    other models or settings are moved to ``out_dir/superseded/<n>/`` (nothing is deleted), and
    ``run.json`` records the identity the folder now works for."""
    recorded = None
    if (out_dir / RESULTS).is_file():
        try:
            results = json.loads((out_dir / RESULTS).read_text())
            recorded = results.get("identity")
        except (ValueError, AttributeError):
            results = None
        if recorded == identity:
            return results
    elif (out_dir / RUN).is_file():
        try:
            recorded = json.loads((out_dir / RUN).read_text())
        except ValueError:
            recorded = None
    stale = [p for p in (*RUN_OUTPUTS, RUN) if (out_dir / p).exists()]
    if recorded != identity and any(p != RUN for p in stale):
        index = 1 + len(list((out_dir / SUPERSEDED).glob("*")))
        target = out_dir / SUPERSEDED / str(index)
        target.mkdir(parents=True)
        for name in stale:
            os.replace(out_dir / name, target / name)
        print(
            f"{out_dir} held results or checkpoints of {describe_change(recorded, identity)}; "
            f"moved them to {target} and running again",
            flush=True,
        )
    atomic.write_json(out_dir / RUN, identity)
    return None


def describe_change(old: Any, new: dict[str, Any]) -> str:
    """Which part of a run's identity changed, in words."""
    if not isinstance(old, dict) or "models" not in old:
        return "a run that recorded no model identity"
    for i, (was, now) in enumerate(zip(old["models"], new["models"], strict=False)):
        if was != now:
            return f"another model {i} ({was.get('name')} with other weights than {now['name']} now)"
    if len(old["models"]) != len(new["models"]):
        return "another set of models"
    return "other settings"


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
    atomic.write_text(out_dir / "similarity.md", similarity_markdown(measures, names, sites))
    atomic.write_json(out_dir / SIMILARITY, {"models": names, "sites": sites, "measures": measures})
    headline = ", ".join(f"{k} {measures[k]:.3f}" for k in ("cka_linear", "cka_rbf", "rsa_cos_spearman"))
    print(f"similarity ({SIMILARITY}): {headline}", flush=True)


def history_csv(history: list[dict[str, Any]], model_names: list[str]) -> str:
    """The evaluation history as CSV, one row per (step, split, track), models by their zoo names."""
    buffer = io.StringIO()
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
    controls = (
        [k for k in results["records"][0] if k.startswith("iia_control_")] if results["records"] else []
    )
    for column in (
        "direction",
        "variable",
        "trained by",
        "IIA val",
        "held-out",
        "test",
        "token IIA",
        "step 0",
        *(f"control: {k.removeprefix('iia_control_')}" for k in controls),
    ):
        table.add_column(column)
    for r in results["records"]:
        cells = [r["iia"], r["iia_heldout"], r["iia_test"], r["token_iia"], r["iia_step0"]]
        cells += [r.get(k) for k in controls]
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


if __name__ == "__main__":  # python -m alignsearch.cli.run_alignment <overrides>
    from alignsearch.cli.commands import align

    align()
