"""pytest hooks for the whole suite: the bounds-check kernel run goes in the background.

Why. tests/test_determinism.py::test_kernel_suite_under_boundscheck runs all of tests/kernels
once more in a subprocess with NUMBA_BOUNDSCHECK=1 and a fresh Numba cache. That run takes
~650 s, mostly one core compiling, and run in its turn it added all of it to the suite's wall
time (CI budget ~15 min on 2 cores). So when that test is selected, the subprocess is started
right after collection and runs beside the rest of the suite; the test is moved to the end of
the run and only waits for the subprocess and checks its result. Nothing is launched when the
test is deselected (-k, another file) or with --collect-only; a subprocess nobody waited for
(-x stopped the run, Ctrl-C) is killed when pytest exits, and its temp dir (Numba cache,
output, Hypothesis database) is removed.

Isolation from the main run: its own NUMBA_CACHE_DIR (no cache races), `-p no:cacheprovider`
(no .pytest_cache writes) and its own Hypothesis example database. Hypothesis's documented
way to place the database is the `database` setting of a settings profile (its
HYPOTHESIS_STORAGE_DIRECTORY variable is deliberately not stable API), so the subprocess gets
INTSIM_HYPOTHESIS_DB and this file, which its pytest loads too, then loads a profile whose
database is a DirectoryBasedExampleDatabase there. Cost: the background run does not replay
examples saved by earlier runs; the main run still replays them on the same kernel tests.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time

import pytest
from hypothesis import settings
from hypothesis.database import DirectoryBasedExampleDatabase

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BOUNDSCHECK_TEST = ("test_determinism.py", "test_kernel_suite_under_boundscheck")
BOUNDSCHECK_ARGS = ("tests/kernels", "-x", "-q", "-p", "no:cacheprovider")
HYPOTHESIS_DB_ENV = "INTSIM_HYPOTHESIS_DB"
_RUN = pytest.StashKey["BackgroundPytest"]()

# No per-example deadline by default: the suite shares the cores with the background bounds-check
# run, so wall-clock times of single examples say nothing (tests that set one keep theirs).
settings.register_profile("intsim", parent=settings.default, deadline=None)
settings.load_profile("intsim")
if os.environ.get(HYPOTHESIS_DB_ENV):
    settings.register_profile("intsim-own-database", parent=settings.get_profile("intsim"),
                              database=DirectoryBasedExampleDatabase(os.environ[HYPOTHESIS_DB_ENV]))
    settings.load_profile("intsim-own-database")


class BackgroundPytest:
    """`python -m pytest *args` started now in ROOT with NUMBA_BOUNDSCHECK=1, a fresh
    NUMBA_CACHE_DIR and Hypothesis database in a temp dir, stdout+stderr to a file there."""

    def __init__(self, args=BOUNDSCHECK_ARGS):
        self.tmp = tempfile.mkdtemp(prefix="intsim-boundscheck-")
        env = dict(os.environ, NUMBA_BOUNDSCHECK="1", NUMBA_CACHE_DIR=os.path.join(self.tmp, "numba_cache"))
        env[HYPOTHESIS_DB_ENV] = os.path.join(self.tmp, "hypothesis")
        self.log = open(os.path.join(self.tmp, "output.txt"), "w+b")
        self.t0 = time.monotonic()
        self.proc = subprocess.Popen([sys.executable, "-m", "pytest", *args], cwd=ROOT, env=env,
                                     stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT)

    def wait(self, timeout: float):
        """Wait until `timeout` s after the start (then kill it and raise TimeoutExpired);
        return (return code, output text, seconds since start, seconds spent waiting)."""
        t_wait = time.monotonic()
        try:
            code = self.proc.wait(timeout=max(0.0, self.t0 + timeout - t_wait))
        except subprocess.TimeoutExpired:
            self.stop()
            raise
        now = time.monotonic()
        self.log.seek(0)
        return code, self.log.read().decode(errors="replace"), now - self.t0, now - t_wait

    def stop(self):
        """Kill the subprocess if it still runs, remove the temp dir. Idempotent."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.log.close()
        shutil.rmtree(self.tmp, ignore_errors=True)


def _is_boundscheck(item) -> bool:
    return (item.path.name, getattr(item, "originalname", item.name)) == BOUNDSCHECK_TEST


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config, items):
    """Move the bounds-check test to the end (stable sort keeps the rest in order)."""
    items.sort(key=_is_boundscheck)


def pytest_collection_finish(session):
    """Start the background run once the final selection is known, if it holds the test."""
    opt = session.config.option
    if opt.collectonly or getattr(opt, "setupplan", False) or getattr(opt, "setuponly", False):
        return
    if any(_is_boundscheck(it) for it in session.items):
        session.config.stash[_RUN] = BackgroundPytest()


def pytest_unconfigure(config):
    """Kill a background run nobody waited for and remove its temp dir."""
    run = config.stash.get(_RUN, None)
    if run is not None:
        run.stop()


@pytest.fixture
def boundscheck_run(request):
    """The background bounds-check run (started now if collection did not start it);
    stopped and cleaned up after the test."""
    config = request.config
    if _RUN not in config.stash:
        config.stash[_RUN] = BackgroundPytest()
    yield config.stash[_RUN]
    config.stash[_RUN].stop()
