"""The one protocol every device implements, and the errors devices raise."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from latency.measurement import Fingerprint, Measurement
from latency.protocol import MeasureProtocol

#: FlatBuffers file identifier of TFLite models, at byte offset 4.
TFLITE_IDENTIFIER = b"TFL3"


class DeviceError(RuntimeError):
    """The device failed to measure a valid request (runtime crash, bad output, ...)."""


class DeviceUnreachable(DeviceError, ConnectionError):
    """The device (ADB phone or device server) cannot be reached at all."""


class InvalidModelError(ValueError):
    """The bytes are not a model the device can load; the server answers 400."""


@runtime_checkable
class Device(Protocol):
    """A place that runs .tflite models and times them, one measurement at a time."""

    def fingerprint(self) -> Fingerprint:
        """Hardware, runtime, threads and delegate of this device."""
        ...

    def measure(self, model_bytes: bytes, protocol: MeasureProtocol,
                timeout_s: float | None = None) -> Measurement:
        """Time `model_bytes` with `protocol`; MeasurementTimeout after `timeout_s` seconds."""
        ...


def check_tflite_bytes(model_bytes: bytes) -> None:
    """Reject bytes that cannot be a TFLite flatbuffer before handing them to a runtime."""
    if not isinstance(model_bytes, (bytes, bytearray, memoryview)):
        raise InvalidModelError(f"model must be bytes, got {type(model_bytes).__name__}")
    head = bytes(model_bytes[:8])
    if len(model_bytes) < 8 or head[4:8] != TFLITE_IDENTIFIER:
        raise InvalidModelError(
            f"not a TFLite model: {len(model_bytes)} bytes without the 'TFL3' identifier at "
            f"offset 4 (first bytes {head!r}); pass the bytes of a .tflite file")
