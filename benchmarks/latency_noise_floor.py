"""Issue 22 item 6: the label noise floor of the latency protocol on this (noisy) machine.

The same N fresh MnasNet-224 archs measured in two independent passes, each pass `--rounds`
interleaved rounds R C1 R C2 ... Cn R with MobileNetV2-224 (the protocol's drift control, odd
rounds in reverse order), every run time kept. One run then scores many protocols side by side
on the same timings, each as pass 2 vs pass 1 with the predictor's own metrics
(`predictor.metrics.noise_floor`: share within +-5% / +-10%, Kendall tau):
- k rounds per pass (k = 1, 2 (the protocol before this benchmark), 3, 4, 6, 8; a k-round
  protocol is scored on every disjoint block of k rounds and the scores averaged);
- how a measurement's runs become one number: median (the protocol's), min, 10th / 25th
  percentile, 25%-trimmed mean;
- how rounds combine: median of the per-round ratios (the protocol's), mean of their logs, ratio
  of the candidate's min-of-medians to the reference's min-of-medians;
- `paired`: candidate and reference interpreters alive together, invokes alternating C R C R,
  ratio of the medians (drift and a neighbour's bursts hit both alike); measured once after
  round 4, then beside each later round (side by side in time);
- with re-measuring while the CV is above 5% (the protocol's retries, 2) or without (each
  measurement's first attempt).

    taskset -c 0 python -m benchmarks.latency_noise_floor --core 0 --n 50 --rounds 6
    python -m benchmarks.latency_noise_floor --analyze-only     # report from the raw file

Raw timings go to runs/noise-floor/raw.jsonl (one line per finished round: the run resumes
there); the report to benchmarks/reports/latency_noise_floor.{json,md}.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "reports"
RAW = ROOT / "runs" / "noise-floor" / "raw.jsonl"
CACHE = ROOT / ".mnas_cache" / "tflite"
SEED = 2207  # fresh archs: no other benchmark or test samples with this seed
PAIRED_RUNS = 50
IDLE_REFERENCE_MS = 4.3  # MobileNetV2-224 median here with nothing else on the core (DESIGN.md)
CURRENT = "rounds=2 runs=median combine=median retries=2"  # the protocol before this benchmark
# the protocol adopted (latency.session.ARCH_PROTOCOL, ARCH_ROUNDS), chosen on this run
ADOPTED = "rounds=4 runs=median combine=median retries=0"
WHY = ("Why: more interleaved rounds (median of the ratios) is what lowers the floor: +-5% "
       "39% / 54% / 65% / 74% / 84% at 1 / 2 / 3 / 4 / 6 rounds without re-measuring. "
       "Re-measuring while the CV is above 5% fired for almost every measurement on this core "
       "and cost three times as much; at equal rounds it was worth -9 to +6 points (with vs "
       "without: 1 round 38% vs 39%, 2 rounds 54% vs 48% (one block 52% vs 36%), 3: 56% vs 65%, "
       "4: 70% vs 74%, 6: 82% vs 84%), while the same time spent on rounds buys far more. So the "
       "session measures 4 rounds without it: 74% / 94% / tau 0.925 for 70% of the old cost "
       "(6 rounds, about the old cost, gave 84% / 94% / 0.962). Min-of-runs, low percentiles and "
       "min-of-medians across rounds were worse than medians: on a shared core the fastest runs "
       "are luck, not the model. A 25%-trimmed mean of the runs scored 0-6 points above the "
       "median (not significant here; it would need a new stored statistic). Paired loops "
       "(C R C R, 1 s per arch) scored 92% in one block and 26% / 52% in the two measured side "
       "by side with rounds: unstable, not adopted. Caveat: 50 archs, one block for k >= 4, "
       "and the load changed during the run (the blocks' spread is the honest error bar).")
SAME_TIME_FROM = 4  # rounds from here on alternate with paired blocks (a side-by-side check)
POOL = 100  # archs are the first --n of POOL samples


# -- measuring ------------------------------------------------------------------------------------
def _interpreter(dev: Any, model: bytes, protocol: Any) -> Any:
    from latency.devices.local import random_inputs

    interp = dev._interpreter(model)
    details = interp.get_input_details()
    for d, a in zip(details, random_inputs(details, np.random.default_rng(protocol.seed))):
        interp.set_tensor(d["index"], a)
    return interp


def timed(dev: Any, model: bytes, protocol: Any) -> dict[str, Any]:
    """One measurement exactly as LocalDevice.measure takes it (fresh interpreter, warm-up,
    retries while the CV is above max_cv, the steadiest attempt kept), every attempt's run
    times kept (microseconds)."""
    from latency.devices.local import pinned_to_core
    from latency.protocol import measure_with_retries, summarize, time_runs

    attempts: list[list[float]] = []
    t0 = time.perf_counter()
    with pinned_to_core(dev.core):
        interp = _interpreter(dev, model, protocol)

        def attempt() -> Any:
            times = time_runs(interp.invoke, protocol)
            attempts.append([round(t * 1e6, 1) for t in times])
            return summarize(times)

        stats, _ = measure_with_retries(attempt, protocol)
    kept = min(range(len(attempts)), key=lambda i: summarize(
        np.asarray(attempts[i]) * 1e-6).cv)
    return {"attempts": attempts, "kept": kept, "wall_s": time.perf_counter() - t0,
            "t": time.time()}


def timed_paired(dev: Any, cand: bytes, ref: bytes, protocol: Any,
                 runs: int = PAIRED_RUNS) -> dict[str, Any]:
    """Candidate and reference alive together, invokes alternating C R C R ..."""
    from latency.devices.local import pinned_to_core

    t0 = time.perf_counter()
    with pinned_to_core(dev.core):
        c, r = _interpreter(dev, cand, protocol), _interpreter(dev, ref, protocol)
        for _ in range(protocol.warmup_runs):
            c.invoke()
            r.invoke()
        tc, tr = [], []
        for _ in range(runs):
            for interp, out in ((c, tc), (r, tr)):
                a = time.perf_counter_ns()
                interp.invoke()
                out.append(round((time.perf_counter_ns() - a) * 1e-3, 1))
    return {"arch": tc, "ref": tr, "wall_s": time.perf_counter() - t0, "t": time.time()}


def read_raw(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:  # a line cut by a kill
            pass
    return out


def schedule(rounds: int, paired: bool = True) -> list[tuple[str, int, int]]:
    """(what, pass, round) in measuring order: the first two rounds of each pass (passes minutes
    apart), then each later round of pass 1 and pass 2 in turn, so a run cut short already holds
    both passes of every k up to where it got; the paired blocks last."""
    first = min(2, rounds)
    out = [("round", p, r) for p in (0, 1) for r in range(first)]
    out += [("round", p, r) for r in range(first, min(rounds, SAME_TIME_FROM)) for p in (0, 1)]
    out += [("paired", p, 0) for p in (0, 1)] if paired else []
    # from round SAME_TIME_FROM on, each round followed by a paired block: side by side in time
    out += [(what, p, r) for r in range(SAME_TIME_FROM, rounds) for p in (0, 1)
            for what in ("round", "paired")]
    return out


def measure(args: argparse.Namespace) -> None:
    from latency.devices.local import LocalDevice
    from latency.export import Exporter
    from latency.protocol import MeasureProtocol
    from mnas_jax.space import get_space, reference, sample_specs

    space = get_space("mnasnet", "imagenet")
    specs = sample_specs(space, max(args.n, POOL), SEED)[:args.n]  # a smaller --n: a prefix
    exporter = Exporter(CACHE)
    t0 = time.perf_counter()
    ref = exporter.export(reference("mobilenetv2", "imagenet"))
    models = {}
    for i, s in enumerate(specs):
        models[s.arch_id] = exporter.export(s)
        print(f"exported {i + 1}/{len(specs)}", file=sys.stderr, flush=True)
    export_s = time.perf_counter() - t0
    dev = LocalDevice(threads=1, core=args.core)
    protocol = MeasureProtocol()
    args.raw.parent.mkdir(parents=True, exist_ok=True)
    done = {(d["what"], d["pass"], d["round"]) for d in read_raw(args.raw)}
    keys = [s.arch_id for s in specs]
    with args.raw.open("a") as f:
        if not done:
            f.write(json.dumps({"what": "meta", "pass": -1, "round": -1, "keys": keys,
                                "export_s": export_s, "conversions": exporter.conversions,
                                "device": dev.fingerprint().to_dict(),
                                "protocol": protocol.to_dict()}) + "\n")
        for what, p, r in schedule(args.rounds, args.paired):
            if (what, p, r) in done:
                continue
            t0 = time.perf_counter()
            load0 = os.getloadavg()[0]
            if what == "round":
                order = keys if r % 2 == 0 else list(reversed(keys))
                seq = [("ref", "mobilenetv2", timed(dev, ref, protocol))]
                for k in order:
                    seq.append(("arch", k, timed(dev, models[k], protocol)))
                    seq.append(("ref", "mobilenetv2", timed(dev, ref, protocol)))
                rec = {"seq": [{"kind": a, "key": b, **m} for a, b, m in seq]}
            else:
                rec = {"paired": {k: timed_paired(dev, models[k], ref, protocol) for k in keys}}
            rec.update({"what": what, "pass": p, "round": r, "wall_s": time.perf_counter() - t0,
                        "load_avg": [load0, os.getloadavg()[0]]})
            f.write(json.dumps(rec) + "\n")
            f.flush()
            print(f"{what} pass {p} round {r}: {rec['wall_s']:.0f} s", file=sys.stderr,
                  flush=True)


# -- scoring --------------------------------------------------------------------------------------
def _trimmed(t: np.ndarray, cut: float = 0.25) -> float:
    s = np.sort(t)
    k = int(len(s) * cut)
    return float(np.mean(s[k:len(s) - k]))


ESTIMATORS: dict[str, Callable[[np.ndarray], float]] = {
    "median": lambda t: float(np.median(t)),
    "min": lambda t: float(np.min(t)),
    "p10": lambda t: float(np.percentile(t, 10)),
    "p25": lambda t: float(np.percentile(t, 25)),
    "trimmed25": _trimmed,
}


def round_values(rec: dict[str, Any], est: Callable[[np.ndarray], float], retries: bool = True
                 ) -> dict[str, tuple[float, float]]:
    """key -> (candidate value, mean of the two reference values beside it) of one round; with
    `retries` off, every measurement's first attempt (the protocol with max_retries=0)."""
    seq = rec["seq"]
    vals = [est(np.asarray(m["attempts"][m["kept"] if retries else 0])) for m in seq]
    out = {}
    for i in range(1, len(seq), 2):
        out[seq[i]["key"]] = (vals[i], (vals[i - 1] + vals[i + 1]) / 2)
    return out


