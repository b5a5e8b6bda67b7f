"""Which data a training or a search reads: part of the configuration, never a silent default.

A data spec is a short string: ``fmnist`` (Fashion-MNIST, the embedded default) or
``tfds:NAME[/CONFIG][:SPLIT]`` (a dataset prepared by tensorflow-datasets, read offline from
``--data-dir``; SPLIT is the split to train on and to hold the validation set out of, ``train``
by default). ``open_data`` opens it for a model's input (size, channels, classes) and says in
one line what to pass instead when the data cannot feed that model: it never falls back to
another dataset.
"""

from __future__ import annotations

import dataclasses
import os
import re

from mnas_jax.data.source import DataSource

FMNIST = "fmnist"
TFDS_PREFIX = "tfds:"
ENV_TFDS_DIR = "TFDS_DATA_DIR"
# NAME (lowercase TFDS builder name), optional /CONFIG, optional :SPLIT (a plain split name)
_TFDS = re.compile(r"^(?P<name>[a-z0-9_]+(?:/[A-Za-z0-9_.\-]+)?)(?::(?P<split>[A-Za-z0-9_]+))?$")
EXAMPLE = "--data tfds:imagenet2012 --data-dir DIR (a directory prepared by tensorflow-datasets)"


@dataclasses.dataclass(frozen=True)
class DataSpec:
    """A parsed data spec and the directory to read it from (None: the source's default)."""

    source: str  # "fmnist" or "tfds"
    name: str | None = None  # TFDS name, with /CONFIG when given
    split: str = "train"
    data_dir: str | None = None

    @classmethod
    def parse(cls, text: str, data_dir: str | None = None) -> "DataSpec":
        """``fmnist`` or ``tfds:NAME[/CONFIG][:SPLIT]``; raises ValueError naming the bad text."""
        if text == FMNIST:
            return cls(FMNIST, data_dir=data_dir)
        if text.startswith(TFDS_PREFIX):
            match = _TFDS.match(text[len(TFDS_PREFIX):])
            if match:
                return cls("tfds", match["name"], match["split"] or "train", data_dir)
        raise ValueError(f"--data {text!r} is not a data spec; use 'fmnist' or "
                         "'tfds:NAME[/CONFIG][:SPLIT]' (e.g. tfds:imagenet2012)")

    def __str__(self) -> str:
        if self.source == FMNIST:
            return FMNIST
        return f"{TFDS_PREFIX}{self.name}" + (f":{self.split}" if self.split != "train" else "")


def _fmnist(spec: DataSpec, input_size: int, channels: int, num_classes: int) -> DataSource:
    from mnas_jax.data.fashion_mnist import NUM_CLASSES, load_fashion_mnist

    if (channels, num_classes) != (1, NUM_CLASSES):
        raise ValueError(f"the model takes {channels}-channel images of {num_classes} classes but --data "
                         f"fmnist has 1-channel images of {NUM_CLASSES} classes: pass {EXAMPLE}, "
                         "or use --setting fmnist")
    return load_fashion_mnist(spec.data_dir, input_size=input_size)


def _tfds(spec: DataSpec, input_size: int, channels: int, num_classes: int) -> DataSource:
    from mnas_jax.data.tfds_source import open_tfds

    data_dir = spec.data_dir or os.environ.get(ENV_TFDS_DIR)
    if not data_dir:
        raise ValueError(f"--data {spec} needs --data-dir DIR (a directory prepared by "
                         f"tensorflow-datasets, holding {spec.name}/VERSION/) or ${ENV_TFDS_DIR}")
    source = open_tfds(data_dir, spec.name or "", split=spec.split, input_size=input_size,
                       channels=channels)
    if source.num_classes != num_classes:
        raise ValueError(f"--data {spec} has {source.num_classes} classes but the model has "
                         f"{num_classes}: use a --setting with {source.num_classes} classes or "
                         "other --data")
    return source


def open_data(spec: DataSpec, *, input_size: int, channels: int, num_classes: int) -> DataSource:
    """The data source ``spec`` names, shaped for a model's input; ValueError if it cannot be."""
    opener = _fmnist if spec.source == FMNIST else _tfds
    return opener(spec, input_size, channels, num_classes)
