"""The sample-eval-update loop of MnasNet, latency-model first and resumable.

Per step: ``mnas_jax.search.step.search_step`` (ask -> estimate -> screen -> evaluate -> reward ->
tell; the module says why screening never changes a reward) with an evaluator whose results go
to the store as they arrive -> every K steps a calibration round -> checkpoint. Screened
candidates are recorded as samples (status 'screened', reward None): they cost a prediction, not
a training.

Resuming: the checkpoint holds the controller state after the last completed step; sampling is a
pure function of that state, so a resumed step draws the same candidates, and children whose
results are already in the store (from before the kill) are not trained again.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any, Callable, Sequence

from latency.workdir import Workdir
from mnas_jax.files import write_atomic
from mnas_jax.reward import RewardConfig
from mnas_jax.search.step import (
    Candidate,
    Evaluate,
    LoopConfig,
    OnResult,
    child_seed,
    reward_of,
    search_step,
)
from mnas_jax.search.types import CalibrationHook, ChildResult, Evaluator, LatencyEstimator
from mnas_jax.space import SearchSpace

log = logging.getLogger(__name__)



def check_fresh(workdir: Workdir, resume: bool) -> None:
    """ValueError when ``workdir`` already holds a search and this is no resume."""
    path = workdir.search_checkpoint
    if path.exists() and not resume:
        raise ValueError(f"{workdir.root} already holds a search ({path.name}): pass --resume to "
                         "continue it, or use another --workdir")


def save_checkpoint(workdir: Workdir, payload: dict[str, Any]) -> None:
    """Write the search's checkpoint atomically: a kill leaves the previous step's or this one."""
    write_atomic(workdir.search_checkpoint, json.dumps(payload))


def load_checkpoint(workdir: Workdir) -> dict[str, Any] | None:
    """The search checkpoint of ``workdir`` (None if there is none); ValueError if unreadable."""
    path = workdir.search_checkpoint
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError:
        raise ValueError(f"search checkpoint {str(path)!r} is unreadable; remove it to restart "
                         "the search (samples stay in the store)") from None


class ChildrenFailing(RuntimeError):
    """The first children of a search all failed with one error: a setup fault, not the archs."""


class FailFast:
    """Stops the search when its first ``k`` children trained by this process all fail with the
    same reason (data missing on a worker, a batch that does not divide the device count, a
    dead accelerator): training every further child would fail alike, each with reward 0, and
    the controller would learn from noise. Children that failed differently, or any success,
    disarm it. ``k=0`` switches it off."""

    def __init__(self, k: int = 3) -> None:
        self.k = k
        self.reasons: list[str | None] = []

    def see(self, result: ChildResult) -> None:
        """Record one trained child's result; ChildrenFailing at the k-th equal failure."""
        if self.k <= 0 or len(self.reasons) >= self.k or result.status == "screened":
            return
        first_line = (result.reason or "").strip().splitlines()[0] if result.reason else ""
        self.reasons.append(first_line if result.status == "failed" else None)
        if (len(self.reasons) == self.k and self.reasons[0] is not None
                and all(r == self.reasons[0] for r in self.reasons)):
            raise ChildrenFailing(f"the first {self.k} children all failed with: {self.reasons[0]} "
                                  "(fix the cause and resume with --resume; their samples are stored)")


