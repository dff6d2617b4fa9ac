"""One alignment run, from typed inputs to typed records: the core under the command line and the API.

    result = run_alignment(models, alignment, run, hardware, out_dir)   # RunModel list, typed settings
    print(records_table(result.records))

It plans once (every setting checked against the models, the tasks or the data; the alignment functions
built once), finds a finished run of the same identity in ``out_dir`` (or moves another run's outputs
aside), trains (resuming from ``out_dir``'s checkpoint), runs the controls, and writes ``results.json``
(last: its presence marks the run complete), ``metrics.csv`` and ``alignment.pt``. ``run_alignment.py``
turns a composed config into these inputs, ``api.align`` its arguments: the same inputs give the same
``results.json``. A zoo model below ``min_task_accuracy`` is refused when the run is planned; a
``verbose`` run says when its alignment starts (``aligning ...``) and ends (``aligned: ...``).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from alignsearch import atomic
from alignsearch.controls import CONTROLS
from alignsearch.engine.metrics import task_accuracy
from alignsearch.engine.progress import duration
from alignsearch.engine.timing import Phases
from alignsearch.engine.trainer import LAST_CHECKPOINT, load_weights_only
from alignsearch.errors import ConfigError
from alignsearch.file_data import FileDataError, no_symlinks_below
from alignsearch.loggers import log_final_records
from alignsearch.models import SequenceModel
from alignsearch.models.definition import cannot_tell
from alignsearch.search.controls import check_controls, run_controls
from alignsearch.search.fit import fit_alignment
from alignsearch.search.planning import plan_run
from alignsearch.search.records import AlignmentRecord
from alignsearch.search.results import RunResults, RunStatus
from alignsearch.search.run_folder import (
    ALIGNMENT,
    METRICS,
    RESULTS,
    RUN,
    RUN_LOCK,
    RUN_OUTPUTS,
    SIMILARITY,
    SIMILARITY_TABLE,
    SUPERSEDED,
)
from alignsearch.search.saved import save_alignment
from alignsearch.search.spec import AlignmentPlan, RunData, RunModel
from alignsearch.seeding import generator
from alignsearch.settings import AlignmentSettings, HardwareSettings, RunSettings, plain_dataclass
from alignsearch.similarity import similarity
from alignsearch.similarity import to_markdown as similarity_markdown

TASK_ACCURACY_SEQUENCES = 1000
"""Sequences each task model's accuracy is measured on, as aligned (a snapshot's, when aligning one)."""
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
"""The columns of ``metrics.csv``: one row per evaluation of a track."""


@dataclass
class RunResult:
    """A finished run: the plan, what ``results.json`` holds (its flat config, records, steps, ...), the
    history and the kept weights."""

    plan: AlignmentPlan
    results: RunResults
    """``results.json``'s content."""
    history: list[dict[str, Any]] = field(default_factory=list)
    """IIA at every evaluation (empty when the run was already done)."""
    state: dict[str, Any] = field(default_factory=dict, repr=False)
    """The kept alignment's weights."""
    status: RunStatus = RunStatus.DONE

    @property
    def config(self) -> dict[str, Any]:
        """The run's settings as one flat dict."""
        return self.results.config

    @property
    def records(self) -> list[AlignmentRecord]:
        """One per direction and variable."""
        return self.results.records

    @property
    def steps(self) -> int:
        return int(self.results.steps or 0)


def run_alignment(
    models: Sequence[RunModel],
    alignment: AlignmentSettings,
    run: RunSettings,
    hardware: HardwareSettings,
    out_dir: Path,
    *,
    data: RunData | None = None,
    loggers: Callable[[dict[str, Any]], list] | None = None,
    similarity_baselines: bool = False,
    verbose: bool = True,
) -> RunResult:
    """Align ``models`` (one: DAS; two: MAS and its family) as ``alignment`` and ``run`` say, in ``out_dir``.

    ``loggers`` makes the run's loggers from its flat config; ``similarity_baselines`` writes RSA, CKA and
    probes of two task models beside the run. A ConfigError for anything that cannot work, before any
    work."""
    plan = plan_run(models, alignment, run, data.source if data is not None else None)
    check_runnable_controls(
        models, alignment.controls
    )  # each registered (the settings were read when it was)
    config = flat_config(plan, run, models, data)
    identity = run_identity(models, alignment, run, data)
    with run_lock(out_dir):
        done = previous_results(out_dir, identity, verbose)
        if done is not None:
            state = load_weights_only(out_dir / ALIGNMENT)["state_dict"]
            return RunResult(plan, done, [], state, RunStatus.ALREADY_DONE)
        return _train(
            plan,
            config,
            identity,
            models,
            run,
            hardware,
            out_dir,
            data,
            loggers,
            similarity_baselines,
            verbose,
        )


