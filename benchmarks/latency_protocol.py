"""Issue-3 measurements of the latency protocol on the local device (run on an idle machine).

    python benchmarks/latency_protocol.py [--gap 120] [--n 20] [--rounds 3] [--core 1]
    python benchmarks/latency_protocol.py --setting fmnist --parts repeat --rounds 4

(1) repeatability: MobileNetV2-224 measured 5 times in one run, max/min of the medians;
(2) drift control: N sampled MnasNet-224 archs measured in 3 passes `--gap` seconds apart, each
    pass `--rounds` interleaved rounds with the reference (latency.interleaved.measure_rounds); the
    median pass-to-pass difference of reference-relative latency vs that of absolute ms, and the
    same for one round per pass (the first round of each pass, same run);
(3) device server: a model measured through `mnas device serve`'s HTTP server on 127.0.0.1,
    alternating with local measurements, ratio to the mean of the local medians beside it.
(4) repeat spread, as a search reports and calibrates latencies: N archs each measured
    `--repeats` times (every time `--rounds` interleaved passes), the spread max/min - 1 of each
    arch's repeats for three ways of combining the passes: the median (what the search keeps),
    the geometric mean (what it kept before) and the first pass alone.
Writes benchmarks/reports/latency_protocol[_SETTING].{json,md} (no suffix for imagenet).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import secrets
import statistics
import sys
import threading
import time
from pathlib import Path

import numpy as np

from latency.devices.local import LocalDevice
from latency.devices.remote import RemoteDevice
from latency.interleaved import measure_rounds
from latency.export import Exporter
from latency.protocol import MeasureProtocol
from latency.server import make_server
from mnas_jax.space import get_space, reference, sample_tokens

OUT = Path(__file__).parent / "reports"
PARTS = ("repeatability", "drift", "server", "repeat")


def repeat_spread(dev, items, ref: bytes, protocol, rounds: int, repeats: int) -> dict:
    """Each arch measured `repeats` times (every time `rounds` interleaved passes, all archs in
    one interleaved run, as a calibration round measures them); spread of its repeated values."""
    per: dict[str, dict[str, list[float]]] = {k: {"median": [], "gmean": [], "first": []} for k, _ in items}
    for _ in range(repeats):
        passes = []
        measure_rounds(dev, items, ref, protocol, rounds, progress=True, on_round=passes.append)
        for key in per:
            rels = [p.by_key()[key].relative for p in passes]
            per[key]["median"].append(statistics.median(rels))
            per[key]["gmean"].append(float(np.exp(np.mean(np.log(rels)))))
            per[key]["first"].append(rels[0])
    out = {"rounds": rounds, "repeats": repeats, "n_archs": len(items)}
    for how in ("median", "gmean", "first"):
        spreads = [max(v[how]) / min(v[how]) - 1 for v in per.values()]
        out[how] = {"median_spread_pct": 100 * statistics.median(spreads), "max_spread_pct": 100 * max(spreads)}
    out["values"] = per
    return out


def repeatability(dev, model: bytes, protocol: MeasureProtocol) -> dict:
    medians = [dev.measure(model, protocol).median_ms for _ in range(5)]
    return {"medians_ms": medians, "max_over_min": max(medians) / min(medians)}


def _pass_diffs(passes: list[dict[str, tuple[float, float]]]) -> tuple[list[float], list[float]]:
    abs_d, rel_d = [], []
    for a, b in itertools.combinations(range(len(passes)), 2):
        for k in passes[a]:
            abs_d.append(abs(passes[a][k][0] / passes[b][k][0] - 1))
            rel_d.append(abs(passes[a][k][1] / passes[b][k][1] - 1))
    return abs_d, rel_d


def drift_passes(dev, items, ref: bytes, protocol, gap: float, rounds: int) -> dict:
    """3 passes `gap` s apart; each pass is `rounds` interleaved rounds (measure_rounds). The
    single-round numbers come from the first round of each pass: the same run, side by side."""
    combined, single = [], []
    for p in range(3):
        if p:
            time.sleep(gap)
        firsts = []
        res = measure_rounds(dev, items, ref, protocol, rounds, progress=True,
                             on_round=firsts.append)
        combined.append({c.key: (c.measurement.median_ms, c.relative) for c in res.candidates})
        single.append({c.key: (c.measurement.median_ms, c.relative) for c in firsts[0].candidates})
    abs_d, rel_d = _pass_diffs(combined)
    abs_1, rel_1 = _pass_diffs(single)
    return {"median_abs_ms_diff_pct": 100 * statistics.median(abs_d),
            "median_relative_diff_pct": 100 * statistics.median(rel_d),
            "max_abs_ms_diff_pct": 100 * max(abs_d), "max_relative_diff_pct": 100 * max(rel_d),
            "single_round": {"median_abs_ms_diff_pct": 100 * statistics.median(abs_1),
                             "median_relative_diff_pct": 100 * statistics.median(rel_1)},
            "rounds": rounds, "gap_s": gap, "n_archs": len(items)}


def server_vs_local(dev, model: bytes, protocol, rounds: int = 7) -> dict:
    """Remote (through the HTTP server on 127.0.0.1) and local measurements alternate; each
    remote median is compared with the mean of the two local medians beside it. The headline is
    the median over rounds (a single round can catch a machine-wide hiccup); the max is kept."""
    token = secrets.token_hex(16)
    server = make_server(dev, token)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        remote = RemoteDevice(server.url, token)
        local = [dev.measure(model, protocol).median_ms]
        ratios = []
        for _ in range(rounds):
            r = remote.measure(model, protocol).median_ms
            local.append(dev.measure(model, protocol).median_ms)
            ratios.append(r / ((local[-1] + local[-2]) / 2))
    finally:
        server.shutdown()
    return {"ratios": ratios, "median_ratio": statistics.median(ratios),
            "median_abs_diff_pct": 100 * abs(statistics.median(ratios) - 1),
            "max_abs_diff_pct": 100 * max(abs(r - 1) for r in ratios)}


def main() -> int:
    from mnas_jax.train.runtime import prepare_process

    prepare_process(probe=False)  # XLA:CPU flags and the project's compilation cache, before JAX starts
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--gap", type=float, default=120.0)
    ap.add_argument("--n", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds per pass")
    ap.add_argument("--parts", default=",".join(PARTS),
                    help="comma-separated parts to (re)run; the others keep their last values")
    ap.add_argument("--core", type=int, default=None, help="pin measurements to this core")
    ap.add_argument("--setting", default="imagenet", help="setting of the archs and the reference")
    ap.add_argument("--repeats", type=int, default=4, help="times each arch is measured (repeat part)")
    args = ap.parse_args()
    core = args.core if args.core is not None else sorted(os.sched_getaffinity(0))[-1]
    dev = LocalDevice(threads=1, core=core)
    protocol = MeasureProtocol()
    exporter = Exporter(Path(".mnas_cache") / "tflite")
    mbv2 = exporter.export(reference("mobilenetv2", args.setting))
    space = get_space("mnasnet", args.setting)
    specs = [space.decode(t) for t in sample_tokens(space.choices, 2024, args.n)]
    items = [(s.arch_id, exporter.export(s)) for s in specs]
    parts = set(args.parts.split(","))
    stem = "latency_protocol" + ("" if args.setting == "imagenet" else f"_{args.setting}")
    path = OUT / f"{stem}.json"
    report = json.loads(path.read_text()) if path.exists() and parts != set(PARTS) else {}
    report.update({"device": dev.fingerprint().to_dict(), "load_avg_start": os.getloadavg()})
    if "repeatability" in parts:
        report["repeatability"] = repeatability(dev, mbv2, protocol)
    if "drift" in parts:
        report["drift"] = drift_passes(dev, items, mbv2, protocol, args.gap, args.rounds)
    if "server" in parts:
        report["server"] = server_vs_local(dev, mbv2, protocol)
    if "repeat" in parts:
        report["repeat"] = repeat_spread(dev, items, mbv2, protocol, args.rounds, args.repeats)
    report["load_avg_end"] = os.getloadavg()
    report["parts_run_last"] = sorted(parts)
    OUT.mkdir(parents=True, exist_ok=True)
    report["setting"] = args.setting
    (OUT / f"{stem}.json").write_text(json.dumps(report, indent=1))
    md = [f"Setting {args.setting}, reference mobilenetv2 of that setting.", "",
          "| check | value | target |", "|---|---|---|"]
    r, d, s = report.get("repeatability"), report.get("drift"), report.get("server")
    if r:
        md.append(f"| MobileNetV2 x5, max/min of medians | {r['max_over_min']:.4f} | <= 1.03 |")
    if d:
        md += [
        f"| {d['n_archs']} archs x 3 passes {d['gap_s']:.0f} s apart ({d['rounds']} interleaved rounds "
        f"each): median pass-to-pass diff, relative | {d['median_relative_diff_pct']:.2f}% | <= 1% and below absolute |",
        f"| same, absolute ms | {d['median_abs_ms_diff_pct']:.2f}% | |",
        f"| same with 1 round per pass (first round of each), relative / absolute | "
        f"{d['single_round']['median_relative_diff_pct']:.2f}% / "
        f"{d['single_round']['median_abs_ms_diff_pct']:.2f}% | |"]
    if s:
        md.append(f"| server vs local ({len(s['ratios'])} rounds), median / max diff | "
                  f"{s['median_abs_diff_pct']:.2f}% / {s['max_abs_diff_pct']:.2f}% | <= 5% |")
    rep = report.get("repeat")
    if rep:
        for how, label in (("median", "median of the passes (kept)"), ("gmean", "geometric mean of the passes"),
                           ("first", "first pass alone")):
            md.append(f"| {rep['n_archs']} archs measured {rep['repeats']} times x {rep['rounds']} passes, "
                      f"{label}: median / max spread | {rep[how]['median_spread_pct']:.2f}% / "
                      f"{rep[how]['max_spread_pct']:.2f}% | <= 3% |")
    md += [
        f"| load average start / end | {report['load_avg_start'][0]:.2f} / "
        f"{report['load_avg_end'][0]:.2f} | idle |",
    ]
    (OUT / f"{stem}.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