def combine(per_round: Sequence[dict[str, tuple[float, float]]], how: str, keys: Sequence[str]
            ) -> np.ndarray:
    """One relative latency per key from several rounds."""
    out = []
    for k in keys:
        c = np.array([r[k][0] for r in per_round])
        ref = np.array([r[k][1] for r in per_round])
        if how == "median":
            out.append(float(np.median(c / ref)))
        elif how == "logmean":
            out.append(float(np.exp(np.mean(np.log(c / ref)))))
        elif how == "min_of_medians":
            out.append(float(c.min() / ref.min()))
        else:
            raise ValueError(how)
    return np.array(out)


def _mean_reports(reps: Sequence[dict[str, float]]) -> dict[str, float]:
    out = {k: float(np.mean([r[k] for r in reps])) for k in reps[0] if k != "n"}
    out["n"] = reps[0]["n"]
    out["blocks"] = len(reps)
    if len(reps) > 1:
        out["within_5_range"] = [min(r["within_5"] for r in reps), max(r["within_5"] for r in reps)]
        out["within_10_range"] = [min(r["within_10"] for r in reps),
                                  max(r["within_10"] for r in reps)]
    return out


def analyze(raw: list[dict[str, Any]]) -> dict[str, Any]:
    from predictor.metrics import noise_floor

    meta = next(d for d in raw if d["what"] == "meta")
    keys = meta["keys"]
    rounds = {(d["pass"], d["round"]): d for d in raw if d["what"] == "round"}
    paired = {(d["pass"], d["round"]): d["paired"] for d in raw if d["what"] == "paired"}
    common = sorted(r for (p, r) in rounds if p == 0 and (1, r) in rounds)
    # cost: seconds per arch per round (candidate + one reference, interpreter creation included)
    per_round_s = [rounds[k]["wall_s"] / len(keys) for k in rounds]
    cvs = [summ for d in rounds.values() for m in d["seq"] if m["kind"] == "arch"
           for summ in [_cv(m["attempts"][m["kept"]])]]
    all_cvs = [_cv(a) for d in rounds.values() for m in d["seq"] for a in m["attempts"]]
    retries = [len(m["attempts"]) - 1 for d in rounds.values() for m in d["seq"]]
    result: dict[str, Any] = {
        "n_archs": len(keys), "rounds_per_pass": len(common), "seed": SEED,
        "device": meta["device"], "protocol": meta["protocol"], "export_s": meta["export_s"],
        "within_run_cv": {"median": float(np.median(cvs)), "p10": float(np.percentile(cvs, 10)),
                          "p90": float(np.percentile(cvs, 90)),
                          "first_attempts_median": float(np.median(all_cvs)),
                          "share_retried": float(np.mean([x > 0 for x in retries]))},
        "seconds_per_arch_per_round": float(np.median(per_round_s)),
        "reference_ms": {
            "median_of_medians": float(np.median([np.median(m["attempts"][m["kept"]]) / 1e3
                                                  for d in rounds.values() for m in d["seq"]
                                                  if m["kind"] == "ref"])),
            "median_of_mins": float(np.median([min(m["attempts"][m["kept"]]) / 1e3
                                               for d in rounds.values() for m in d["seq"]
                                               if m["kind"] == "ref"])),
            "idle_machine": IDLE_REFERENCE_MS},
        "load_avg": [d["load_avg"] for d in raw if "load_avg" in d],
        "variants": {},
    }
    cache: dict[tuple[int, int, str, bool], dict[str, tuple[float, float]]] = {}
    per_arch: dict[str, np.ndarray] = {}  # share of blocks within +-5%, per arch

    # without retries a measurement takes its first attempt's share of the wall time
    first_s = [sum(m["wall_s"] / len(m["attempts"]) for m in d["seq"]) / len(keys)
               for d in rounds.values()]
    result["seconds_per_arch_per_round_no_retries"] = float(np.median(first_s))

    def vals(p: int, r: int, est: str, retries: bool) -> dict[str, tuple[float, float]]:
        if (p, r, est, retries) not in cache:
            cache[(p, r, est, retries)] = round_values(rounds[(p, r)], ESTIMATORS[est], retries)
        return cache[(p, r, est, retries)]

    for k in (1, 2, 3, 4, 6, 8):
        if k > len(common):
            continue
        blocks = [common[i:i + k] for i in range(0, len(common) - k + 1, k)]
        for est, retries in itertools.product(ESTIMATORS, (True, False)):
            for how in (("median",) if k == 1 else ("median", "logmean", "min_of_medians")):
                reps, hits = [], []
                for b in blocks:
                    a = combine([vals(0, r, est, retries) for r in b], how, keys)
                    c = combine([vals(1, r, est, retries) for r in b], how, keys)
                    reps.append(noise_floor(a, c))
                    hits.append(np.abs(c / a - 1) <= 0.05 + 1e-12)
                name = f"rounds={k} runs={est} combine={how} retries={'2' if retries else '0'}"
                per_arch[name] = np.mean(hits, axis=0)
                per_round = result["seconds_per_arch_per_round" if retries
                                   else "seconds_per_arch_per_round_no_retries"]
                result["variants"][name] = {
                    **_mean_reports(reps), "rounds": k, "runs": est, "combine": how,
                    "retries": retries, "seconds_per_arch": k * per_round}
    if CURRENT in per_arch:  # the +-5% gain over the protocol before, 90% bootstrap interval
        rng = np.random.default_rng(0)
        idx = rng.integers(0, len(keys), size=(2000, len(keys)))
        for name, h in per_arch.items():
            gains = (h - per_arch[CURRENT])[idx].mean(axis=1)
            result["variants"][name]["within_5_gain_vs_current_90ci"] = [
                float(np.percentile(gains, 5)), float(np.percentile(gains, 95))]
    def paired_rel(p: int, r: int, f: Callable[[np.ndarray], float]) -> np.ndarray:
        return np.array([f(np.asarray(paired[(p, r)][k]["arch"]))
                         / f(np.asarray(paired[(p, r)][k]["ref"])) for k in keys])

    both = sorted(r for (p, r) in paired if p == 0 and (1, r) in paired)
    for est in ("median", "min", "p25"):
        if not both:
            break
        reps = [noise_floor(paired_rel(0, r, ESTIMATORS[est]), paired_rel(1, r, ESTIMATORS[est]))
                for r in both]
        secs = float(np.median([paired[(p, r)][k]["wall_s"] for p in (0, 1) for r in both
                                for k in keys]))
        result["variants"][f"paired runs={est}"] = {
            **_mean_reports(reps), "rounds": 1, "runs": est, "combine": "paired",
            "retries": False, "seconds_per_arch": secs}
    # side by side in time: rounds from SAME_TIME_FROM on, each beside a paired block
    late = [r for r in common if r >= SAME_TIME_FROM and r in both]
    if late:
        same: dict[str, Any] = {"rounds": late, "load_avg": [
            d["load_avg"] for d in raw if d.get("round", -1) in late]}
        for est, retries in (("median", True), ("median", False), ("trimmed25", False)):
            a = combine([vals(0, r, est, retries) for r in late], "median", keys)
            c = combine([vals(1, r, est, retries) for r in late], "median", keys)
            same[f"rounds={len(late)} runs={est} retries={'2' if retries else '0'}"] = \
                noise_floor(a, c)
        for est in ("median", "min", "p25"):
            same[f"paired runs={est} (each of {len(late)} blocks, mean)"] = _mean_reports(
                [noise_floor(paired_rel(0, r, ESTIMATORS[est]),
                             paired_rel(1, r, ESTIMATORS[est])) for r in late])
        result["same_time"] = same
    return result


