"""The whole chain on one device, as a row of named phases:

resolve target -> ensure table -> ensure predictor (or a given one) -> make calibrator and
evaluator -> search loop -> assess -> export found -> write report (mnas_jax.search.report)

Everything measured goes to the store in the work directory; everything derived (table,
predictor, checkpoint, report) is rebuilt or reloaded from it, so a killed run resumes.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import logging
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from calibration.calibrator import Calibrator
from latency.cached import ensure_table as ensure_device_table
from latency.cached import reference_ms
from latency.lut import LatencyTable
from latency.session import DeviceSession
from latency.store import MeasurementStore
from latency.workdir import Workdir
from mnas_jax.controller.ppo import PPOSearcher
from mnas_jax.files import write_atomic
from mnas_jax.reward import RewardConfig, Target
from mnas_jax.search.assess import Assessed, retrain_seeds
from mnas_jax.search.children import check_data, train_child
from mnas_jax.search.config import SearchConfig, identity
from mnas_jax.search.executors import LocalExecutor, RayExecutor
from mnas_jax.search.loop import LoopConfig, check_fresh, run_loop
from mnas_jax.search.report import front_candidates, write_search_report
from mnas_jax.search.target import ResolvedTarget, resolve_target
from mnas_jax.search.types import Evaluator
from mnas_jax.space import ArchSpec, SearchSpace, get_space, narrower_space, reference, sample_specs
from mnas_jax.train.runtime import driver_only_cpu
from predictor.device import adopt_predictor, fit_device
from predictor.io import load_predictor, save_predictor
from predictor.kinds import Predictor

log = logging.getLogger(__name__)


def run_id_of(config: SearchConfig) -> str:
    """A search's identity: its name and a hash of what makes it what it is (config.identity)."""
    body = json.dumps(identity(config), sort_keys=True, default=str)
    return f"{config.name}-{hashlib.sha256(body.encode()).hexdigest()[:10]}"


class PredictorEstimator:
    """LAT(m) from the predictor, in units of the reference model; refits on calibration."""

    unit = "relative"

    def __init__(self, predictor: Predictor, save_dir: Path) -> None:
        self.predictor, self.save_dir = predictor, save_dir

    def predict(self, specs: Sequence[ArchSpec]) -> tuple[np.ndarray, np.ndarray]:
        """(latency, uncertainty) per spec."""
        value, unc = self.predictor.predict(list(specs))
        return np.asarray(value, float), np.asarray(unc, float)

    def add_points(self, specs: Sequence[ArchSpec], latencies: Sequence[float], ids: Sequence[str]) -> int:
        """Refit with the points whose ids the predictor lacks, save atomically; count them."""
        have = set(self.predictor.train_ids)
        new = [(s, y, i) for s, y, i in zip(specs, latencies, ids) if i not in have]
        if new:
            self.predictor = self.predictor.refit([s for s, _, _ in new], [y for _, y, _ in new],
                                                  ids=[i for _, _, i in new])
            save_predictor(self.predictor, self.save_dir)
        return len(new)


def _status(msg: str) -> None:
    from rich.console import Console

    Console(stderr=True).print(f"[bold cyan]mnas search[/]: {msg}")


# -- phases ---------------------------------------------------------------------------------------

def resolve_search_target(config: SearchConfig, space: SearchSpace, session: DeviceSession) -> ResolvedTarget:
    """T in the search's unit (multiples of the space's reference measured beside every
    candidate); a target in ms is divided by the recent median of this setting's reference on
    the device, measured first when the work directory holds none."""
    ms = None
    if not Target.parse(config.target).is_relative and space.reference_name is not None:
        ms = reference_ms(session, space.setting, space.reference_name)
    return resolve_target(config.target, space, ms)


