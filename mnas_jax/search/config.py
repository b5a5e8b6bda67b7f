"""The search's configuration: a frozen dataclass, each default defined once. Config files are
Python files with named variants (see configs/)."""

from __future__ import annotations

import dataclasses
import importlib.util
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from calibration.policy import CalibrationPolicy
from latency.session import ARCH_ROUNDS
from mnas_jax.controller.ppo import PPOConfig
from mnas_jax.data.spec import DataSpec
from mnas_jax.search.executors import remote_options


@dataclasses.dataclass(frozen=True)
class SearchConfig:
    """One search run's settings: space, device, reward, controller, latency model, children..."""

    name: str = "fmnist"
    space: str = "mnasnet"
    setting: str = "fmnist"
    device: str = "local"
    # reward: R = ACC * (LAT / T) ** w
    reward: str = "soft"  # soft (-0.07, -0.07) | hard (0, -1)
    target: str = "1.0x mobilenetv2"  # or milliseconds, e.g. "0.5ms"
    screen_factor: float | None = 1.5  # candidates predicted above factor * T are not trained
    # controller
    steps: int = 6
    batch_size: int = 4
    ppo: PPOConfig = PPOConfig()
    # latency model
    use_table: bool = True  # lookup-table features (the table is built once per device)
    table_passes: int = 2  # times each layer is measured (see latency/lut_build for the entry rule)
    predictor_archs: int = 40  # full architectures measured to fit the first predictor
    # interleaved rounds per measurement of the predictor's archs (latency.session.ARCH_ROUNDS)
    measure_rounds: int = ARCH_ROUNDS
    calibration: CalibrationPolicy = CalibrationPolicy()
    # interleaved passes per device check (calibration rounds, the report's latencies); the
    # median over passes is kept, so from 3 passes on one disturbed pass does not move it
    check_rounds: int = 4
    # children
    train_preset: str = "proxy"
    train_steps: int | None = None  # overrides the preset's step budget
    train_limit: int | None = None
    val_limit: int | None = None
    # more TrainConfig fields for the children, e.g. {"epochs": 5.0}; "batch_per_device": B sets
    # the global batch to B x the devices each child sees (known only where it trains)
    train_overrides: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    # what the children train on: "fmnist" or "tfds:NAME[/CONFIG][:SPLIT]" (read from data_dir,
    # a directory prepared by tensorflow-datasets; `mnas search --data/--data-dir` override both)
    data: str = "fmnist"
    data_dir: str | None = None
    executor: str = "local"  # local | ray
    ray_address: str | None = None
    # what each Ray child requests, e.g. {"GPU": 1} or {"TPU": 4} (with "CPU": how many cores)
    child_resources: Mapping[str, float] = dataclasses.field(default_factory=lambda: {"CPU": 1.0})
    # report: the top-k found models and the baselines re-trained with fresh seeds
    report_top_k: int = 3
    report_seeds: int = 3
    baselines: tuple[str, ...] = ("mobilenetv2-0.35", "mobilenetv2-0.5", "mobilenetv2-0.75",
                                  "mobilenetv2", "mobilenetv2-1.4")
    seed: int = 0

    def __post_init__(self) -> None:
        if self.executor not in ("local", "ray"):
            raise ValueError(f"executor={self.executor!r}; use 'local' or 'ray'")
        if self.table_passes < 1:
            raise ValueError(f"table_passes={self.table_passes}: measure each layer at least once")
        if self.predictor_archs < 5:
            raise ValueError(f"predictor_archs={self.predictor_archs} is too few to fit; use >= 5")
        if self.measure_rounds < 1:
            raise ValueError(f"measure_rounds={self.measure_rounds}: measure at least one round")
        if self.check_rounds < 1:
            raise ValueError(f"check_rounds={self.check_rounds}: measure at least one pass")
        if self.report_seeds < 2:
            raise ValueError(f"report_seeds={self.report_seeds}: the verdict needs >= 2 seeds per model "
                             "(3 or more for a useful seed spread)")
        if self.reward not in ("soft", "hard"):
            raise ValueError(f"reward={self.reward!r}; use 'soft' or 'hard'")
        DataSpec.parse(self.data, self.data_dir)  # a bad spec fails here, naming it
        remote_options(self.child_resources)  # likewise a bad resource request


# Where the data lives is not what the search is: a moved data dir must not orphan a search.
# Fields added after searches were run stay out of the identity while they hold their default,
# so those searches still resume.
_LOCATION_FIELDS = ("data_dir",)
_LATER_FIELDS = ("data", "train_overrides", "child_resources")


def identity(config: SearchConfig) -> dict[str, Any]:
    """The fields that make a search what it is (its run id is a hash of them)."""
    fields = dataclasses.asdict(config)
    defaults = dataclasses.asdict(SearchConfig())
    return {k: v for k, v in fields.items()
            if k not in _LOCATION_FIELDS and not (k in _LATER_FIELDS and v == defaults[k])}


def load_config(path: str | Path, variant: str | None = None) -> SearchConfig:
    """Run the config file's `get_config(variant)`; a missing file or variant is a clear error."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"search config {str(path)!r} does not exist (see configs/)")
    spec = importlib.util.spec_from_file_location(f"mnas_config_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not hasattr(module, "get_config"):
        raise ValueError(f"{path} has no get_config(variant) function")
    variants = getattr(module, "VARIANTS", None)
    if variant is not None and variants is not None and variant not in variants:
        raise ValueError(f"{path} has no variant {variant!r}; choose one of {list(variants)}")
    config = module.get_config(variant) if variant is not None else module.get_config()
    if not isinstance(config, SearchConfig):
        raise ValueError(f"{path}: get_config returned {type(config).__name__}, not SearchConfig")
    return config
