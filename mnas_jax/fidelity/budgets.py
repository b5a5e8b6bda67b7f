"""Training budgets of the proxy-fidelity tool: named recipes whose arithmetic never changes.

A finished run is worth hours: a budget's name stands for its recipe forever, so a row of the
results file keeps meaning what it measured. Add a budget under a new name; never edit one.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

from mnas_jax.train.config import TrainConfig, paper, proxy

REFERENCE = "reference"
PROXY = "proxy"
RETIRED = "retired"  # kept so that its rows stay readable; neither trained by default nor reported
ROLES = (REFERENCE, PROXY, RETIRED)


@dataclasses.dataclass(frozen=True)
class Budget:
    """A named training recipe and its role: the long reference or a proxy ranked against it."""

    name: str
    config: TrainConfig
    role: str = PROXY
    checkpoint: bool = False  # checkpoint under WORKDIR/checkpoints (a run longer than a session)

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ValueError(f"budget {self.name!r}: role {self.role!r}; use one of {ROLES}")

    @property
    def is_reference(self) -> bool:
        """Whether proxies are ranked against this budget."""
        return self.role == REFERENCE

    @property
    def images(self) -> int | None:
        """Training images of a step budget (None for an epoch budget: it depends on the data)."""
        c = self.config
        return None if c.max_steps is None else c.max_steps * c.batch_size


def _proxy(name: str, steps: int, size: int) -> Budget:
    return Budget(name, dataclasses.replace(proxy(), name=name, max_steps=steps, input_size=size,
                                            val_limit=1000, layerwise=True))


def budget_table() -> dict[str, Budget]:
    """Every budget by name. Names of proxies: r{input size}-s{steps} at batch 32, the proxy
    recipe, ACC on the first 1,000 validation images."""
    table = [
        # the paper's recipe for two epochs (780 steps of 128 = 99,840 fmnist images, 26x the
        # default proxy's 3,840) at the setting's resolution, all validation images
        Budget(REFERENCE, dataclasses.replace(paper(), name=REFERENCE, epochs=2.0, evaluate_test=False,
                                              val_limit=None, checkpoint_every_epochs=0.1),
               REFERENCE, checkpoint=True),
        # the first reference (1 epoch, 13x the proxy: too short); one run of it exists
        Budget("ref-e1", dataclasses.replace(paper(), name="ref-e1", epochs=1.0, evaluate_test=False,
                                             val_limit=None), RETIRED),
        # the search's proxy before this tool: 40 x 32 images at 32x32, whole network
        Budget("r32-s40-model", dataclasses.replace(proxy(), name="r32-s40-model", max_steps=40,
                                                    input_size=None, layerwise=False, val_limit=1000,
                                                    eval_batch_size=256)),
        *(_proxy(f"r16-s{steps}", steps, 16) for steps in (30, 60, 120, 240)),
        *(_proxy(f"r32-s{steps}", steps, 32) for steps in (40, 120)),
    ]
    return {b.name: b for b in table}


#: What `mnas proxy train` trains by default: the reference and the proxies of the campaign.
DEFAULT_TRAIN = (REFERENCE, "r16-s30", "r16-s60", "r16-s120", "r16-s240", "r32-s40", "r32-s120")


def pick_budgets(names: Sequence[str], table: Mapping[str, Budget]) -> list[Budget]:
    """The named budgets in order; ValueError naming the unknown ones and the valid names."""
    unknown = [n for n in names if n not in table]
    if unknown:
        raise ValueError(f"unknown budget(s) {', '.join(unknown)}; choose from {', '.join(table)}")
    if not names:
        raise ValueError(f"no budget given; choose from {', '.join(table)}")
    return [table[n] for n in dict.fromkeys(names)]