def run_loop(*, run_id: str, workdir: Workdir | Path, space: SearchSpace, config: LoopConfig,
             reward: RewardConfig, searcher: Any, searcher_from_bytes: Callable[[bytes], Any],
             estimator: LatencyEstimator, evaluator: Evaluator, calibrator: CalibrationHook | None,
             append_sample: Callable[[dict[str, Any]], None],
             stored_samples: Callable[[str], list[dict[str, Any]]],
             on_step: Callable[[int, dict[str, Any]], None] | None = None,
             fail_fast: int = 3) -> Any:
    """Run (or resume) the search until `config.steps` steps are complete; returns the searcher.
    ChildrenFailing (after storing them) when the first `fail_fast` children trained here all
    fail with the same error (see `FailFast`)."""
    guard, workdir = FailFast(fail_fast), Workdir.of(workdir)
    ckpt = load_checkpoint(workdir)
    start = 0
    if ckpt is not None:
        if ckpt["run_id"] != run_id:
            raise ValueError(f"the work directory holds search {ckpt['run_id']!r}, not {run_id!r}; "
                             "use another --workdir or resume that search")
        searcher = searcher_from_bytes(bytes.fromhex(ckpt["searcher"]))
        start = ckpt["step"]
        log.info("resuming search %s at step %d", run_id, start)
    for step in range(start, config.steps):
        done = {s["index"]: s for s in stored_samples(run_id) if s["step"] == step}
        record = search_step(step, searcher=searcher, space=space, estimator=estimator, reward=reward,
                             config=config, evaluate=_stored_evaluate(evaluator, config, done),
                             on_result=_storing(run_id, step, done, reward, append_sample, guard)).record
        if calibrator is not None and calibrator.due(step):
            record["calibration"] = calibrator.run(step, stored_samples(run_id),
                                                   child_seed(config.seed, step, 10_000))
        save_checkpoint(workdir, {"run_id": run_id, "step": step + 1, "time": time.time(),
                                  "searcher": searcher.to_bytes().hex()})
        if on_step is not None:
            on_step(step, record)
    return searcher


def _stored(done: dict[int, dict[str, Any]], cand: Candidate) -> dict[str, Any] | None:
    """The sample of this step's candidate stored before a kill, if any."""
    prev = done.get(cand.index)
    return prev if prev is not None and prev["arch_id"] == cand.spec.arch_id else None


def _storing(run_id: str, step: int, done: dict[int, dict[str, Any]], reward: RewardConfig,
             append_sample: Callable[[dict[str, Any]], None], guard: FailFast) -> OnResult:
    """Store each new result of the step as a sample (results stored before a kill are not),
    then let `guard` see it."""

    def store(cand: Candidate, result: ChildResult) -> None:
        if _stored(done, cand) is None:
            append_sample(_sample_payload(run_id, step, cand, result, reward))
            guard.see(result)

    return store


def _stored_evaluate(evaluator: Evaluator, config: LoopConfig, done: dict[int, dict[str, Any]]) -> Evaluate:
    """Results stored before a kill are reused; the rest are trained by `evaluator`."""

    def evaluate(step: int, cands: Sequence[Candidate], on_result: OnResult) -> dict[int, ChildResult]:
        results: dict[int, ChildResult] = {}
        to_train = []
        for c in cands:
            prev = _stored(done, c)
            if prev is not None:
                results[c.index] = ChildResult(c.spec.arch_id, prev["status"], prev["accuracy"],
                                               prev["reason"], prev["train_seconds"])
            else:
                to_train.append(c)

        def arrived(j: int, res: ChildResult) -> None:  # stored as it arrives: a kill loses only what trains
            results[to_train[j].index] = res
            on_result(to_train[j], res)

        if to_train:
            evaluator.evaluate([c.spec for c in to_train],
                               [child_seed(config.seed, step, c.index) for c in to_train], arrived)
        return results

    return evaluate


def _sample_payload(run_id: str, step: int, cand: Candidate, result: ChildResult,
                    reward: RewardConfig) -> dict[str, Any]:
    return {"run_id": run_id, "step": step, "index": cand.index, "tokens": [int(t) for t in cand.tokens],
            "arch_id": cand.spec.arch_id, "spec": cand.spec.to_string(), "status": result.status,
            "accuracy": result.accuracy, "reason": result.reason,
            "train_seconds": result.seconds, "predicted_latency": cand.latency,
            "uncertainty": cand.uncertainty,
            "reward": None if result.status == "screened" else reward_of(result, cand.latency, reward),
            "measured_latency": None}