def _cv(times_us: Sequence[float]) -> float:
    t = np.asarray(times_us)
    q1, q3 = np.percentile(t, [25, 75])
    return float((q3 - q1) / 1.3489795 / np.median(t))


def write_report(result: dict[str, Any]) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    result = dict(result, current=CURRENT, adopted=ADOPTED, why=WHY)
    (OUT / "latency_noise_floor.json").write_text(json.dumps(result, indent=1) + "\n")
    v = result["variants"]
    cv, ref = result["within_run_cv"], result["reference_ms"]
    loads = [x for pair in result["load_avg"] for x in pair]
    md = [f"# Label noise floor of the latency protocol ({result['n_archs']} fresh MnasNet-224 "
          f"archs, two passes of {result['rounds_per_pass']} interleaved rounds)", "",
          "Written by `benchmarks/latency_noise_floor.py`; a floor is pass 2 scored against pass 1 "
          "with the predictor's metrics (`predictor.metrics.noise_floor`).", "",
          f"Device: {result['device']['cpu_model']}, LiteRT {result['device']['runtime_version']}, "
          f"1 thread, XNNPACK, pinned to core {dict(result['device']['extra']).get('core')}; core 1 "
          f"ran a training campaign and other jobs shared core 0 (load average "
          f"{min(loads):.1f}-{max(loads):.1f} on 2 cores). MobileNetV2-224 median "
          f"{ref['median_of_medians']:.1f} ms (min of runs {ref['median_of_mins']:.1f} ms) against "
          f"{ref['idle_machine']} ms on an idle core. Within-run CV of a measurement (kept "
          f"attempt): median {cv['median']:.1%}, p10-p90 {cv['p10']:.1%}-{cv['p90']:.1%}; "
          f"{cv['share_retried']:.0%} of measurements re-measured (CV above 5%).", ""]
    if ADOPTED in v:
        c, a = v[CURRENT], v[ADOPTED]
        md += [f"**Floor of the protocol before** ({CURRENT}): +-5% {c['within_5']:.1%}, +-10% "
               f"{c['within_10']:.1%}, tau {c['kendall_tau']:.3f} ({c['seconds_per_arch']:.1f} s "
               f"per arch). **Adopted** ({ADOPTED}): +-5% {a['within_5']:.1%}, +-10% "
               f"{a['within_10']:.1%}, tau {a['kendall_tau']:.3f} ({a['seconds_per_arch']:.1f} s "
               "per arch).", "", WHY, ""]
    md += ["`rounds`: interleaved rounds per pass (a k-round protocol is scored on every "
           "disjoint block of k rounds, `blocks`, and averaged); `runs`: the statistic of one "
           "measurement's runs; `combine`: rounds by the median of their ratios, the mean of the "
           "log ratios, or min-of-medians (candidate's min over rounds / reference's); "
           "`retries`: the protocol's re-measuring while CV > 5% (2) or none (0); `paired`: "
           "candidate and reference invokes alternating in one loop. s/arch: measuring seconds "
           "per arch (candidate and its reference) on this loaded core.", "",
           "| protocol | +-5% | +-10% | tau | RMSPE % | s/arch | blocks | +-5% gain vs before, 90% CI |",
           "|---|---|---|---|---|---|---|---|"]
    best = sorted(v, key=lambda n: (-v[n]["within_5"], -v[n]["kendall_tau"]))
    shown = [n for n in dict.fromkeys((CURRENT, ADOPTED)) if n in v]
    shown += [n for n in best if n not in shown][:25]
    for name in shown:
        r = v[name]
        ci = r.get("within_5_gain_vs_current_90ci")
        md.append(f"| {name} | {r['within_5']:.1%} | {r['within_10']:.1%} | "
                  f"{r['kendall_tau']:.3f} | {r['rmspe']:.2f} | {r['seconds_per_arch']:.2f} | "
                  f"{r['blocks']} | {'-' if ci is None else f'{ci[0]:+.0%} to {ci[1]:+.0%}'} |")
    same = result.get("same_time")
    if same:
        loads = [x for pair in same["load_avg"] for x in pair]
        md += ["", f"Side by side in time (rounds {same['rounds']} of both passes, each followed "
               f"by a paired block; load average {min(loads):.1f}-{max(loads):.1f}):", "",
               "| protocol | +-5% | +-10% | tau | RMSPE % |", "|---|---|---|---|---|"]
        md += [f"| {name} | {r['within_5']:.1%} | {r['within_10']:.1%} | "
               f"{r['kendall_tau']:.3f} | {r['rmspe']:.2f} |"
               for name, r in same.items() if isinstance(r, dict)]
    if not any(n.startswith("paired") for n in v):
        md += ["", "The paired blocks (C R C R in one loop) were not measured in this run."]
    md += ["", f"All {len(v)} variants: benchmarks/reports/latency_noise_floor.json. Measuring "
           f"cost: {result['seconds_per_arch_per_round']:.1f} s per arch per round with "
           f"re-measuring, {result['seconds_per_arch_per_round_no_retries']:.1f} s without (first "
           "attempts; a protocol without re-measuring also keeps each R C R sandwich tighter in "
           f"time than these first attempts had it). Exporting the {result['n_archs']} archs took "
           f"{result['export_s']:.0f} s (TensorFlow conversion on the same shared core).",
           "", "Reproduce: `taskset -c 0 python -m benchmarks.latency_noise_floor --core 0 --n 50 "
           "--rounds 6` (resumes from runs/noise-floor/raw.jsonl; `--analyze-only` rewrites the "
           "report from it)."]
    (OUT / "latency_noise_floor.md").write_text("\n".join(md) + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=8, help="interleaved rounds per pass")
    ap.add_argument("--core", type=int, default=None, help="pin measurements to this core")
    ap.add_argument("--no-paired", dest="paired", action="store_false",
                    help="skip the paired C R C R blocks")
    ap.add_argument("--analyze-only", action="store_true")
    ap.add_argument("--raw", type=Path, default=RAW, help=f"raw timings (default {RAW})")
    args = ap.parse_args(argv)
    if not args.analyze_only:
        from mnas_jax.train.runtime import prepare_process

        prepare_process(probe=False)  # the exporter runs JAX: XLA:CPU flags and cache first
        measure(args)
    result = analyze(read_raw(args.raw))
    write_report(result)
    print((OUT / "latency_noise_floor.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