def ensure_table(config: SearchConfig, session: DeviceSession, workdir: Workdir, space: SearchSpace,
                 progress: bool) -> LatencyTable | None:
    """The device's lookup table for the space (built once per device), if the config uses one."""
    if not config.use_table:
        return None
    _status(f"lookup table for {space.name}/{space.setting} (built once per device)")
    return ensure_device_table(session, workdir, space, progress, passes=config.table_passes)


def ensure_predictor(config: SearchConfig, session: DeviceSession, workdir: Workdir, space: SearchSpace,
                     run_id: str, table: LatencyTable | None, resume: bool, progress: bool
                     ) -> tuple[Predictor, Path, list[ArchSpec]]:
    """The search's predictor (loaded when resuming, else fitted on freshly measured archs), the
    directory it is saved in, and the archs it was fitted on."""
    pdir = workdir.run_predictor(run_id)
    _status(f"predictor: {config.predictor_archs} architectures measured on the device")
    train_specs = sample_specs(space, config.predictor_archs, config.seed + 1)
    pred = fit_device(session, workdir, space, train_specs, pdir, table=table, seed=config.seed,
                      progress=progress, reuse=resume)
    return pred, pdir, train_specs


def given_predictor(config: SearchConfig, session: DeviceSession, workdir: Workdir, space: SearchSpace,
                    run_id: str, path: str | Path, resume: bool
                    ) -> tuple[Predictor, Path, list[ArchSpec], SearchSpace]:
    """`mnas search --predictor DIR`, instead of the table and predictor phases: DIR holds a
    predictor fitted or transferred for the search's device. Calibration refits go to the run's
    copy (DIR stays as it is; its lookup table, if any, is copied to WORKDIR/tables/ where the
    copy finds it). A predictor fitted on a slice of the config's space restricts the search to
    the slice. Returns the predictor, its copy's directory, the archs re-measured on large drift
    and the space searched."""
    device_id = session.device.fingerprint().device_id
    pdir = workdir.run_predictor(run_id)
    if resume and pdir.exists():
        pred = load_predictor(pdir, setting=space.setting, device_id=device_id)
    else:
        pred = adopt_predictor(path, workdir, pdir, space.setting, device_id)
    searched = narrower_space(pred.space, space.name)
    if searched is None:
        raise ValueError(f"--predictor {path} is for space {pred.space!r}, not the config's "
                         f"{space.name!r}: use a predictor fitted on this space")
    space = get_space(searched, space.setting)
    _status(f"predictor {path} ({len(pred.train_ids)} archs measured on the device); "
            f"searching {space.name}")
    train_specs = sample_specs(space, config.predictor_archs, config.seed + 1)
    return pred, pdir, train_specs, space


def make_evaluator(config: SearchConfig, session: DeviceSession, *, held_out: bool = False) -> Evaluator:
    """Children trained in this process (default) or on a Ray cluster, on the config's data;
    `held_out`: also scored on the test split, which the search never sees (the report's
    re-trainings)."""
    overrides = tuple(config.train_overrides.items()) + ((("evaluate_test", True),) if held_out else ()) + tuple(
        (k, v) for k, v in (("max_steps", config.train_steps), ("train_limit", config.train_limit),
                            ("val_limit", config.val_limit)) if v is not None)
    train_fn = functools.partial(train_child, preset=config.train_preset, overrides=overrides,
                                 data=config.data, data_dir=config.data_dir)
    if config.executor == "ray":
        from latency.prefetch import split_cores

        core = getattr(session.device, "core", None)  # set for a local CPU device only
        free = split_cores(core)[1] if core is not None else None
        return RayExecutor(train_fn, config.ray_address, resources=config.child_resources, train_cores=free)
    return LocalExecutor(train_fn)


