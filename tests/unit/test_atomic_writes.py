"""Files written whole or not at all (:mod:`alignsearch.atomic`): a written file gets the mode 0666 less
the umask, and a write that fails leaves the old file and no temporary one (a write killed midway:
``commands/test_process_safety.py``)."""

from __future__ import annotations

import os
import stat

import pytest
import torch

from alignsearch import atomic


@pytest.fixture
def umask():
    """Set the process umask for a test; the old one comes back after it."""
    old = os.umask(0o022)
    yield os.umask
    os.umask(old)


@pytest.mark.parametrize(("mask", "mode"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_written_files_get_0666_less_the_umask(umask, mask, mode, tmp_path) -> None:
    umask(mask)
    atomic.write_text(tmp_path / "a.txt", "text")
    atomic.write_json(tmp_path / "results.json", {"iia": 1.0})
    atomic.save_torch(tmp_path / "weights.pt", {"w": torch.ones(2)})
    atomic.write_text(tmp_path / "a.txt", "again")  # replacing a file gives the same mode
    for name in ("a.txt", "results.json", "weights.pt"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == mode, name
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "results.json", "weights.pt"]


def test_a_failed_write_leaves_the_old_file_and_no_temporary_one(tmp_path) -> None:
    atomic.write_text(tmp_path / "a.txt", "old")

    def half(f):
        f.write(b"half of the n")
        raise RuntimeError("stopped")

    with pytest.raises(RuntimeError):
        atomic._atomic(tmp_path / "a.txt", half)
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]
    assert (tmp_path / "a.txt").read_text() == "old"
