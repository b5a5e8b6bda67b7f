"""The one interface of the two predictor kinds: a predictor fitted on a device's measurements
(`predictor.model.LatencyPredictor`) and one transferred to a device from another device's
predictor (`predictor.transfer.TransferPredictor`).

The search, calibration rounds and the CLI use a predictor through this interface only; which
kind a directory holds matters to reading its files (`predictor.io`) and to nothing else.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Protocol, Sequence

import numpy as np

from predictor.model import ArchInput, Prediction


class Predictor(Protocol):
    """Latency of architectures on one device (in `unit`), refittable, saved as a directory."""

    unit: str
    train_ids: tuple[str, ...]
    train_x: np.ndarray
    train_y: np.ndarray

    @property
    def space(self) -> str:
        """Search space the predictor reads."""

    @property
    def setting(self) -> str:
        """Setting of that space."""

    @property
    def device_id(self) -> str | None:
        """Id of the device it predicts (None if unknown)."""

    @property
    def feature_names(self) -> tuple[str, ...]:
        """Names of the features it reads."""

    @property
    def table_info(self) -> Mapping[str, Any] | None:
        """The lookup table its features read (device, space, setting, hash), or None."""

    def features(self, x: ArchInput) -> np.ndarray:
        """Features of specs, token rows or already computed features."""

    def predict(self, x: ArchInput) -> Prediction:
        """Latency and its standard deviation."""

    def refit(self, x: ArchInput, y: Sequence[float],
              ids: Sequence[str] | None = None) -> Predictor:
        """A new predictor on the old training data plus (x, y)."""

    def write(self, directory: Path) -> None:
        """Its files, written into an existing (empty, private) directory."""
