"""Training data: Fashion-MNIST (embedded default), ImageNet-style TFDS dirs, host pipeline."""

from mnas_jax.data.arrays import ArraySource
from mnas_jax.data.fashion_mnist import DatasetMissingError, load_fashion_mnist
from mnas_jax.data.pipeline import prefetch, put_sharded
from mnas_jax.data.source import SPLITS, Batch, DataSource, Shard
from mnas_jax.data.tfds_source import TfdsSource, open_tfds

__all__ = [
    "SPLITS",
    "ArraySource",
    "Batch",
    "DataSource",
    "DatasetMissingError",
    "Shard",
    "TfdsSource",
    "load_fashion_mnist",
    "open_tfds",
    "prefetch",
    "put_sharded",
]
