"""Training data: Fashion-MNIST (embedded default), TFDS-prepared datasets, host pipeline."""

from mnas_jax.data.arrays import ArraySource
from mnas_jax.data.fashion_mnist import DatasetMissingError, load_fashion_mnist
from mnas_jax.data.pipeline import prefetch, put_sharded
from mnas_jax.data.source import SPLITS, Batch, DataSource, Shard
from mnas_jax.data.spec import DataSpec, open_data
from mnas_jax.data.tfds_source import TfdsSource, open_tfds

__all__ = [
    "SPLITS",
    "ArraySource",
    "Batch",
    "DataSource",
    "DataSpec",
    "DatasetMissingError",
    "Shard",
    "TfdsSource",
    "load_fashion_mnist",
    "open_data",
    "open_tfds",
    "prefetch",
    "put_sharded",
]
