"""The record of the sittings that ran the grids into a folder (``reproduce.json``): the command, and
the wall time of each sitting (a grid interrupted and resumed adds one)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

RUN_RECORD = "reproduce.json"
"""The command and wall time of every sitting that ran the grids into a folder (read by ``--skip-runs``):
``{"command": ..., "seconds": <all sittings>, "sittings": [{"started": <ISO time>, "seconds": ...}, ...]}``.
A grid interrupted and resumed (possibly across days) adds a sitting; its wall time is their sum."""


def read_record(out: Path) -> dict[str, Any]:
    """The folder's :data:`RUN_RECORD` (``{}`` where there is none); a record of one sitting written
    before ``sittings`` existed reads as that sitting."""
    path = out / RUN_RECORD
    run = json.loads(path.read_text()) if path.is_file() else {}
    if "seconds" in run and "sittings" not in run:
        run["sittings"] = [{"started": None, "seconds": run["seconds"]}]
    return run


def add_sitting(run: dict[str, Any], command: str, started: str, seconds: float) -> dict[str, Any]:
    """``run`` with one more sitting of ``command``: a sitting of another command starts a new record
    (the folder was refilled otherwise), one of the same command adds its wall time.

    >>> run = add_sitting({}, "python -m alignsearch.reproduce --size full", "2026-12-05T04:00:07", 8000.0)
    >>> add_sitting(run, run["command"], "2026-12-06T06:43:00", 6000.0)["seconds"]
    14000.0
    """
    sittings = list(run.get("sittings", [])) if run.get("command") == command else []
    sittings.append({"started": started, "seconds": seconds})
    return {"command": command, "seconds": sum(s["seconds"] for s in sittings), "sittings": sittings}
