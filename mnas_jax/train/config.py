"""Training configuration as code: one frozen dataclass and named presets.

``paper`` is the MnasNet recipe (MNASNET.md) for a full training. ``proxy`` is what the search
trains each sampled child with; its validation accuracy is the reward's ACC(m). ``smoke`` is a
few steps on a few hundred images for tests. Derive variants with ``dataclasses.replace``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable


@dataclasses.dataclass(frozen=True)
class DistributedConfig:
    """Where the JAX coordinator is, for multi-host data parallelism (jax.distributed)."""

    coordinator_address: str
    num_processes: int
    process_id: int


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Everything a child training needs besides the architecture, the data and the PRNG key."""

    name: str = "paper"
    # -- length ----------------------------------------------------------------------------
    batch_size: int = 128  # global, over all devices and processes
    epochs: float = 350.0
    max_steps: int | None = None  # a step budget; overrides epochs when set
    train_limit: int | None = None  # train on the first N (already shuffled) training examples
    # -- optimiser: RMSProp with TF1 semantics ----------------------------------------------
    base_learning_rate: float = 0.016  # per 256 images; scaled linearly by batch_size / 256
    warmup_epochs: float = 5.0
    max_warmup_fraction: float = 0.1  # a short run never spends more than this warming up
    decay_rate: float = 0.97
    decay_epochs: float = 2.4
    rmsprop_decay: float = 0.9
    rmsprop_momentum: float = 0.9
    rmsprop_epsilon: float = 1e-3
    rmsprop_initial_scale: float = 1.0  # TF1 starts the square accumulator at 1
    weight_decay: float = 1e-5  # L2 on conv/dense kernels only (not BN scale/bias, not biases)
    label_smoothing: float = 0.1
    ema_decay: float | None = 0.9999  # None: evaluate the raw weights
    # Re-estimate BN statistics on this many un-augmented training images with the weights that
    # are evaluated (the EMA when kept), before evaluating; 0: BN's moving averages, as the paper
    # does after 350 epochs. Moving averages (momentum 0.99, ~100 steps of memory) lag behind
    # weights that still change fast: after 150 steps they underestimated every layer's variance
    # by 10-40%, the error compounded over depth and a model with 75% accuracy evaluated at
    # chance. They also belong to the raw weights, not the EMA. Cheap: a forward pass per batch.
    bn_recalibration_examples: int = 4096
    # -- data ------------------------------------------------------------------------------
    augment: bool = True
    eval_batch_size: int = 256
    val_limit: int | None = None  # evaluate ACC on the first N validation examples
    evaluate_test: bool = True  # test-set accuracy at the end (final numbers only)
    prefetch: int = 2
    # -- engineering -----------------------------------------------------------------------
    dw_impl: str = "auto"  # "auto" (shift on CPU, xla elsewhere), "shift" or "xla"
    # "auto": one compiled executable per distinct layer, shared by every child containing that
    # layer, where that is measured faster: the CPU with one device (short proxy runs, where
    # compiling dominates); one program per network elsewhere (more devices, GPU/TPU: whole-network
    # fusion pays). False: one program per network everywhere (full trainings). True: as "auto"
    # (per-stage executables are single-device CPU programs). Both compile the same recipe
    # (train/recipe.py). See `trains_stage_by_stage` and train/layerwise.py.
    layerwise: bool | str = False
    # Stage by stage only: train channel-padded stages (mnas_jax/models/padding.py), keyed by what
    # changes their program, so children share far more executables; the variables handed back
    # have Net's shapes and the arithmetic of the real channels is unchanged (float rounding aside).
    pad_channels: bool = False
    # Train and evaluate at this input resolution instead of the setting's: the same
    # architecture on smaller images, a cheaper proxy whose fidelity benchmarks/proxy_fidelity
    # measures. None: the setting's input size.
    input_size: int | None = None
    log_every: int = 50  # steps between metric fetches (NaN checks happen there too)
    checkpoint_dir: str | None = None  # orbax checkpoints (full trainings); None: none
    checkpoint_every_epochs: float = 5.0
    compile_cache_dir: str | None = None  # JAX persistent compilation cache

    def __post_init__(self) -> None:
        positive = ("batch_size", "epochs", "base_learning_rate", "decay_epochs", "eval_batch_size", "log_every")
        for field in positive:
            if getattr(self, field) <= 0:
                raise ValueError(f"{field}={getattr(self, field)!r} must be > 0")
        if self.bn_recalibration_examples < 0:
            raise ValueError(f"bn_recalibration_examples={self.bn_recalibration_examples!r} must be >= 0")
        if self.layerwise not in (False, True, "auto"):
            raise ValueError(f"layerwise={self.layerwise!r}; use 'auto', True or False")
        if self.layerwise and self.checkpoint_dir:
            raise ValueError("layer-wise training (short proxy runs) does not checkpoint; "
                             "set layerwise=False for a checkpointed training")
        for field in ("max_steps", "train_limit", "val_limit", "input_size"):
            value = getattr(self, field)
            if value is not None and value <= 0:
                raise ValueError(f"{field}={value!r} must be > 0 or None")
        if self.ema_decay is not None and not 0.0 < self.ema_decay < 1.0:
            raise ValueError(f"ema_decay={self.ema_decay!r} must be in (0, 1) or None")
        if self.dw_impl not in ("auto", "shift", "xla"):
            raise ValueError(f"dw_impl={self.dw_impl!r}; use 'auto', 'shift' or 'xla'")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ValueError(f"label_smoothing={self.label_smoothing!r} must be in [0, 1)")

    @property
    def learning_rate(self) -> float:
        """The peak learning rate: the base rate scaled by batch size (linear scaling rule)."""
        return self.base_learning_rate * self.batch_size / 256.0


