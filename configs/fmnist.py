"""Search configs on the Fashion-MNIST proxy (MnasNet space, fmnist setting), local CPU device.

Variants:
- main: the README's main job: lookup table, predictor, search with calibration and report
  (29 minutes on an idle 2-core machine, README "Status").
- smoke: the whole chain in a few minutes with tiny training.
- ci: the smoke chain at its smallest (the default test suite's end-to-end search): a slice of
  the space with small networks (3x3 kernels, no SE, the narrowest filters, the fewest layers),
  one controller step of 2 children, 5 predictor archs measured in one round, one pass per
  device check, children at 16x16.
- long: a longer search for a machine with time to spare.
"""

import dataclasses

from calibration.policy import CalibrationPolicy
from mnas_jax.search.config import SearchConfig

# The whole chain on an idle 2-core machine: table (one pass over the space's layers), 30
# predictor archs, 12 children of the proxy budget (120 steps x 32 images at 16x16), calibration
# rounds after steps 2 and 4, then the report: the best found model and three MobileNetV2 widths
# re-trained with 3 fresh seeds each at the same budget, their latency measured again. Measured
# time: benchmarks/reports/main_job/report.md.
MAIN = SearchConfig(
    name="fmnist-main",
    steps=4,
    batch_size=3,
    predictor_archs=30,
    table_passes=1,  # a second pass (the default) would double the table's time
    calibration=CalibrationPolicy(every=2, n_best=1, n_uncertain=1, n_random=1),
    train_preset="proxy",
    val_limit=1_000,
    report_top_k=1,
    report_seeds=3,
    baselines=("mobilenetv2-0.5", "mobilenetv2-0.75", "mobilenetv2"),
)

SMOKE = dataclasses.replace(
    MAIN, name="fmnist-smoke", steps=2, batch_size=2, use_table=False, predictor_archs=8,
    calibration=CalibrationPolicy(every=1, n_best=1, n_uncertain=1, n_random=0),
    train_preset="smoke", train_steps=None, train_limit=None, val_limit=None,
    report_top_k=1, report_seeds=2, check_rounds=2, baselines=("mobilenetv2-0.35",))

VARIANTS = {
    "main": MAIN,
    "smoke": SMOKE,
    # 3 distinct networks compiled (2 children, the baseline) instead of 5; networks of the slice
    # have the fewest layers and ~half the MACs of the whole space's, and with 16x16 inputs the
    # report's test-split evaluations (10,000 images per re-training) are ~8x cheaper; 1 round
    # per measurement: the chain is under test, not the labels' noise. 129 s end to end on a
    # core shared with a training job (224 s with every layer count, 4 rounds per measurement)
    "ci": dataclasses.replace(SMOKE, name="fmnist-ci", space="mnasnet@kernel=0,se=0,filters=0,layers=0",
                              steps=1, predictor_archs=5, measure_rounds=1, check_rounds=1,
                              train_overrides={"input_size": 16}),
    "long": dataclasses.replace(MAIN, name="fmnist-long", steps=40, batch_size=8,
                                predictor_archs=150, train_steps=300, train_limit=20_000,
                                val_limit=5_000),
}


def get_config(variant: str = "main") -> SearchConfig:
    return VARIANTS[variant]
