"""Small real .tflite models for the latency tests.

Import the fixture into a test module (`from conftest_latency import tflite_models`). The
models are tiny conv nets converted by TensorFlow's TFLite converter from a tf.function; the
bytes are kept in pytest's cache (keyed by TensorFlow's version and this builder's source), so
repeated runs skip the ~5 s TensorFlow import.
"""

from __future__ import annotations

import base64
import hashlib
import inspect
from importlib import metadata

import numpy as np
import pytest

MODEL_ARGS = {"tiny": (16, 8, 0), "small": (48, 16, 1), "medium": (96, 32, 2)}


def build_conv_model(size: int, channels: int, seed: int) -> bytes:
    """conv3x3+ReLU6 -> depthwise 3x3 -> global mean, non-zero random weights, batch 1."""
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    w1 = tf.constant(rng.normal(0, 0.1, (3, 3, 3, channels)).astype(np.float32))
    b1 = tf.constant(rng.normal(0, 0.1, (channels,)).astype(np.float32))
    w2 = tf.constant(rng.normal(0, 0.1, (3, 3, channels, 1)).astype(np.float32))

    @tf.function(input_signature=[tf.TensorSpec([1, size, size, 3], tf.float32)])
    def net(x):
        y = tf.nn.relu6(tf.nn.conv2d(x, w1, 1, "SAME") + b1)
        y = tf.nn.depthwise_conv2d(y, w2, [1, 1, 1, 1], "SAME")
        return tf.reduce_mean(y, axis=[1, 2])

    converter = tf.lite.TFLiteConverter.from_concrete_functions([net.get_concrete_function()], net)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    return converter.convert()


def _cache_key() -> str:
    source = inspect.getsource(build_conv_model) + repr(MODEL_ARGS)
    digest = hashlib.sha256(source.encode()).hexdigest()[:12]
    return f"mnas_latency/models-{metadata.version('tensorflow-cpu')}-{digest}"


@pytest.fixture(scope="session")
def tflite_models(request: pytest.FixtureRequest) -> dict[str, bytes]:
    """'tiny' (~0.004 ms), 'small' (~0.03 ms), 'medium' (~0.17 ms) with LiteRT+XNNPACK here."""
    cache = getattr(request.config, "cache", None)
    key = _cache_key()
    if cache is not None:
        cached = cache.get(key, None)
        if cached:
            return {name: base64.b64decode(text) for name, text in cached.items()}
    models = {name: build_conv_model(*args) for name, args in MODEL_ARGS.items()}
    if cache is not None:
        cache.set(key, {name: base64.b64encode(b).decode() for name, b in models.items()})
    return models


def shared_tflite_cache(request: pytest.FixtureRequest, workdir) -> None:
    """Point `workdir`'s converter cache (WORKDIR/cache/tflite) at one kept in pytest's cache, so
    the reference models and archs a test converts are converted once per machine, not once per
    test (entries are keyed by the recipe and library versions: latency.export.cache_key)."""
    import pathlib

    cache = getattr(request.config, "cache", None)
    if cache is None:
        return
    target = pathlib.Path(cache.mkdir("mnas_tflite"))
    link = pathlib.Path(workdir) / "cache" / "tflite"
    link.parent.mkdir(parents=True, exist_ok=True)
    if not link.exists():
        link.symlink_to(target, target_is_directory=True)