@contextmanager
def run_lock(out_dir: Path) -> Iterator[None]:
    """Hold ``out_dir``'s lock while a run works there: a second process on the same folder waits (with a
    line saying for what) and then finds the first one's results, never resuming a run another process
    holds. The operating system releases the lock of a process that dies, so a killed run never blocks.
    A symbolic link inside the folder is refused before anything is written (a write through it could
    land anywhere)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    try:
        no_symlinks_below(out_dir, f"run folder {out_dir}")
    except FileDataError as e:
        raise ConfigError(
            "paths.output_dir",
            str(out_dir),
            f"a run folder with no symbolic link inside ({e.key} is one: replace it with the folder or "
            "file itself, or use another folder)",
        ) from None
    lock = FileLock(out_dir / RUN_LOCK)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        print(
            f"waiting for another process that is running the alignment in {out_dir} (lock {lock.lock_file})",
            flush=True,
        )
        lock.acquire()
    try:
        yield
    finally:
        lock.release()


def _train(
    plan: AlignmentPlan,
    config: dict[str, Any],
    identity: dict[str, Any],
    models: Sequence[RunModel],
    run: RunSettings,
    hardware: HardwareSettings,
    out_dir: Path,
    data: RunData | None,
    loggers: Callable[[dict[str, Any]], list] | None,
    similarity_baselines: bool,
    verbose: bool,
) -> RunResult:
    """Train, control, evaluate and write: :func:`run_alignment` once planned, in a folder it holds and
    that has no finished run of this identity."""
    alignment = plan.settings
    if verbose and (out_dir / "checkpoints" / LAST_CHECKPOINT).is_file():
        print(f"resuming the alignment in {out_dir} from its last checkpoint", flush=True)
    modules = [m.model for m in models]
    phases = Phases()
    if len(models) == 2 and similarity_baselines and data is None:
        with phases("similarity"):
            write_similarity(plan, modules, run.run_seed(), out_dir, verbose)
    run_loggers = loggers(config) if loggers is not None else False
    if verbose:
        print(aligning_line(plan), flush=True)
    out = fit_alignment(plan, modules, out_dir, seed=run.run_seed(), hardware=hardware, loggers=run_loggers)
    for phase, seconds in out.seconds.items():
        phases.add(phase, seconds)
    if verbose:
        print(aligned_line(out.records, out.steps, sum(out.seconds.values())), flush=True)
    records = out.records
    if alignment.controls:
        with phases("controls"):
            scores = run_controls(
                plan, modules, alignment.controls, out_dir, seed=run.run_seed(), hardware=hardware,
                untrained=lambda: untrained_copies(models, run.run_seed()), trained=out.state, verbose=verbose,
            )  # fmt: skip
        records = [r.with_controls(scores) for r in records]  # each control's IIA and divergence
    with phases("task_accuracy"):
        accuracies = None if data is not None else task_accuracies(plan, modules, run.seed)
    results = RunResults(
        config=config,
        records=records,
        steps=out.steps,
        best_step=out.best_step,
        train_seconds=out.train_seconds,
        learned_units=out.learned_units,
        task_accuracy=accuracies,
        identity=identity,
        seconds=phases.rounded(),
        data=data_summary(data, plan, run) if data is not None else None,
    )
    save_alignment(out_dir / ALIGNMENT, plan, out.state, config)
    atomic.write_text(out_dir / METRICS, history_csv(out.history, [m.name for m in plan.members]))
    written = results.to_json()
    if isinstance(run_loggers, list) and run_loggers:  # in the W&B run (and checked there) before the run is
        log_final_records(run_loggers, written["records"])  # complete: a failure leaves it to run again
    atomic.write_json(out_dir / RESULTS, written)  # written last: its presence marks the run complete
    return RunResult(plan, results, out.history, out.state)


def aligning_line(plan: AlignmentPlan) -> str:
    """The line that starts an alignment's training: what is aligned, where, in which models, and how
    (``n_units`` as ``results.json``'s flat config gives it):
    ``aligning count at layer.0 of multiobject/gru/seed0 (das, 16 units, up to 1000 steps)``."""
    where = " and ".join(f"{m.site} of {m.name}" for m in plan.members)
    units = plan.sizes[0] if len(set(plan.sizes)) == 1 else list(plan.sizes)
    a = plan.settings
    return (
        f"aligning {', '.join(plan.named_variables) or 'the site'} at {where} "
        f"({a.name}, {units} units, up to {a.max_steps} steps)"
    )


def aligned_line(records: Sequence[AlignmentRecord], steps: int, seconds: float) -> str:
    """The line that ends an alignment's training, before its controls and its table: the validation IIA
    (the mean over the trained directions and variables where there are several: ``results.json``'s
    headline), steps and time, pairs and evaluation included:
    ``aligned: validation IIA 0.981 after 300 steps (52.3 s)``."""
    trained = [r.iia for r in records if r.trained]
    if len(trained) == 1:
        iia = f"validation IIA {trained[0]:.3f} "
    elif trained:
        iia = f"mean validation IIA {sum(trained) / len(trained):.3f} over {len(trained)} trained records "
    else:
        iia = ""
    return f"aligned: {iia}after {steps} steps ({duration(seconds)})"


def data_summary(data: RunData, plan: AlignmentPlan, run: RunSettings) -> dict[str, Any]:
    """What ``results.json`` says of the run's data: its summary as read, and with a ``position`` the pairs
    per split that the run used (those whose prompts have the position) beside it."""
    pairs = getattr(plan.data, "data", None)
    if run.position is None or pairs is None or not hasattr(pairs, "splits"):
        return data.summary
    return {
        **data.summary,
        "position": str(run.position),
        "pairs_at_position": {split: len(p) for split, p in pairs.splits.items()},
    }


def check_runnable_controls(
    models: Sequence[RunModel], controls: Sequence[str], key: str = "alignment.controls"
) -> None:
    """A ConfigError keyed ``key`` before any work for a control that is not registered, or that needs an
    untrained form of a model that has none (a model brought from Python without one)."""
    check_controls(list(controls), key)
    needing = [c for c in controls if CONTROLS[c].needs_untrained]
    for m in models:
        if needing and m.untrained is None:
            raise ConfigError(
                key, list(controls), f"controls without {', '.join(needing)} ({m.name} has no untrained form)"
            )


def untrained_copies(models: Sequence[RunModel], seed: int) -> list[SequenceModel]:
    """Each model's untrained copy, for the controls that need one (refused before any work where a model
    has none: :func:`check_runnable_controls`)."""
    copies = []
    for model in models:
        assert model.untrained is not None
        copies.append(model.untrained(seed))
    return copies


def task_accuracies(plan: AlignmentPlan, models: list, seed: int) -> list[float]:
    """Each task model's trial accuracy on its task, as aligned."""
    return [
        task_accuracy(model, member.task, TASK_ACCURACY_SEQUENCES, generator(seed, "task-accuracy"))
        for model, member in zip(models, plan.members, strict=True)
    ]


