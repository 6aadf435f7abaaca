"""The fused-kernel loader (:mod:`openmm_nnbias._ext`): a build killed mid-way must not hang later loads."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

import pytest

from openmm_nnbias import _ext

NO_COMPILER = _ext.compiler_missing()
LOAD = "from openmm_nnbias._ext import load_ops, ops_loaded; load_ops(); print('loaded', ops_loaded())"


def _stale(lock, age_s: float) -> None:
    lock.touch()
    then = time.time() - age_s
    os.utime(lock, (then, then))


def test_stale_lock_is_removed_with_a_warning(tmp_path):
    _stale(tmp_path / "lock", 3600)
    with pytest.warns(RuntimeWarning, match="removing the lock"):
        assert _ext.clear_stale_lock(str(tmp_path)) is True
    assert not (tmp_path / "lock").exists()
    assert _ext.clear_stale_lock(str(tmp_path)) is False  # no lock: nothing to wait for


def test_a_fresh_lock_is_waited_for_until_its_build_ends(tmp_path):
    import threading

    lock = tmp_path / "lock"
    lock.touch()
    threading.Timer(0.3, lock.unlink).start()  # the other process finishes its build
    start = time.perf_counter()
    assert _ext.clear_stale_lock(str(tmp_path), poll=0.05) is False
    assert 0.2 < time.perf_counter() - start < 5


def test_build_directory_is_torchs_default(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path))
    assert _ext.build_directory("x") == os.path.join(str(tmp_path), "x")


@pytest.mark.skipif(NO_COMPILER is not None, reason=f"fused kernels cannot be compiled: {NO_COMPILER}")
def test_load_ops_after_a_killed_build(tmp_path):
    """A lock left by a build that died (here an hour ago) is removed; the kernels load (built again if needed)."""
    _ext.load_ops()  # the build in torch's cache, shared with the other fused-kernel tests
    name = f"openmm_nnbias_ops_{_ext._digest()}"
    cached, build = _ext.build_directory(name), tmp_path / name
    shutil.copytree(cached, build, ignore=shutil.ignore_patterns("lock"))  # no second full compile
    _stale(build / "lock", 3600)
    env = dict(os.environ, TORCH_EXTENSIONS_DIR=str(tmp_path))
    done = subprocess.run([sys.executable, "-c", LOAD], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "loaded True" in done.stdout
    assert "removing the lock" in done.stderr
    assert not (build / "lock").exists()
