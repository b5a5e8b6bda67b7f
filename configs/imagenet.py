"""Search configs on ImageNet-style data read through tensorflow-datasets (MnasNet space).

Variants:
- paper: the paper's proxy task. Each child trains 5 epochs of ImageNet (the paper recipe of
  MNASNET.md: RMSProp with TF1 semantics, warm-up then 0.97 every 2.4 epochs, base rate 0.016
  per 256 images, EMA, label smoothing) with 128 images per device, and is validated on 50K
  images held out of the training split; soft reward with T = 1.0x MobileNetV2 (75 ms on the
  paper's Pixel 1), about 8K children. Run it on accelerators with the phone behind
  `mnas device serve`:
      mnas search --config configs/imagenet.py --variant paper --workdir W \\
          --data-dir gs://BUCKET/tensorflow_datasets --device http://PHONE_HOST:8765 \\
          --executor ray --address HEAD:6379
- tiny: the whole chain (lookup table, predictor, search with calibration, report) on a small
  ImageNet-like set in the 64x64, 10-class `tiny64` setting, a few minutes of CPU; write the
  data first:  python -m mnas_jax.data.synthetic DATA_DIR
      mnas search --config configs/imagenet.py --variant tiny --data-dir DATA_DIR --workdir W
"""

import dataclasses

from calibration.policy import CalibrationPolicy
from mnas_jax.search.config import SearchConfig

PAPER = SearchConfig(
    name="imagenet-paper",
    setting="imagenet",
    data="tfds:imagenet2012",  # --data-dir DIR: where tfds prepared it (local or gs://)
    target="1.0x mobilenetv2",  # MobileNetV2 1.0 is the paper's 75 ms on the Pixel 1
    reward="soft",
    steps=1000,
    batch_size=8,  # 8K children in all, as the paper's search
    predictor_archs=300,
    table_passes=2,
    calibration=CalibrationPolicy(every=10, n_best=2, n_uncertain=2, n_random=1),
    train_preset="paper",
    train_overrides={"epochs": 5.0, "batch_per_device": 128, "evaluate_test": False},
    executor="ray",
    child_resources={"CPU": 8, "GPU": 1},  # {"TPU": 4} on a TPU VM worker
)

TINY = dataclasses.replace(
    PAPER,
    name="imagenet-tiny",
    setting="tiny64",
    data="tfds:mnas_synthetic",  # written by `python -m mnas_jax.data.synthetic DATA_DIR`
    steps=2,
    batch_size=2,
    predictor_archs=8,
    table_passes=1,
    calibration=CalibrationPolicy(every=1, n_best=1, n_uncertain=1, n_random=0),
    train_preset="smoke",
    train_overrides={},
    executor="local",
    child_resources={"CPU": 1.0},
    report_top_k=1,
    baselines=("mobilenetv2-0.35",),
)

VARIANTS = {"paper": PAPER, "tiny": TINY}


def get_config(variant: str = "paper") -> SearchConfig:
    return VARIANTS[variant]
