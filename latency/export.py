"""Flax -> .tflite: an ArchSpec (or one LayerSpec) becomes the bytes a device times.

Recipe: `model.apply` in eval mode -> `jax2tf.convert` -> `tf.function` with a fixed batch-1
float32 NHWC input signature -> `TFLiteConverter.from_concrete_functions`, TFLITE_BUILTINS only,
no quantization. jax 0.10's jax2tf only has native serialization (the graph reaches TensorFlow
as one XlaCallModule op holding StableHLO); the TFLite converter legalizes that StableHLO to
builtin ops, so no XlaCallModule (which TFLite cannot run) is left in the file. Measured here:
BN folds into the conv, ReLU/ReLU6 fuse, depthwise is DEPTHWISE_CONV_2D, the pooling shortcut is
AVERAGE_POOL_2D, no PAD or TRANSPOSE (except FBNet's channel shuffle, which is a transpose).

Latency-only exports use `latency.weights.random_variables` (non-zero, so no constant is folded
away). `Exporter` is the long-lived converter: TensorFlow is imported on first use (not at module
import) and results are cached in memory and optionally on disk, keyed by what determines the
bytes: arch id or layer key, seed, and the versions of the converting packages.
"""

from __future__ import annotations

import collections
import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp

from latency.oplist import non_builtin_ops, ops_of
from latency.weights import check_variables, random_variables
from mnas_jax.files import write_atomic
from mnas_jax.models import DepthwiseImpl, build_model
from mnas_jax.models.single_layer import build_single_layer, single_layer_input_shape
from mnas_jax.space import ArchSpec, LayerSpec

log = logging.getLogger(__name__)

#: Bump when the recipe or the random-weight rule changes: old cache entries stop matching.
EXPORT_FORMAT = 1
#: Packages whose versions change the converted bytes.
CONVERTER_PACKAGES = ("jax", "jaxlib", "flax", ("tensorflow", "tensorflow-cpu"))


class ExportError(RuntimeError):
    """The converter failed or produced ops a builtin-only runtime cannot run."""


def _version(names: str | tuple[str, ...]) -> tuple[str, str]:
    names = (names,) if isinstance(names, str) else names
    for name in names:
        try:
            return names[0], metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return names[0], "absent"


def converter_versions() -> tuple[tuple[str, str], ...]:
    """(package, version) of everything that shapes the export, e.g. (('jax', '0.10.2'), ...)."""
    return tuple(_version(p) for p in CONVERTER_PACKAGES)


def cache_key(kind: str, identity: str, seed: int,
              versions: tuple[tuple[str, str], ...]) -> str:
    """The text a cached export is filed under; `kind` is 'arch' or 'layer'."""
    pinned = ",".join(f"{n}={v}" for n, v in versions)
    return f"format={EXPORT_FORMAT};{kind}={identity};seed={seed};{pinned}"


