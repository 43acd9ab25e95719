"""A build lock left by a killed DeepSpeed op build is named before it can hang training."""

from __future__ import annotations

import logging
import os
import time

from west.distributed import extension_build_locks, warn_extension_build_locks


def _lock(path, age_s: float):
    path.parent.mkdir(parents=True)
    path.touch()
    os.utime(path, (time.time() - age_s, time.time() - age_s))
    return path


def test_locks_of_both_layouts_are_found_with_their_age(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path))
    assert extension_build_locks() == []
    (tmp_path / "cpu_adam").mkdir()  # a finished build: no lock
    flat = _lock(tmp_path / "fused_adam" / "lock", 600)  # TORCH_EXTENSIONS_DIR/<op>/lock
    nested = _lock(tmp_path / "py311_cu124" / "deepspeed_shm_comm" / "lock", 7200)
    found = dict(extension_build_locks())
    assert set(found) == {flat, nested}
    assert 590 < found[flat] < 700 and 7190 < found[nested] < 7300


def test_local_rank_0_names_each_lock_and_how_to_remove_it(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path))
    lock = _lock(tmp_path / "fused_adam" / "lock", 1800)
    monkeypatch.setenv("LOCAL_RANK", "1")
    with caplog.at_level(logging.WARNING, logger="west.distributed"):
        assert warn_extension_build_locks() == []
    assert caplog.records == []
    monkeypatch.setenv("LOCAL_RANK", "0")
    with caplog.at_level(logging.WARNING, logger="west.distributed"):
        assert warn_extension_build_locks() == [lock]
    (record,) = caplog.records
    assert f"{lock} exists (30 min old)" in record.message and f"rm {lock}" in record.message
