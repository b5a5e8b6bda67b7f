"""JAX's persistent compilation cache, one directory for every JAX process of the project.

Search children, Ray workers, benchmarks and the subprocesses of tests all call
`mnas_jax.train.runtime.prepare_process`, which points JAX at `cache_dir()`: ``$MNAS_JAX_CACHE_DIR``
when set (``off`` disables the cache), else ``$XDG_CACHE_HOME/mnas-jax/xla`` (``~/.cache`` when unset).
The directory is exported in the environment, so processes started from this one (Ray workers of
a local cluster, subprocesses) use the same one. A compile that another process already did is
then read from disk instead of redone: a stage program, a whole child, the controller's update.

Some XLA builds reject every entry they read back without an error (on some CPUs the serialized
executable does not match the host), so the cache would only cost disk. `probe` tells: it compiles
one tiny program with the cache forced on; the first process of a cache writes it, every later
one must find it, and a later one that misses warns once, naming the directory.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import warnings
from pathlib import Path

import jax

log = logging.getLogger(__name__)

ENV = "MNAS_JAX_CACHE_DIR"
OFF = ("off", "none", "0", "false")
PROBE_MARK = "mnas-cache-probe.json"
# stage programs compile in 0.1-1 s and a child has dozens of them; below this an entry is not written
MIN_COMPILE_SECONDS = 0.1

_HITS = "/jax/compilation_cache/cache_hits"
_MISSES = "/jax/compilation_cache/cache_misses"


class CacheCounter:
    """Persistent-cache hits and misses of this process (from JAX's monitoring events)."""

    def __init__(self) -> None:
        self.hits = 0
        self.misses = 0
        self._lock = threading.Lock()

    def __call__(self, event: str, **kwargs: object) -> None:
        if event in (_HITS, _MISSES):
            with self._lock:
                if event == _HITS:
                    self.hits += 1
                else:
                    self.misses += 1

    def snapshot(self) -> tuple[int, int]:
        """(hits, misses) so far."""
        with self._lock:
            return self.hits, self.misses


COUNTER = CacheCounter()
jax.monitoring.register_event_listener(COUNTER)


def cache_dir(environ: dict[str, str] | None = None) -> Path | None:
    """The project's cache directory (None: switched off with ``MNAS_JAX_CACHE_DIR=off``)."""
    env = os.environ if environ is None else environ
    value = env.get(ENV, "").strip()
    if value.lower() in OFF:
        return None
    if value:
        return Path(value).expanduser().absolute()
    base = env.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser().absolute() / "mnas-jax" / "xla"


def enable_compile_cache(directory: str | Path, min_compile_seconds: float = MIN_COMPILE_SECONDS) -> Path:
    """Point JAX at a persistent cache directory (process-wide JAX config, set at the edge) and
    export it (``MNAS_JAX_CACHE_DIR``) to the processes this one starts."""
    path = Path(directory).expanduser().absolute()
    path.mkdir(parents=True, exist_ok=True)
    os.environ[ENV] = str(path)
    if jax.config.jax_compilation_cache_dir != str(path):
        jax.config.update("jax_compilation_cache_dir", str(path))
        jax.config.update("jax_persistent_cache_min_compile_time_secs", min_compile_seconds)
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
        log.info("JAX compilation cache at %s", path)
    return path


def _probe_key() -> str:
    return f"{jax.__version__} {jax.default_backend()} {os.environ.get('XLA_FLAGS', '')}"


def probe(directory: Path) -> bool | None:
    """Whether the cache at ``directory`` serves what it holds: True (a hit), False (a miss of an
    entry an earlier process wrote: warned), None (first use: the entry is written now)."""
    mark = directory / PROBE_MARK
    key = _probe_key()
    try:
        known = json.loads(mark.read_text()).get(key, False) if mark.exists() else False
    except (OSError, ValueError):
        known = False
    saved = jax.config.jax_persistent_cache_min_compile_time_secs
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    try:
        before = COUNTER.snapshot()
        jax.jit(lambda x: x * 3.0 + 1.0).lower(jax.ShapeDtypeStruct((7, 3), jax.numpy.float32)).compile()
        hits = COUNTER.snapshot()[0] - before[0]
    finally:
        jax.config.update("jax_persistent_cache_min_compile_time_secs", saved)
    if hits:
        return True
    if known:
        warnings.warn(f"the JAX compilation cache at {directory} did not serve an entry an earlier "
                      "process wrote: this XLA build rejects its cache entries here, so every "
                      f"process compiles from scratch; set {ENV}=off to stop writing them",
                      RuntimeWarning, stacklevel=2)
        return False
    try:
        marks = json.loads(mark.read_text()) if mark.exists() else {}
    except (OSError, ValueError):
        marks = {}
    marks[key] = True
    tmp = mark.with_name(f".{mark.name}.{os.getpid()}")
    tmp.write_text(json.dumps(marks))
    os.replace(tmp, mark)
    return None
