"""External measurement files (public phone data) and fitting/evaluating on them.

The FBNet phone CSV (`data/fbnet-phones/pixel2.csv`, from the HELP repository; see the README
beside it) holds `index`, `ops` (22 space-separated FBNet op names) and `<device>_ms`.
"""

from __future__ import annotations

import csv
import dataclasses
from pathlib import Path
from typing import Any

import numpy as np

from mnas_jax.space import get_space
from predictor import metrics
from predictor.baselines import Inputs, fit_baselines
from predictor.features import Featurizer, make_featurizer
from predictor.model import LatencyPredictor, PredictorConfig, fit_predictor

DATA_DIR_NAME = "fbnet-phones"


def default_data_dir() -> Path:
    """`data/fbnet-phones` of this repository (the package sits at the repository root)."""
    return Path(__file__).resolve().parent.parent / "data" / DATA_DIR_NAME


@dataclasses.dataclass(frozen=True)
class ExternalData:
    """Token rows of one space with their measured latencies (ms) on one device."""

    space: str
    setting: str
    device: str
    ids: tuple[str, ...]
    tokens: np.ndarray
    ms: np.ndarray
    source: str

    def __len__(self) -> int:
        return len(self.ms)

    def subset(self, idx: np.ndarray) -> ExternalData:
        """The same data restricted to the rows ``idx``."""
        return dataclasses.replace(self, ids=tuple(self.ids[i] for i in idx),
                                   tokens=self.tokens[idx], ms=self.ms[idx])

    @property
    def fingerprint(self) -> dict[str, Any]:
        """A device fingerprint for data measured elsewhere: the file names the phone."""
        return {"kind": "external", "device": self.device, "source": self.source}


def load_fbnet_csv(path: str | Path, space_name: str = "fbnet") -> ExternalData:
    """Read an FBNet phone CSV; the latency column is the one ending in `_ms`."""
    path = Path(path)
    space = get_space(space_name)
    if not space.op_names:
        raise ValueError(f"--space {space_name!r}: external CSVs hold op names, and this space "
                         "has no op-name form; use a space that has (fbnet)")
    if not path.is_file():
        raise FileNotFoundError(f"measurement file {str(path)!r} does not exist "
                                f"(the Pixel 2 data is in {default_data_dir()})")
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        fields = reader.fieldnames or []
        ms_cols = [c for c in fields if c.endswith("_ms")]
        if "ops" not in fields or len(ms_cols) != 1:
            raise ValueError(f"{path}: need an 'ops' column and one '<device>_ms' column; "
                             f"got columns {fields}")
        ids, toks, ms = [], [], []
        for line, row in enumerate(reader, start=2):
            try:
                toks.append(space.parse_ops(row["ops"]))
                ms.append(float(row[ms_cols[0]]))
            except (ValueError, TypeError) as e:
                raise ValueError(f"{path}:{line}: {e}") from None
            ids.append(f"{path.stem}:{row.get('index', line - 2)}")
    ms_arr = np.array(ms)
    if not len(ms_arr) or np.any(ms_arr <= 0):
        raise ValueError(f"{path}: latencies must be > 0 and the file must have rows")
    return ExternalData(space.name, space.setting, ms_cols[0][:-3], tuple(ids),
                        np.array(toks, dtype=np.int64), ms_arr, str(path.name))


def split(n: int, train_size: int, seed: int, test_size: int | None = None
          ) -> tuple[np.ndarray, np.ndarray]:
    """Seeded disjoint train/test indices. The test set defaults to the last 1,000 rows of the
    permutation (or all not used for training when fewer), the same for every training size of
    one seed, so learning curves are measured on one fixed held-out set."""
    if not 3 <= train_size < n:
        raise ValueError(f"train size {train_size} must be in [3, {n - 1}] for {n} rows")
    perm = np.random.default_rng(seed).permutation(n)
    test_n = test_size if test_size is not None else min(1000, n - train_size)
    if train_size + test_n > n:
        raise ValueError(f"train {train_size} + test {test_n} exceed the {n} rows")
    return perm[:train_size], perm[n - test_n:]


@dataclasses.dataclass(frozen=True)
class Evaluation:
    """A predictor fitted on external data with its error report and test-set predictions."""
    predictor: LatencyPredictor
    report: dict[str, Any]  # method -> metrics, plus split info
    test_pred: dict[str, np.ndarray]  # method -> predictions on the test rows
    test_ms: np.ndarray


def fit_and_evaluate(data: ExternalData, train_size: int, seed: int, *,
                     config: PredictorConfig = PredictorConfig(), test_size: int | None = None,
                     featurizer: Featurizer | None = None) -> Evaluation:
    """Fit the predictor and every baseline on one seeded split; score all on the test rows."""
    feat = featurizer or make_featurizer(data.space, data.setting)
    tr, te = split(len(data), train_size, seed, test_size)
    train, test = data.subset(tr), data.subset(te)
    pred = fit_predictor(train.tokens, train.ms, space_name=data.space, setting=data.setting,
                         ids=train.ids, device_fingerprint=data.fingerprint, seed=seed,
                         config=config, featurizer=feat)
    choices = tuple(feat.space.choices)
    x_tr, x_te = pred.train_x, feat.from_tokens(test.tokens)
    out = {"predictor": pred.predict(x_te)}
    base = fit_baselines(Inputs(x_tr, feat.names, train.tokens, choices), train.ms)
    for name, b in base.items():
        out[name] = b.predict(Inputs(x_te, feat.names, test.tokens, choices))
    rep: dict[str, Any] = {"methods": {k: metrics.report(v[0] if k == "predictor" else v, test.ms)
                                       for k, v in out.items()}}
    unc = out["predictor"].uncertainty
    rep["methods"]["predictor"]["coverage_1sd"] = metrics.coverage(out["predictor"].value,
                                                                   test.ms, unc)
    rep.update(device=data.device, source=data.source, space=data.space, setting=data.setting,
               seed=seed, train_size=len(tr), test_size=len(te),
               choice=dataclasses.asdict(pred.choice))
    preds = {k: (v.value if k == "predictor" else v) for k, v in out.items()}
    return Evaluation(pred, rep, preds, test.ms)