def make_calibrator(config: SearchConfig, session: DeviceSession, run_id: str, estimator: PredictorEstimator,
                    train_specs: list[ArchSpec]) -> Calibrator:
    """Calibration rounds whose measurements and records live in the store (resumable)."""
    store = session.store

    def measure(specs: Sequence[ArchSpec], tag: str) -> list[float]:
        return session.measure_tagged(specs, f"{run_id}/{tag}", config.check_rounds)

    def remeasure(n: int, tag: str) -> list[tuple[ArchSpec, float]]:
        return list(zip(train_specs[:n], measure(train_specs[:n], tag)))

    mine = lambda kind: [e.payload for e in store.events(kind) if e.payload.get("run_id") == run_id]  # noqa: E731
    calibrator = Calibrator(config.calibration, estimator, measure, remeasure,
                            on_round=lambda r: store.append_event("calibration", {**r, "run_id": run_id}),
                            on_refit=lambda r: store.append_event("calibration_refit", {**r, "run_id": run_id}),
                            rounds=mine("calibration"), refits=mine("calibration_refit"))
    calibrator.sync()  # a run killed between storing a round and saving its refit catches up here
    return calibrator


def assess(config: SearchConfig, run_id: str, session: DeviceSession, evaluator: Evaluator,
           samples: list[dict[str, Any]]) -> tuple[list[Assessed], list[Assessed]]:
    """Top-k found models and the baselines: latency measured again (median over passes) and
    re-trained with fresh seeds; results stored as they arrive, so a resumed report re-trains
    nothing already done."""
    store = session.store
    best = front_candidates(samples, config.report_top_k)
    named = [(f"found-{i + 1}", "found", ArchSpec.from_string(b["spec"]), b) for i, b in enumerate(best)]
    named += [(n, "baseline", reference(n, config.setting), None) for n in config.baselines]
    specs = [spec for _, _, spec, _ in named]
    latency = session.measure_tagged(specs, f"{run_id}/report", config.check_rounds)
    seeds = retrain_seeds(config.seed, config.report_seeds)
    # rows stored before the report scored on the test split lack test_accuracy: trained again
    done = {(e.payload["arch_id"], e.payload["seed"]): e.payload for e in store.events("report_child")
            if e.payload.get("run_id") == run_id and "test_accuracy" in e.payload}
    todo = [(spec, seed) for spec in {s.arch_id: s for s in specs}.values() for seed in seeds
            if (spec.arch_id, seed) not in done]

    def arrived(i: int, result: Any) -> None:
        row = {"run_id": run_id, "arch_id": todo[i][0].arch_id, "seed": todo[i][1], "status": result.status,
               "accuracy": result.accuracy, "test_accuracy": result.extra.get("test_accuracy"),
               "reason": result.reason}
        store.append_event("report_child", row)
        done[(row["arch_id"], row["seed"])] = row

    if todo:
        evaluator.evaluate([s for s, _ in todo], [seed for _, seed in todo], arrived)
    out = []
    for (name, kind, spec, sample), lat in zip(named, latency):
        runs = [done[(spec.arch_id, s)] for s in seeds]
        ok = [r for r in runs if r["status"] == "ok" and r["test_accuracy"] is not None]
        out.append(Assessed(name, kind, spec.arch_id, spec.to_string(),
                            tuple(float(r["test_accuracy"]) for r in ok), len(runs) - len(ok), float(lat),
                            None if sample is None else sample["accuracy"],
                            None if sample is None else sample["predicted_latency"],
                            tuple(float(r["accuracy"]) for r in ok if r["accuracy"] is not None)))
    return [a for a in out if a.kind == "found"], [a for a in out if a.kind == "baseline"]


def export_found(session: DeviceSession, found: Sequence[Assessed], out: Path) -> None:
    """The found models as spec JSON and .tflite beside the report."""
    models = out / "models"
    models.mkdir(parents=True, exist_ok=True)
    specs = [ArchSpec.from_string(a.spec) for a in found]
    for s, data in zip(specs, session.exporter.archs(specs)):
        write_atomic(models / f"{s.arch_id}.tflite", data)
        write_atomic(models / f"{s.arch_id}.json", s.to_json())


