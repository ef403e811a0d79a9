"""NETDERIVE_THREADS: the thread count of parallel kernels, checked as a one-line error."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from netderive.runtime.session import UsageError, kernel_threads


def test_thread_count_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NETDERIVE_THREADS", raising=False)
    assert kernel_threads() is None
    monkeypatch.setenv("NETDERIVE_THREADS", "1")
    assert kernel_threads() == 1
    for bad in ("0", "two", "-3", "1.5"):
        monkeypatch.setenv("NETDERIVE_THREADS", bad)
        with pytest.raises(UsageError, match="NETDERIVE_THREADS"):
            kernel_threads()


def test_model_evaluates_on_the_threads_asked_for(kernel_cache_dir) -> None:
    """In a fresh process with NETDERIVE_THREADS=1, loading kernels sets numba to one thread
    and a large sweep gives the same numbers as with every thread."""
    script = (
        "import numba, numpy as np, netderive\n"
        "m = netderive.load('weight_decay')\n"
        "v = m.eval('b_star', weight_decay=np.linspace(0.01, 0.6, 30000))\n"
        "print(numba.get_num_threads(), repr(float(v.sum())))\n")
    results = []
    for threads in ("1", ""):
        env_line = f"import os; os.environ['NETDERIVE_THREADS'] = {threads!r}\n"
        done = subprocess.run([sys.executable, "-c", CHECKOUT + env_line + script],
                              capture_output=True, text=True, check=False)
        assert done.returncode == 0, done.stderr[-2000:]
        results.append(done.stdout.split())
    assert results[0][0] == "1"
    assert results[0][1] == results[1][1]


#: Import this checkout as netderive in the subprocess (as the tests do).
TESTS = str(Path(__file__).resolve().parent.parent)
CHECKOUT = (f"import sys; sys.path.insert(0, {TESTS!r})\n"
            "from conftest import _import_this_checkout\n_import_this_checkout()\n")