def flat_config(
    plan: AlignmentPlan, run: RunSettings, models: Sequence[RunModel], data: RunData | None
) -> dict[str, Any]:
    """The settings of a run as one flat dict (what dashboards and reports pivot on): the models' labels
    (the partner's with ``partner_``), the site, the sizes and the alignment settings that matter most."""
    a = plan.settings
    first, labels = plan.members[0], models[0].labels
    flat = {
        "task": labels.get("task"),
        "model": labels.get("model"),
        "alignment": a.name,
        "seed": run.seed,
        **({"alignment_seed": run.alignment_seed} if run.alignment_seed is not None else {}),
        "layer": run.layer,
        "site": first.site,
        "n_units": plan.sizes[0] if len(set(plan.sizes)) == 1 else plan.sizes,
        "variables": list(plan.variables),
        "causal_model": first.causal_model.name if first.causal_model else None,
        "stepwise": bool(a.stepwise),
        "lr": float(a.lr),
        "batch_size": int(a.batch_size),
        "max_steps": int(a.max_steps),
        "function": a.function["_target_"].rsplit(".", 1)[-1],
        "layout": a.layout["_target_"].rsplit(".", 1)[-1],
        "snapshot": run.snapshot,
        "cl_weight": float(a.cl_weight),
        "cl_space": a.cl_space,
    }
    if run.position is not None:  # only where set: the flat config of other runs stays as it was
        flat["position"] = run.position
    if data is not None:  # text: the data names the "task", the models name themselves
        flat["data"] = data.label
        flat["model"] = first.name
    if len(plan.members) > 1:
        partner, partner_labels = plan.members[1], models[1].labels
        flat |= {
            "partner_model": partner.name if data is not None else partner_labels.get("model"),
            "partner_task": partner_labels.get("task", flat["task"]),
            "partner_seed": partner_labels.get("seed", run.partner_seed()),
            "partner_site": partner.site,
            "partner_causal_model": partner.causal_model.name if partner.causal_model else None,
            "partner_variables": list(partner.variables),
            "directions": [f"{s}>{t}" for s, t in plan.directions],
            "cl_directions": [f"{s}>{t}" for s, t in plan.cl_directions],
            "cl_eps": a.cl_eps,
        }
    for i, model in enumerate(models):
        named = {k: v for k, v in model.labels.items() if k not in ("task", "model", "seed")}
        flat |= {("partner_" if i else "") + key: value for key, value in named.items()}
    return flat