def trains_stage_by_stage(layerwise: bool | str, num_devices: int, platform: str) -> bool:
    """Whether a child with this ``layerwise`` setting trains stage by stage on this placement:
    only on the CPU with one device (where it was measured faster), never with False."""
    return bool(layerwise) and num_devices == 1 and platform == "cpu"


def paper() -> TrainConfig:
    """The MnasNet recipe (350 epochs of it on ImageNet); shorten with replace(epochs=...)."""
    return TrainConfig()


def proxy() -> TrainConfig:
    """One search child: 120 steps of 32 images at 16x16 (the fmnist images shrunk 2x), trained
    layer-wise, ACC on part of the validation set.

    Cost on an idle 2-core machine (benchmarks/reports/child_cost.md, cold process, fresh
    sampled children): median 59 s a child (21.5 s compiling the stages not seen before, 31.5 s
    training, 3.4 s evaluating), 0.83x the wall of the budget it replaced (40 steps at 32x32,
    61 s), which ranked little: after it, MobileNetV2-0.35 and one sampled child of five were
    near chance (0.15-0.22). At 120 steps at 16x16 every child measured learned (0.49-0.69),
    and the two seeds of an architecture agreed within 0.02 (two architectures;
    benchmarks/reports/proxy_fidelity_runs/). How well this ranks against a full epoch is
    benchmarks/proxy_fidelity.py's question, not answered yet. Learning rate 0.008 per 256
    images: 0.064 diverged after ~50 steps. No warm-up: TF1 RMSProp's accumulator starts at 1,
    so the first updates are small anyway. No EMA: over a few dozen steps the weights still
    move fast and an average of the last few steps evaluated below the weights themselves; BN
    statistics recomputed on 256 training images for the same reason (issue 14).
    """
    return dataclasses.replace(
        TrainConfig(),
        name="proxy",
        batch_size=32,
        epochs=1.0,
        max_steps=120,
        train_limit=10_000,
        base_learning_rate=0.008,
        warmup_epochs=0.0,
        val_limit=512,
        bn_recalibration_examples=256,
        ema_decay=None,
        evaluate_test=False,
        log_every=40,
        layerwise="auto",
        pad_channels=True,  # 340 stage programs instead of 2,471; median ~1.15x the step (stage_programs.md)
        input_size=16,
    )


def smoke() -> TrainConfig:
    """A few real steps on a few hundred images: exercises every code path in seconds."""
    return dataclasses.replace(
        TrainConfig(),
        name="smoke",
        batch_size=32,
        epochs=1.0,
        max_steps=4,
        train_limit=256,
        warmup_epochs=0.01,
        eval_batch_size=64,
        val_limit=64,
        bn_recalibration_examples=64,
        ema_decay=None,
        evaluate_test=False,
        log_every=2,
        layerwise="auto",
        pad_channels=True,
    )


PRESETS: dict[str, Callable[[], TrainConfig]] = {"paper": paper, "proxy": proxy, "smoke": smoke}


def get_preset(name: str) -> TrainConfig:
    """A named preset; raises ValueError naming the choices."""
    try:
        return PRESETS[name]()
    except KeyError:
        raise ValueError(f"unknown training preset {name!r}; use one of {sorted(PRESETS)}") from None
