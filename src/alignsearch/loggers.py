"""Experiment loggers that work without a network."""

from __future__ import annotations

import importlib
import json
import netrc
import os
import struct
import time
from pathlib import Path
from typing import Any


def wandb_credentials_present() -> bool:
    """True when W&B could log online: an API key in the environment or in ~/.netrc."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc(Path.home() / ".netrc").authenticators("api.wandb.ai") is not None
    except (FileNotFoundError, netrc.NetrcParseError):
        return False


def wandb_logger(run_config: dict[str, Any] | None = None, **kwargs: Any):
    """A Lightning ``WandbLogger``; offline (say so in one line) unless W&B can log online.

    ``WANDB_MODE`` wins when set. Offline runs are uploaded later with ``wandb sync <run folder>``.
    ``run_config`` (a flat dict of the run's choices) becomes the run's W&B config, so that dashboards can
    group and filter by seed, layer, n_units, variable, ...; ``group``, ``job_type``, ``tags`` and the rest
    go to ``wandb.init``.
    """
    import wandb
    from lightning.pytorch.loggers import WandbLogger

    mode = os.environ.get("WANDB_MODE")
    offline = mode in ("offline", "dryrun") if mode else not wandb_credentials_present()
    where = Path(kwargs.get("save_dir", "."))
    if offline:
        print(f"wandb: logging offline to {where / 'wandb'} (upload later with `wandb sync`)", flush=True)
    where.mkdir(parents=True, exist_ok=True)
    logger = WandbLogger(offline=offline, config=run_config, settings=wandb.Settings(silent=True), **kwargs)
    # Lightning hands wandb.init ``anonymous=None`` even when unset; recent wandb warns about any value of
    # that deprecated setting (it has no effect), so it is left out. Offline runs need no credentials.
    init = getattr(logger, "_wandb_init", {})
    if "anonymous" in init and init["anonymous"] is None:
        del init["anonymous"]
    return logger


DIVERGENCE_METRICS = ("divergence", "divergence_floor", "divergence_top", "divergence_top_floor")
"""A record's divergence measures (``alignsearch.search.records.DIVERGENCE_KEYS``), logged as summaries."""
INTERVAL_METRICS = (
    "n_pairs", "iia_low", "iia_high", "token_iia_low", "token_iia_high", "iia_step0_low", "iia_step0_high",
    "n_pairs_heldout", "iia_heldout_low", "iia_heldout_high", "n_pairs_test", "iia_test_low", "iia_test_high",
)  # fmt: skip
"""Each IIA's pairs and 95% interval (``alignsearch.search.records.INTERVAL_FIELDS``), logged as summaries."""
CONTROL_KEYS = (
    "iia_control_",
    "n_pairs_control_",
    "iia_low_control_",
    "iia_high_control_",
    "divergence_control_",
)
"""How a record's JSON form names each control's IIA, its trials and interval, and its divergence
(``alignsearch.search.records``'s ``CONTROL_PREFIX``, ``CONTROL_INTERVAL_PREFIXES`` and
``CONTROL_DIVERGENCE_PREFIX``), logged as summaries too."""
SUMMARY_METRICS = (
    "iia", "iia_heldout", "iia_test", "token_iia", "iia_step0", *DIVERGENCE_METRICS, *INTERVAL_METRICS,
)  # fmt: skip
"""The measures of a record logged as W&B summaries (with each control's IIA, interval and divergence)."""


def summary_values(records: list[dict[str, Any]]) -> dict[str, Any]:
    """The W&B summary values of an alignment's final records (their JSON form):
    ``final/<direction>/<variable>/<measure>`` for each measure a record has, the controls' included
    (``iia_control_<name>``, ``divergence_control_<name>``).

    >>> summary_values([{"direction": "0>0", "variable": "count", "iia": 0.9, "iia_test": None,
    ...                  "iia_control_shuffled": 0.1, "divergence_control_shuffled": 0.4}])
    {'final/0>0/count/iia': 0.9, 'final/0>0/count/iia_control_shuffled': 0.1, 'final/0>0/count/divergence_control_shuffled': 0.4}
    """
    out: dict[str, Any] = {}
    for r in records:
        keys = [*SUMMARY_METRICS, *(k for k in r if k.startswith(CONTROL_KEYS))]
        out |= {f"final/{r['direction']}/{r['variable']}/{k}": r[k] for k in keys if r.get(k) is not None}
    return out


WANDB_FLUSH_SECONDS = 120.0
"""How long a finished offline W&B run may take to be written in full. ``run.finish()`` returns once W&B's
service (a process of its own) has handled the run's last records, but the service writes the last block
of the run's file only when it closes the run, after ``finish`` has returned; on a loaded machine that
can take seconds, and a reader of the file in between finds it without its final records."""


class WandbRecordsError(RuntimeError):
    """A W&B run that does not hold an alignment's final records once finished."""


def log_final_records(
    loggers: list, records: list[dict[str, Any]], *, flush_seconds: float = WANDB_FLUSH_SECONDS
) -> None:
    """Put an alignment's final records into each W&B run (summary values and a ``records`` table) and
    finish it. An offline run is then read back from its file: this returns once the file holds the run's
    end and every final summary key, and raises :class:`WandbRecordsError` when it does not within
    ``flush_seconds`` (the run's job fails rather than say it is done)."""
    from lightning.pytorch.loggers import WandbLogger

    for logger in loggers:
        if not isinstance(logger, WandbLogger):
            continue
        import wandb  # only where a W&B run exists

        run = logger.experiment
        summary = summary_values(records)
        run.summary.update(summary)
        columns = sorted({k for r in records for k in r})
        run.log(
            {"records": wandb.Table(columns=[*columns], data=[[r.get(c) for c in columns] for r in records])}
        )
        settings = run.settings
        offline = settings.mode in ("offline", "dryrun")
        run_file = Path(settings.sync_file)
        run.finish()
        if offline:
            check_offline_run(run_file, set(summary), flush_seconds)


def check_offline_run(run_file: Path, keys: set[str], seconds: float = WANDB_FLUSH_SECONDS) -> None:
    """Wait until the offline W&B run file ``run_file`` holds the run's end (its exit record), at most
    ``seconds``; then check that its summary holds every key of ``keys``. Raises :class:`WandbRecordsError`
    otherwise, naming the file and what it lacks."""
    deadline = time.monotonic() + seconds
    pause = 0.05
    while True:
        found = offline_run_summary(run_file)
        if found is not None:
            break
        if time.monotonic() >= deadline:
            raise WandbRecordsError(
                f"the offline W&B run {run_file} was not written in full within {seconds:g} s of finishing "
                "(W&B's service writes it when it closes the run): its final records may be missing"
            )
        time.sleep(pause)
        pause = min(pause * 2, 1.0)
    missing = sorted(keys - set(found))
    if missing:
        raise WandbRecordsError(
            f"the offline W&B run {run_file} ended without {len(missing)} of the alignment's final summary "
            f"values: {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}"
        )


RUN_FILE_BLOCK = 32768
"""An offline W&B run file (``run-<id>.wandb``) is a LevelDB-style log: a 7-byte header (``:W&B``, magic,
version), then blocks of this size holding chunks (CRC, length, type, data) of protobuf records."""
RUN_FILE_HEADER = 7
CHUNK_HEADER = 7
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def run_file_records(path: Path) -> list[bytes]:
    """The raw records of an offline W&B run file, chunks joined, as far as the file has been written (a
    chunk cut off by the end of the file is left out).

    >>> import tempfile
    >>> chunk = lambda data, kind: struct.pack("<IHB", 0, len(data), kind) + data
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = Path(folder) / "run-x.wandb"
    ...     _ = path.write_bytes(b":W&B" + bytes(3) + chunk(b"one", FULL) + chunk(b"tw", FIRST)
    ...                          + chunk(b"o", LAST) + chunk(b"cut off", FULL)[:-2])
    ...     run_file_records(path)
    [b'one', b'two']
    """
    data = path.read_bytes() if path.is_file() else b""
    if data[:4] != b":W&B":
        return []
    out, pending, pos = [], b"", RUN_FILE_HEADER
    while pos + CHUNK_HEADER <= len(data):
        left = RUN_FILE_BLOCK - pos % RUN_FILE_BLOCK
        if left < CHUNK_HEADER:  # the zeros that pad a block's end
            pos += left
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + CHUNK_HEADER])
        end = pos + CHUNK_HEADER + length
        if end > len(data) or (length == 0 and kind == 0):  # not written yet
            break
        chunk = data[pos + CHUNK_HEADER : end]
        pos = end
        if kind == FULL:
            out.append(chunk)
        elif kind == FIRST:
            pending = chunk
        elif kind == MIDDLE:
            pending += chunk
        elif kind == LAST:
            out.append(pending + chunk)
    return out


def offline_run_summary(path: Path) -> dict[str, Any] | None:
    """The summary values (as JSON values) of an offline W&B run file that holds the run's end (its exit
    record); None while the file does not (W&B's service is still writing it, or it never finished)."""
    pb = importlib.import_module("wandb.proto.wandb_internal_pb2")  # generated code: no types for mypy
    decode_error = importlib.import_module("google.protobuf.message").DecodeError

    summary: dict[str, Any] = {}
    ended = False
    for raw in run_file_records(path):
        record = pb.Record()
        try:
            record.ParseFromString(raw)
        except decode_error:
            return None
        kind = record.WhichOneof("record_type")
        if kind == "summary":
            for item in record.summary.update:
                summary[item.key or "/".join(item.nested_key)] = json.loads(item.value_json)
        elif kind == "exit":
            ended = True
    return summary if ended else None
