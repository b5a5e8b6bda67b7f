"""Shared test setup: quiet TensorFlow, one CPU thread budget per test process."""

import os
import sys
import pathlib

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

REPO = pathlib.Path(__file__).resolve().parent.parent
# every JAX process the tests start (CLI subprocesses, Ray workers) shares one compilation cache,
# fresh in a fresh clone, never the user's ~/.cache
os.environ.setdefault("MNAS_JAX_CACHE_DIR", str(REPO / ".pytest_cache" / "mnas-jax-xla"))
# Ray lowers its workers to nice 15; beside two busy test workers they then got ~2% of a core, so
# a 4-child Ray test took 50-150 s instead of 7-9 s (measured: a stand-in child's first start
# 53 s after submission at nice 15, 3 s at nice 0). Every Ray cluster the tests start, in this
# process or in a subprocess, keeps its workers at the tests' own priority.
os.environ.setdefault("RAY_worker_niceness", "0")


# Modules that take minutes: collected first, so that under `pytest -n 2 --dist loadfile
# --no-loadscope-reorder` (scripts/test.sh; without that flag xdist orders modules by their
# number of tests) each starts at once on its own worker while the other modules share the
# workers after them, instead of one of them starting last and running alone.
LONG_MODULES = ("test_search_smoke.py", "test_fake_phone.py")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: item.path.name not in LONG_MODULES)  # stable: order kept otherwise


@pytest.fixture(scope="session")
def repo_root() -> pathlib.Path:
    return REPO