def search_loop(config: SearchConfig, run_id: str, workdir: Workdir, space: SearchSpace, target: ResolvedTarget,
                store: MeasurementStore, estimator: PredictorEstimator, evaluator: Evaluator,
                calibrator: Calibrator) -> list[dict[str, Any]]:
    """Run (or resume) the controller's steps; every sample and step goes to the store. Returns
    the run's samples."""
    samples_of = lambda rid: [e.payload for e in store.events("sample")  # noqa: E731
                              if e.payload["run_id"] == rid]

    def on_step(step: int, record: dict[str, Any]) -> None:
        store.append_event("search_step", {**record, "run_id": run_id})
        cal = record.get("calibration", {}).get("before_refit")
        _status(f"step {step + 1}/{config.steps}: mean reward {record['mean_reward']:.4f}, best "
                f"{record['max_reward']:.4f}, {record['screened']} screened"
                + (f"; calibration error {cal['mean_abs_pct']:.1f}%" if cal else ""))

    _status(f"search: {config.steps} steps x {config.batch_size} children, reward {config.reward}, "
            f"T = {target.value:g} {target.unit}")
    run_loop(run_id=run_id, workdir=workdir, space=space,
             config=LoopConfig(config.steps, config.batch_size, config.screen_factor, config.seed),
             reward=RewardConfig.preset(config.reward, target.value),
             searcher=PPOSearcher(space.choices, config.ppo, config.seed),
             searcher_from_bytes=PPOSearcher.from_bytes, estimator=estimator, evaluator=evaluator,
             calibrator=calibrator, append_sample=lambda p: store.append_event("sample", p),
             stored_samples=samples_of, on_step=on_step)
    return samples_of(run_id)


# -- the chain --------------------------------------------------------------------------------------

def run_search(config: SearchConfig, workdir: str | Path | Workdir, *, device: str | None = None,
               executor: str | None = None, ray_address: str | None = None,
               resume: bool = False, progress: bool = True,
               predictor: str | Path | None = None) -> Path:
    """Run (or resume) the search; returns the report directory."""
    workdir = Workdir.of(workdir)
    config = dataclasses.replace(config, device=device or config.device, executor=executor or config.executor,
                                 ray_address=ray_address or config.ray_address)
    run_id = run_id_of(config)
    if config.executor == "ray":  # children train on workers: the driver keeps off the accelerators
        driver_only_cpu()
    check_fresh(workdir, resume)
    space = get_space(config.space, config.setting)
    check_data(config.data, config.data_dir, config.setting)  # before anything is measured
    started = time.time()
    with DeviceSession.open(config.device, workdir, rounds=config.measure_rounds) as session:
        _status(f"device {config.device} ({session.device.fingerprint().device_id}), run {run_id}")
        target = resolve_search_target(config, space, session)
        if predictor is None:
            table = ensure_table(config, session, workdir, space, progress)
            pred, pdir, train_specs = ensure_predictor(config, session, workdir, space, run_id, table,
                                                       resume, progress)
        else:
            pred, pdir, train_specs, space = given_predictor(config, session, workdir, space, run_id,
                                                             predictor, resume)
        estimator = PredictorEstimator(pred, pdir)
        calibrator = make_calibrator(config, session, run_id, estimator, train_specs)
        evaluator = make_evaluator(config, session)
        try:
            samples = search_loop(config, run_id, workdir, space, target, session.store, estimator,
                                  evaluator, calibrator)
            _status(f"report: the top {config.report_top_k} found models and {len(config.baselines)} baselines, "
                    f"re-trained with {config.report_seeds} fresh seeds each, latency measured again")
            found, baselines = assess(config, run_id, session, make_evaluator(config, session, held_out=True),
                                      samples)
        finally:
            if isinstance(evaluator, RayExecutor):
                evaluator.shutdown()
        out = workdir.search_report
        export_found(session, found, out)
        write_search_report(out, run_id=run_id, config=config, target=target, samples=samples,
                            found=found, baselines=baselines, calibration=calibrator.series())
    _status(f"done in {time.time() - started:.0f} s: report in {out}")
    return out