def run_identity(
    models: Sequence[RunModel], alignment: AlignmentSettings, run: RunSettings, data: RunData | None
) -> dict[str, Any]:
    """What a run's results belong to: the weights of every aligned model (by content), the data, and a
    digest of the settings that change results (not hardware, loggers, paths, or how fast it computes)."""
    settings = {
        "alignment": {
            k: v for k, v in plain_dataclass(alignment).items() if k not in alignment.not_identity()
        },
        "run": run.identity(),
        "models": [m.labels for m in models],
        "data": data.settings if data is not None else None,
    }
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()
    return {
        "models": [m.identity() for m in models],
        **(data.identity if data is not None else {}),
        "settings_sha256": digest,
    }


def previous_results(out_dir: Path, identity: dict[str, Any], verbose: bool = True) -> RunResults | None:
    """The finished results in ``out_dir`` if they belong to ``identity``; results or checkpoints of
    other models or settings, and a ``results.json`` that cannot be read, are moved to
    ``out_dir/superseded/<n>/`` (nothing is deleted), and ``run.json`` records the identity the folder
    now works for."""
    recorded, unreadable = None, None
    if (out_dir / RESULTS).is_file():
        try:
            results = RunResults.read(out_dir / RESULTS)
            recorded = results.identity
        except FileDataError as e:
            results, unreadable = None, e
        if results is not None and recorded == identity and (out_dir / ALIGNMENT).is_file():
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
        if verbose or unseen_change(recorded, identity):  # said even in a quiet (API) run
            held = (
                f"an unreadable {RESULTS} ({unreadable})"
                if unreadable
                else describe_change(recorded, identity)
            )
            print(
                f"{out_dir} held results or checkpoints of {held}; moved them to {target} and running again",
                flush=True,
            )
    atomic.write_json(out_dir / RUN, identity)
    return None


def unseen_change(old: Any, new: dict[str, Any]) -> bool:
    """Whether a model of ``new`` is one the caller could take for the one ``old`` recorded: the same
    weights with another definition, or a model whose code it cannot read (it cannot tell)."""
    if not isinstance(old, dict) or not isinstance(old.get("models"), list):
        return False
    for was, now in zip(old["models"], new["models"], strict=False):
        same_weights = isinstance(was, dict) and was.get("weights_sha256") == now["weights_sha256"]
        if was != now and (same_weights or cannot_tell(now.get("definition_sha256"))):
            return True
    return False


def describe_change(old: Any, new: dict[str, Any]) -> str:
    """Which part of a run's identity changed, in words."""
    if not isinstance(old, dict) or "models" not in old:
        return "a run that recorded no model identity"
    for i, (was, now) in enumerate(zip(old["models"], new["models"], strict=False)):
        if was == now:
            continue
        unreadable = cannot_tell(now.get("definition_sha256"))
        if unreadable:
            return (
                f"model {i} ({was.get('name')}), or another: it cannot tell whether {now['name']} is the same "
                f"model, as the source of its code ({unreadable}) cannot be read (define its class in a file "
                "or a notebook cell to have its results found again)"
            )
        if isinstance(was, dict) and was.get("weights_sha256") == now.get("weights_sha256"):
            return (
                f"another model {i} ({was.get('name')} with the same weights as {now['name']} now, but another "
                "definition: its classes' code, attributes or buffers)"
            )
        return f"another model {i} ({was.get('name')} with other weights than {now['name']} now)"
    if len(old["models"]) != len(new["models"]):
        return "another set of models"
    return "other settings"


def write_similarity(plan: AlignmentPlan, models: list, seed: int, out_dir: Path, verbose: bool) -> None:
    """RSA, CKA and probes of the two models (``similarity.json``, ``similarity.md``), unless present."""
    if (out_dir / SIMILARITY).is_file():
        return
    names = [m.name for m in plan.members]
    sites = [m.site for m in plan.members]
    causal_models = []
    for m in plan.members:
        assert m.causal_model is not None  # task models: similarity is measured without data
        causal_models.append(m.causal_model)
    measures = similarity(
        [m.task for m in plan.members],
        models,
        sites,
        causal_models,
        names,
        seed=seed,
    )
    atomic.write_text(out_dir / SIMILARITY_TABLE, similarity_markdown(measures, names, sites))
    atomic.write_json(out_dir / SIMILARITY, {"models": names, "sites": sites, "measures": measures})
    if verbose:
        headline = ", ".join(f"{k} {measures[k]:.3f}" for k in ("cka_linear", "cka_rbf", "rsa_cos_spearman"))
        print(f"similarity ({SIMILARITY}): {headline}", flush=True)


def history_csv(history: list[dict[str, Any]], model_names: list[str]) -> str:
    """The evaluation history as CSV, one row per (step, split, track), models by their names."""
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
