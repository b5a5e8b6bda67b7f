"""Setting up a JAX process of the project, once, before its first computation.

Every entry point calls `prepare_process` (the CLI, a search child, a Ray worker's child, the
benchmarks): XLA:CPU flags (`xla_cpu`; they name the CPU backend and leave accelerators alone),
the project's persistent compilation cache (`compile_cache`), and for a search driver whose
children train elsewhere `driver_only_cpu`: JAX on the CPU only, no GPU memory preallocated, so
the driver never holds an accelerator its children need.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

_PREPARED: dict[str, Any] = {}


def prepare_process(cache: str | Path | None = None, *, probe: bool = True) -> Path | None:
    """XLA:CPU flags + the persistent compilation cache (``cache`` or `compile_cache.cache_dir()`);
    returns the cache directory (None when switched off). Idempotent: the first call decides the
    directory; the probe (which starts JAX's backend) runs at the first call that asks for it."""
    from mnas_jax.train import compile_cache

    if "cache" not in _PREPARED:
        from mnas_jax.train.xla_cpu import configure_xla_cpu

        configure_xla_cpu()  # no-op once the backend runs
        directory = Path(cache) if cache is not None else compile_cache.cache_dir()
        _PREPARED["cache"] = None if directory is None else compile_cache.enable_compile_cache(directory)
    directory = _PREPARED["cache"]
    if probe and directory is not None and "probe" not in _PREPARED:
        _PREPARED["probe"] = compile_cache.probe(directory)
    return directory


def cache_probe() -> bool | None:
    """What this process's probe of the cache found (see `compile_cache.probe`); None if not run."""
    return _PREPARED.get("probe")


def driver_only_cpu(environ: dict[str, str] | None = None) -> bool:
    """Keep this process's JAX on the CPU (a search driver whose children run on Ray workers):
    JAX's platform set to cpu and XLA's GPU preallocation off, before the backend starts. The
    environment of the processes it starts is left alone (a Ray child asks for its own devices).
    False if JAX's backend already runs (too late: nothing is changed)."""
    import jax
    import jax._src.xla_bridge as xb

    env = os.environ if environ is None else environ
    if environ is None and xb.backends_are_initialized():
        return jax.default_backend() == "cpu"
    env.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    if environ is None:
        jax.config.update("jax_platforms", "cpu")
    return True


def expected_platform(resources: dict[str, float] | None) -> str:
    """The JAX platform a child with these Ray resources must run on: 'gpu', 'tpu' or 'cpu'."""
    resources = resources or {}
    if resources.get("TPU"):
        return "tpu"
    if resources.get("GPU"):
        return "gpu"
    return "cpu"


def platform_mismatch(resources: dict[str, float] | None, platform: str) -> str | None:
    """One line when ``platform`` (jax.default_backend()) is not what ``resources`` asked for."""
    want = expected_platform(resources)
    got = "gpu" if platform in ("cuda", "rocm", "gpu") else platform
    if got == want:
        return None
    return (f"child asked for {want.upper()} ({resources}) but JAX runs on {platform}: the "
            f"accelerator did not start in this worker (check its jax[cuda]/jax[tpu] install and "
            "drivers); refusing to train on the wrong backend")
