"""The whole chain on one device: lookup table -> predictor -> search with calibration -> report.

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
from calibration.drift import write_series
from latency.session import DeviceSession
from mnas_jax.controller.ppo import PPOSearcher
from mnas_jax.reward import RewardConfig, Target
from mnas_jax.search.children import check_data, train_child
from mnas_jax.search.config import SearchConfig, identity
from mnas_jax.search.executors import LocalExecutor, RayExecutor
from mnas_jax.search.loop import LoopConfig, run_loop
from mnas_jax.search.pareto import dominates, pareto_front
from mnas_jax.search.workdir import local_workdir
from mnas_jax.search.report import front_candidates, plot_search, write_samples
from mnas_jax.space import ArchSpec, get_space, reference
from predictor import device_fit as df
from predictor.io import save_predictor

log = logging.getLogger(__name__)


def run_id_of(config: SearchConfig) -> str:
    body = json.dumps(identity(config), sort_keys=True, default=str)
    return f"{config.name}-{hashlib.sha256(body.encode()).hexdigest()[:10]}"


class PredictorEstimator:
    """LAT(m) from the predictor, in units of the reference model; refits on calibration."""

    unit = "relative"

    def __init__(self, predictor: Any, save_dir: Path) -> None:
        self.predictor, self.save_dir = predictor, save_dir

    def predict(self, specs: Sequence[ArchSpec]) -> tuple[np.ndarray, np.ndarray]:
        value, unc = self.predictor.predict(list(specs))
        return np.asarray(value, float), np.asarray(unc, float)

    def add_and_refit(self, specs: Sequence[ArchSpec], latencies: Sequence[float]) -> None:
        self.predictor = self.predictor.refit(list(specs), list(latencies),
                                              ids=[s.arch_id for s in specs])
        save_predictor(self.predictor, self.save_dir)


def _status(msg: str) -> None:
    from rich.console import Console

    Console(stderr=True).print(f"[bold cyan]mnas search[/]: {msg}")


def run_search(config: SearchConfig, workdir: str | Path, *, device: str | None = None,
               executor: str | None = None, ray_address: str | None = None,
               resume: bool = False, progress: bool = True) -> Path:
    """Run (or resume) the search; returns the report directory."""
    workdir = local_workdir(workdir)
    config = dataclasses.replace(config, device=device or config.device,
                                 executor=executor or config.executor,
                                 ray_address=ray_address or config.ray_address)
    run_id = run_id_of(config)
    ckpt = workdir / "search_checkpoint.json"
    if ckpt.exists() and not resume:
        raise ValueError(f"{workdir} already holds a search (search_checkpoint.json): pass "
                         "--resume to continue it, or use another --workdir")
    space = get_space(config.space, config.setting)
    setting = space.setting
    target = Target.parse(config.target)
    check_data(config.data, config.data_dir, config.setting)  # before anything is measured
    started = time.time()
    with DeviceSession.open(config.device, workdir) as session:
        fp = session.device.fingerprint()
        _status(f"device {config.device} ({fp.device_id}), run {run_id}")
        table = None
        if config.use_table:
            _status(f"lookup table for {config.space}/{setting} (built once per device)")
            table = df.ensure_table(session, workdir, config.space, setting, progress,
                                        passes=config.table_passes)
        pdir = workdir / "predictors" / f"{run_id}"
        _status(f"predictor: {config.predictor_archs} architectures measured on the device")
        train_specs = df.sample_specs(config.space, setting, config.predictor_archs,
                                      config.seed + 1)
        y = df.measure_relative(session, train_specs, progress=progress)
        if resume and pdir.exists():
            from predictor.io import load_predictor

            pred = load_predictor(pdir, space=config.space, setting=setting,
                                  device_id=fp.device_id,
                                  table=None if table is None else table.entries_relative)
        else:
            pred = df.fit_on_device(train_specs, y, table, fingerprint=fp.to_dict(),
                                    seed=config.seed)
            save_predictor(pred, pdir)
        estimator = PredictorEstimator(pred, pdir)
        if target.is_relative:
            if target.reference_name != "mobilenetv2":
                raise ValueError(f"relative targets are against mobilenetv2 (the reference "
                                 f"measured beside every candidate), not {target.reference_name}")
            t_value = target.value
        else:
            ref_ms = np.median([r.record.median_ms for r in session.store.measurements(
                kind="reference", device_id=fp.device_id)][-20:])
            t_value = target.value / ref_ms
        reward = RewardConfig.preset(config.reward, t_value)

        store = session.store
        rounds = [e.payload for e in store.events("calibration") if e.payload.get("run_id") == run_id]

        def measure(specs: Sequence[ArchSpec]) -> list[float]:
            return list(df.measure_relative(session, specs, fresh=True, progress=False))

        def remeasure(n: int) -> list[tuple[ArchSpec, float]]:
            specs = train_specs[:n]
            return list(zip(specs, measure(specs)))

        calibrator = Calibrator(config.calibration, estimator, measure, remeasure,
                                on_round=lambda r: store.append_event(
                                    "calibration", {**r, "run_id": run_id}),
                                rounds=rounds)
        overrides = tuple(config.train_overrides.items()) + tuple(
            (k, v) for k, v in (("max_steps", config.train_steps), ("train_limit", config.train_limit),
                                ("val_limit", config.val_limit)) if v is not None)
        train_fn = functools.partial(train_child, preset=config.train_preset, overrides=overrides,
                                     data=config.data, data_dir=config.data_dir)
        if config.executor == "ray":
            from latency.prefetch import split_cores

            core = getattr(session.device, "core", None)  # set for a local CPU device only
            free = split_cores(core)[1] if core is not None else None
            evaluator: Any = RayExecutor(train_fn, config.ray_address,
                                         resources=config.child_resources, train_cores=free)
        else:
            evaluator = LocalExecutor(train_fn)

        def on_step(step: int, record: dict[str, Any]) -> None:
            store.append_event("search_step", {**record, "run_id": run_id})
            cal = record.get("calibration", {}).get("before_refit")
            _status(f"step {step + 1}/{config.steps}: mean reward {record['mean_reward']:.4f}, "
                    f"best {record['max_reward']:.4f}"
                    + (f"; calibration error {cal['mean_abs_pct']:.1f}%" if cal else ""))

        _status(f"search: {config.steps} steps x {config.batch_size} children, reward "
                f"{config.reward}, T = {t_value:g} x mobilenetv2")
        samples_of = lambda rid: [e.payload for e in store.events("sample")  # noqa: E731
                                  if e.payload["run_id"] == rid]
        run_loop(run_id=run_id, workdir=workdir, space=space,
                 config=LoopConfig(config.steps, config.batch_size, config.screen_factor,
                                   config.seed),
                 reward=reward, searcher=PPOSearcher(space.choices, config.ppo, config.seed),
                 searcher_from_bytes=PPOSearcher.from_bytes, estimator=estimator,
                 evaluator=evaluator, calibrator=calibrator,
                 append_sample=lambda p: store.append_event("sample", p),
                 stored_samples=samples_of, on_step=on_step)
        _status("report: measuring the best found models and the MobileNetV2 family")
        out = write_report(config, run_id, workdir, session, samples_of(run_id),
                           calibrator.rounds, evaluator, t_value, train_fn)
        if config.executor == "ray":
            evaluator.shutdown()
    _status(f"done in {time.time() - started:.0f} s: report in {out}")
    return out


def write_report(config: SearchConfig, run_id: str, workdir: Path, session: DeviceSession,
                 samples: list[dict[str, Any]], rounds: list[dict[str, Any]], evaluator: Any,
                 target: float, train_fn: Any) -> Path:
    out = workdir / "report"
    out.mkdir(parents=True, exist_ok=True)
    best = front_candidates(samples, config.report_top_k)
    best_specs = [ArchSpec.from_string(b["spec"]) for b in best]
    base_specs = [reference(name, config.setting) for name in config.baselines]
    measured = df.measure_relative(session, best_specs + base_specs, fresh=True, progress=False)
    base_results = evaluator.evaluate(base_specs, [config.seed] * len(base_specs))
    found = [{"arch_id": s.arch_id, "spec": s.to_string(), "accuracy": b["accuracy"],
              "latency": float(m), "predicted_latency": b["predicted_latency"],
              "reward": b["reward"]} for s, b, m in zip(best_specs, best, measured)]
    baselines = [{"name": n, "arch_id": s.arch_id, "accuracy": r.accuracy, "latency": float(m),
                  "status": r.status}
                 for n, s, r, m in zip(config.baselines, base_specs, base_results,
                                       measured[len(best_specs):])]
    models = out / "models"
    models.mkdir(exist_ok=True)
    for s, data in zip(best_specs, session.exporter.archs(best_specs)):
        (models / f"{s.arch_id}.tflite").write_bytes(data)
        (models / f"{s.arch_id}.json").write_text(s.to_json())
    ok_base = [b for b in baselines if b["accuracy"] is not None]
    verdicts = []
    for f in found:
        beaten = [b["name"] for b in ok_base
                  if dominates((f["latency"], f["accuracy"]), (b["latency"], b["accuracy"]))]
        dominated_by = [b["name"] for b in ok_base
                        if dominates((b["latency"], b["accuracy"]), (f["latency"], f["accuracy"]))]
        verdicts.append({"arch_id": f["arch_id"], "dominates": beaten,
                         "dominated_by": dominated_by})
    any_dom = any(v["dominates"] for v in verdicts)
    front_idx = pareto_front([(f["latency"], f["accuracy"]) for f in found])
    measured_by_id = {c["arch_id"]: c["measured"] for r in rounds for c in r.get("candidates", [])}
    samples = [{**s, "measured_latency": measured_by_id.get(s["arch_id"], s["measured_latency"])}
               for s in samples]
    write_samples(samples, out)
    plot_search(samples, out, target=target, unit="x mobilenetv2",
                front=sorted((found[i] for i in front_idx), key=lambda f: f["latency"]),
                baselines=sorted(ok_base, key=lambda b: b["latency"]))
    write_series(rounds, out)
    summary = {"run_id": run_id, "config": dataclasses.asdict(config), "target": target,
               "unit": "latency relative to mobilenetv2 measured beside it on the device",
               "found": found, "baselines": baselines, "verdicts": verdicts,
               "any_found_dominates_a_baseline": any_dom, "n_samples": len(samples),
               "calibration_rounds": len(rounds),
               "accuracy_note": "validation accuracy after the proxy training budget; all "
                                "models (found and baselines) trained with the same budget"}
    (out / "summary.json").write_text(json.dumps(summary, indent=1, default=str))
    lines = [f"# Search {run_id}", "",
             f"{len(samples)} sampled models, {len(rounds)} calibration rounds, target T = "
             f"{target:g} x mobilenetv2 (reward {config.reward}).", "",
             "| model | val accuracy (proxy) | measured latency (x mobilenetv2) |", "|---|---|---|"]
    lines += [f"| found {f['arch_id']} | {f['accuracy']:.4f} | {f['latency']:.3f} |" for f in found]
    lines += [f"| {b['name']} | {b['accuracy'] if b['accuracy'] is None else round(b['accuracy'], 4)}"
              f" | {b['latency']:.3f} |" for b in baselines]
    lines += ["", "Verdict: " + ("a found model dominates at least one MobileNetV2 width "
                                  "(higher accuracy at no more latency, or less latency at no "
                                  "lower accuracy): " + ", ".join(
                                      f"{v['arch_id']} over {v['dominates']}" for v in verdicts
                                      if v["dominates"])
                                  if any_dom else "no found model dominates any MobileNetV2 "
                                  "width in this run."),
              "", "Plots: reward.png, latency_histogram.png, pareto.png, calibration.png."]
    (out / "report.md").write_text("\n".join(lines) + "\n")
    return out
