"""JAX's persistent compilation cache: a re-run (or resumed search) skips XLA compiles."""

from __future__ import annotations

import logging
from pathlib import Path

import jax

log = logging.getLogger(__name__)


def enable_compile_cache(directory: str | Path, min_compile_seconds: float = 0.5) -> Path:
    """Point JAX at a persistent cache directory (process-wide JAX config, set at the edge)."""
    path = Path(directory).absolute()
    path.mkdir(parents=True, exist_ok=True)
    if jax.config.jax_compilation_cache_dir != str(path):
        jax.config.update("jax_compilation_cache_dir", str(path))
        jax.config.update("jax_persistent_cache_min_compile_time_secs", min_compile_seconds)
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
        log.info("JAX compilation cache at %s", path)
    return path
