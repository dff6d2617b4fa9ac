"""Sweeps that survive reality: a line per finished job, failures recorded, a summary in the sweep folder.

Registered as a Hydra callback (``hydra.callbacks.sweep`` in the entry points' configs). In a multirun:

* each finished job prints one line (``done``, ``already done``, ``failed`` or ``interrupted``, its
  overrides, and its mean IIA or its error) and appends a row to ``<sweep>/summary.csv`` (under a file
  lock, so parallel jobs can share it);
* a failed job keeps its traceback in ``<job folder>/error.txt`` and does not stop the other jobs; a job
  a signal ended (``interrupted``) keeps the step and checkpoint it stopped at there;
* running the same sweep again (``hydra.sweep.dir=<sweep>``) skips jobs whose ``results.json`` is
  complete and reruns the others.
"""

from __future__ import annotations

import csv
import io
import traceback
from pathlib import Path
from typing import Any

from filelock import FileLock
from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig

SUMMARY = "summary.csv"
ERROR = "error.txt"
COLUMNS = ("job", "status", "overrides", "iia", "error")
FAILED_STATUS, DONE, ALREADY_DONE, INTERRUPTED_STATUS = "failed", "done", "already done", "interrupted"
UNFINISHED = (FAILED_STATUS, INTERRUPTED_STATUS)
"""The statuses of jobs without results (a rerun of the sweep runs them again)."""
FAILED: list[str] = []
"""Messages of this process's sweeps that had failed jobs."""


def in_multirun() -> bool:
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def record_failure(error: BaseException) -> dict[str, Any]:
    """Write the traceback into the job's folder; return what the job hands back to the sweep."""
    out_dir = Path(HydraConfig.get().runtime.output_dir)
    text = "".join(traceback.format_exception(type(error), error, error.__traceback__))
    (out_dir / ERROR).write_text(text)
    return {"status": FAILED_STATUS, "error": f"{type(error).__name__}: {error}".splitlines()[0]}


def record_interruption(stopped: BaseException) -> dict[str, Any]:
    """Write where a signal stopped the job (its step, its checkpoint, how to resume) into the job's
    folder; return what the job hands back to the sweep."""
    out_dir = Path(HydraConfig.get().runtime.output_dir)
    (out_dir / ERROR).write_text(f"{stopped}\n")
    return {"status": INTERRUPTED_STATUS, "error": str(stopped)}


def headline_iia(result: dict[str, Any]) -> float | None:
    """Mean validation IIA over a result's trained records (task models: validation trial accuracy)."""
    records = [r for r in result.get("records", []) if r.get("trained", True)]
    if records:
        return sum(r["iia"] for r in records) / len(records)
    return result.get("val_trial_acc")


class SweepProgress(Callback):
    """Prints and records each finished job of a sweep; see the module docstring."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        sweep = config.hydra.sweep.dir
        print(
            f"sweep folder: {sweep} (an interrupted sweep resumes with hydra.sweep.dir={sweep})", flush=True
        )

    def on_job_end(self, config: DictConfig, job_return: Any, **kwargs: Any) -> None:
        if not in_multirun():
            return
        hydra = HydraConfig.get()
        sweep = Path(hydra.sweep.dir)
        result = job_return._return_value  # the job's own dict (or the exception Hydra caught)
        if isinstance(result, BaseException):
            result = {"status": FAILED_STATUS, "error": f"{type(result).__name__}: {result}"}
        result = result if isinstance(result, dict) else {}
        status = result.get("status", DONE)
        iia = headline_iia(result) if status not in UNFINISHED else None
        keys = swept_keys(sweep)
        shown = [
            o for o in hydra.overrides.task if o.split("=", 1)[0].lstrip("+~") in keys
        ] or hydra.overrides.task
        row = {
            "job": Path(hydra.runtime.output_dir).name,
            "status": status,
            "overrides": " ".join(shown),
            "iia": "" if iia is None else f"{iia:.4f}",
            "error": result.get("error", ""),
        }
        detail = f"IIA {iia:.3f}" if iia is not None else row["error"]
        print(f"[job {hydra.job.num}] {status}: {row['overrides']}: {detail}", flush=True)
        sweep.mkdir(parents=True, exist_ok=True)
        with FileLock(sweep / f"{SUMMARY}.lock"):
            new = not (sweep / SUMMARY).exists()
            buffer = io.StringIO()
            writer = csv.DictWriter(buffer, COLUMNS)
            if new:
                writer.writeheader()
            writer.writerow(row)
            with (sweep / SUMMARY).open("a") as f:
                f.write(buffer.getvalue())

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep = Path(config.hydra.sweep.dir)
        latest = latest_rows(sweep)
        counts = {
            s: sum(r["status"] == s for r in latest.values())
            for s in (DONE, ALREADY_DONE, FAILED_STATUS, INTERRUPTED_STATUS)
        }
        print(
            f"sweep finished: {counts[DONE]} done, {counts[ALREADY_DONE]} already done, "
            f"{counts[FAILED_STATUS]} failed, {counts[INTERRUPTED_STATUS]} interrupted ({sweep / SUMMARY})",
            flush=True,
        )
        failed = failed_jobs(sweep)
        if failed:  # the entry point exits non-zero with this line once the sweep is over
            FAILED.append(f"{len(failed)} job(s) failed: see {Path(config.hydra.sweep.dir) / SUMMARY}")


def swept_keys(sweep: Path) -> set[str]:
    """The keys a sweep varies, read from its ``multirun.yaml``: on the command line (``seed`` in
    ``-m seed=1,2 model=gru``) or in a preset's ``hydra.sweeper.params``. Empty without a readable record."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from omegaconf import OmegaConf

    parser = OverridesParser.create()
    try:
        record = OmegaConf.load(sweep / "multirun.yaml").hydra
        lines = [str(line) for line in record.overrides.task]
        params = record.sweeper.get("params") or {}
    except Exception:  # noqa: BLE001 - no readable sweep record
        return set()
    keys: set[str] = set()

    def add_if_swept(line: str) -> None:
        try:
            (override,) = parser.parse_overrides([line])
        except Exception:  # noqa: BLE001 - not an override this can read: not counted
            return
        if override.is_sweep_override():
            keys.add(override.key_or_group)

    for line in lines:
        add_if_swept(line)
    for key in params:
        try:
            value = params[key]
        except Exception:  # noqa: BLE001 - a value that does not resolve here: counted as swept
            keys.add(str(key))
            continue
        add_if_swept(f"{key}={value}")
    return keys


def latest_rows(sweep: Path) -> dict[str, dict[str, str]]:
    """Each job's latest row in the sweep's summary (a rerun appends new rows)."""
    if not (sweep / SUMMARY).is_file():
        return {}
    return {row["job"]: row for row in csv.DictReader((sweep / SUMMARY).open())}


def failed_jobs(sweep: Path) -> list[str]:
    """Jobs whose latest row in the sweep's summary says they failed."""
    return [job for job, row in latest_rows(sweep).items() if row["status"] == FAILED_STATUS]
