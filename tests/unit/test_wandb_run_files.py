"""An offline W&B run file is checked once its run has finished: the job waits until W&B's service has
written the run's end (it does so after ``run.finish()`` has returned), then finds every final summary key
in it, or fails naming what is missing (issue 30). Files written here as the service writes them: a
LevelDB-style log of protobuf records. The real run: ``integration/test_wandb.py``."""

from __future__ import annotations

import struct
import threading
import time

import pytest

from alignsearch.loggers import (
    FULL,
    RUN_FILE_BLOCK,
    WandbRecordsError,
    check_offline_run,
    offline_run_summary,
    run_file_records,
)

pb = pytest.importorskip("wandb.proto.wandb_internal_pb2")

FINAL = {"final/0>0/count/iia": 0.96875, "final/0>0/count/iia_test": 0.9375}


def summary_record(values: dict[str, float]) -> bytes:
    record = pb.Record()
    for key, value in values.items():
        record.summary.update.add(key=key, value_json=repr(value))
    return record.SerializeToString()


def exit_record() -> bytes:
    record = pb.Record()
    record.exit.exit_code = 0
    return record.SerializeToString()


def log(*raw: bytes) -> bytes:
    """Records as whole chunks after the file's header (they fit one block here)."""
    out = b":W&B" + struct.pack("<HB", 0xBEE1, 0)
    for data in raw:
        out += struct.pack("<IHB", 0, len(data), FULL) + data
    assert len(out) < RUN_FILE_BLOCK
    return out


def test_a_finished_run_file_gives_its_summary(tmp_path) -> None:
    path = tmp_path / "run-x.wandb"
    path.write_bytes(log(summary_record({"_runtime": 3.0}), summary_record(FINAL), exit_record()))
    assert offline_run_summary(path) == {"_runtime": 3.0, **FINAL}
    check_offline_run(path, set(FINAL), seconds=0)


def test_a_run_file_not_yet_written_in_full_gives_none(tmp_path) -> None:
    """Before the service closes the run, the file holds its whole blocks only (here: none), or the
    records before the last one."""
    path = tmp_path / "run-x.wandb"
    assert offline_run_summary(path) is None  # not there yet
    path.write_bytes(log()[:7])
    assert offline_run_summary(path) is None
    path.write_bytes(log(summary_record(FINAL)))
    assert offline_run_summary(path) is None  # no end: more may come
    cut = log(summary_record(FINAL), exit_record())[:-3]
    path.write_bytes(cut)
    assert len(run_file_records(path)) == 1 and offline_run_summary(path) is None


def test_the_check_waits_for_the_service_to_write_the_end(tmp_path) -> None:
    path = tmp_path / "run-x.wandb"
    path.write_bytes(log()[:7])

    def service() -> None:
        time.sleep(0.5)
        path.write_bytes(log(summary_record(FINAL), exit_record()))

    writer = threading.Thread(target=service)
    writer.start()
    start = time.monotonic()
    try:
        check_offline_run(path, set(FINAL), seconds=30)
    finally:
        writer.join()
    assert 0.4 < time.monotonic() - start < 10


def test_a_run_file_that_never_ends_is_an_error(tmp_path) -> None:
    path = tmp_path / "run-x.wandb"
    path.write_bytes(log(summary_record(FINAL)))
    with pytest.raises(WandbRecordsError, match=r"not written in full within 0.2 s of finishing"):
        check_offline_run(path, set(FINAL), seconds=0.2)


def test_a_run_that_ended_without_the_final_records_is_an_error(tmp_path) -> None:
    path = tmp_path / "run-x.wandb"
    path.write_bytes(log(summary_record({"final/0>0/count/iia": 0.9}), exit_record()))
    with pytest.raises(WandbRecordsError, match=r"ended without 1 of .*: final/0>0/count/iia_test$"):
        check_offline_run(path, set(FINAL), seconds=0)