def import_tensorflow() -> tuple[Any, Any]:
    """(tensorflow, jax2tf), imported on demand: the import costs ~4 s and ~500 MB."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf
    from jax.experimental import jax2tf

    return tf, jax2tf


def convert_tf_function(tf: Any, fn: Any) -> bytes:
    """A `tf.function` with a fixed input signature -> .tflite bytes, builtin ops only, float32.

    The one converter call of the project (the Keras benchmark uses it too), so every model
    compared or timed went through identical converter settings.
    """
    converter = tf.lite.TFLiteConverter.from_concrete_functions([fn.get_concrete_function()], fn)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    try:
        model_bytes = bytes(converter.convert())
    except Exception as e:  # the converter raises many types; keep its message
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ExportError(f"TFLite conversion failed: {first}") from e
    bad = non_builtin_ops(ops_of(model_bytes))
    if bad:
        raise ExportError(f"converted model has non-builtin ops {sorted(set(bad))}; "
                          "only TFLITE_BUILTINS can run on the target runtimes")
    return model_bytes


def convert_module(tf: Any, jax2tf: Any, model: Any, variables: Any,
                   input_shape: tuple[int, ...]) -> bytes:
    """Convert `model.apply(variables, x, train=False)` for one fixed float32 input shape."""

    def forward(x: Any) -> Any:
        return model.apply(variables, x, train=False)

    # Lower for CPU whatever the default backend (a TPU host would otherwise lower for TPU).
    converted = jax2tf.convert(forward, with_gradient=False,
                               native_serialization_platforms=("cpu",))
    fn = tf.function(converted, autograph=False,
                     input_signature=[tf.TensorSpec(input_shape, tf.float32, name="input")])
    return convert_tf_function(tf, fn)


class Exporter:
    """A long-lived converter with a cache: build one per process and reuse it.

    `cache_dir` (optional) keeps exports across processes (one `.tflite` per key, written
    atomically); the memory cache holds up to `memory_bytes` of models, least recently used
    first out. Exports with caller-given (trained) variables are never cached: their weights
    are not part of the key. `conversions` counts real conversions (cache misses). Safe to
    share between threads (conversions run one at a time); processes may share `cache_dir`.
    """

    def __init__(self, cache_dir: str | Path | None = None, *,
                 memory_bytes: int = 256 * 2**20) -> None:
        if memory_bytes < 0:
            raise ValueError(f"memory_bytes={memory_bytes}: use 0 (no memory cache) or more")
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.memory_bytes = memory_bytes
        self.versions = converter_versions()
        self.conversions = 0
        self._memory: collections.OrderedDict[str, bytes] = collections.OrderedDict()
        self._lock = threading.Lock()  # guards the memory cache
        self._convert_lock = threading.Lock()  # one conversion at a time
        self._tf: tuple[Any, Any] | None = None

    # -- public -------------------------------------------------------------------------------
    def export(self, spec: ArchSpec, variables: Any = None, *, seed: int = 0) -> bytes:
        """`spec` as .tflite bytes; random non-zero weights from `seed` unless `variables`."""
        if not isinstance(spec, ArchSpec):
            raise ValueError(f"spec must be an ArchSpec, got {type(spec).__name__}")
        model = build_model(spec, dw_impl=DepthwiseImpl.XLA)
        shape = (1, spec.input_size, spec.input_size, spec.input_channels)
        if variables is not None:
            check_variables(model, shape, variables)
            variables = {name: jax.tree.map(lambda a: jnp.asarray(a, jnp.float32), variables[name])
                         for name in ("params", "batch_stats")}  # float32 export, e.g. from bf16
            return self._convert(model, variables, shape, f"arch {spec.arch_id}")
        key = cache_key("arch", spec.arch_id, seed, self.versions)
        return self._cached(key, f"arch-{spec.arch_id}", lambda: self._convert(
            model, random_variables(model, shape, seed), shape, f"arch {spec.arch_id}"))

    def export_layer(self, layer: LayerSpec, *, seed: int = 0) -> bytes:
        """One layer as a standalone model (input: the layer's own input shape, batch 1)."""
        if not isinstance(layer, LayerSpec):
            raise ValueError(f"layer must be a LayerSpec, got {type(layer).__name__}")
        model = build_single_layer(layer, DepthwiseImpl.XLA)
        shape = single_layer_input_shape(layer)
        key = cache_key("layer", layer.key, seed, self.versions)
        label = "layer-" + hashlib.sha256(layer.key.encode()).hexdigest()[:16]
        return self._cached(key, label, lambda: self._convert(
            model, random_variables(model, shape, seed), shape, f"layer {layer.key}"))

    def cache_path(self, key: str, label: str) -> Path | None:
        """Where the conversion with this cache key is kept, or None without a cache directory."""
        if self.cache_dir is None:
            return None
        digest = hashlib.sha256(key.encode()).hexdigest()[:24]
        return self.cache_dir / f"{label}-{digest}.tflite"

    # -- internals ----------------------------------------------------------------------------
    def _tensorflow(self) -> tuple[Any, Any]:
        if self._tf is None:
            self._tf = import_tensorflow()
        return self._tf

    def _convert(self, model: Any, variables: Any, shape: tuple[int, ...], what: str) -> bytes:
        with self._convert_lock:
            tf, jax2tf = self._tensorflow()
            started = time.perf_counter()
            try:
                data = convert_module(tf, jax2tf, model, variables, shape)
            except ExportError as e:
                raise ExportError(f"{what}: {e}") from e.__cause__
            self.conversions += 1
        log.debug("converted %s in %.2f s (%d bytes)", what, time.perf_counter() - started,
                  len(data))
        return data

    def _cached(self, key: str, label: str, make: Callable[[], bytes]) -> bytes:
        with self._lock:
            if key in self._memory:
                self._memory.move_to_end(key)
                return self._memory[key]
        path = self.cache_path(key, label)
        data = None
        if path is not None and path.is_file():
            data = path.read_bytes()
            if len(data) < 8 or data[4:8] != b"TFL3":  # a damaged file: convert again
                log.warning("ignoring damaged cache file %s", path)
                data = None
        if data is None:
            data = make()
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
                write_atomic(path, data)
        self._remember(key, data)
        return data

    def _remember(self, key: str, data: bytes) -> None:
        if len(data) > self.memory_bytes:
            return
        with self._lock:
            self._memory[key] = data
            self._memory.move_to_end(key)
            total = sum(len(v) for v in self._memory.values())
            while total > self.memory_bytes:
                _, dropped = self._memory.popitem(last=False)
                total -= len(dropped)


def export_tflite(spec: ArchSpec, variables: Any = None, *, seed: int = 0) -> bytes:
    """`spec` as .tflite bytes (uncached; use one `Exporter` for many exports)."""
    return Exporter(memory_bytes=0).export(spec, variables, seed=seed)


def export_layer_tflite(layer: LayerSpec, *, seed: int = 0) -> bytes:
    """One layer as .tflite bytes (uncached; use one `Exporter` for a whole table)."""
    return Exporter(memory_bytes=0).export_layer(layer, seed=seed)
