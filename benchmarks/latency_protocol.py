"""Issue-3 measurements of the latency protocol on the local device (run on an idle machine).

    python benchmarks/latency_protocol.py [--gap 120] [--n 20]

(1) repeatability: MobileNetV2-224 measured 5 times in one run, max/min of the medians;
(2) drift control: N sampled MnasNet-224 archs measured in 3 passes `--gap` seconds apart, each
    pass interleaved with the reference; the median pass-to-pass difference of reference-relative
    latency vs that of absolute ms;
(3) device server: a model measured through `mnas device serve`'s HTTP server on 127.0.0.1,
    alternating with local measurements, ratio to the mean of the local medians beside it.
Writes benchmarks/reports/latency_protocol.{json,md}.
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
from latency.drift import measure_interleaved
from latency.export import Exporter
from latency.protocol import MeasureProtocol
from latency.server import make_server
from mnas_jax.space import get_space, reference, sample_tokens

OUT = Path(__file__).parent / "reports"


def repeatability(dev, model: bytes, protocol: MeasureProtocol) -> dict:
    medians = [dev.measure(model, protocol).median_ms for _ in range(5)]
    return {"medians_ms": medians, "max_over_min": max(medians) / min(medians)}


def drift_passes(dev, items, ref: bytes, protocol, gap: float) -> dict:
    passes = []
    for p in range(3):
        if p:
            time.sleep(gap)
        res = measure_interleaved(dev, items, ref, protocol, progress=True)
        passes.append({c.key: (c.measurement.median_ms, c.relative) for c in res.candidates})
    abs_d, rel_d = [], []
    for a, b in itertools.combinations(range(3), 2):
        for k in passes[a]:
            abs_d.append(abs(passes[a][k][0] / passes[b][k][0] - 1))
            rel_d.append(abs(passes[a][k][1] / passes[b][k][1] - 1))
    return {"median_abs_ms_diff_pct": 100 * statistics.median(abs_d),
            "median_relative_diff_pct": 100 * statistics.median(rel_d),
            "max_abs_ms_diff_pct": 100 * max(abs_d), "max_relative_diff_pct": 100 * max(rel_d),
            "gap_s": gap, "n_archs": len(items)}


def server_vs_local(dev, model: bytes, protocol) -> dict:
    token = secrets.token_hex(16)
    server = make_server(dev, token)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        remote = RemoteDevice(server.url, token)
        local = [dev.measure(model, protocol).median_ms]
        ratios = []
        for _ in range(3):
            r = remote.measure(model, protocol).median_ms
            local.append(dev.measure(model, protocol).median_ms)
            ratios.append(r / ((local[-1] + local[-2]) / 2))
    finally:
        server.shutdown()
    return {"ratios": ratios, "max_abs_diff_pct": 100 * max(abs(r - 1) for r in ratios)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--gap", type=float, default=120.0)
    ap.add_argument("--n", type=int, default=20)
    ap.add_argument("--core", type=int, default=None, help="pin measurements to this core")
    args = ap.parse_args()
    core = args.core if args.core is not None else sorted(os.sched_getaffinity(0))[-1]
    dev = LocalDevice(threads=1, core=core)
    protocol = MeasureProtocol()
    exporter = Exporter(Path(".mnas_cache") / "tflite")
    mbv2 = exporter.export(reference("mobilenetv2"))
    space = get_space("mnasnet", "imagenet")
    specs = [space.decode(t) for t in sample_tokens(space.choices, 2024, args.n)]
    items = [(s.arch_id, exporter.export(s)) for s in specs]
    report = {"device": dev.fingerprint().to_dict(), "load_avg_start": os.getloadavg(),
              "repeatability": repeatability(dev, mbv2, protocol),
              "drift": drift_passes(dev, items, mbv2, protocol, args.gap),
              "server": server_vs_local(dev, mbv2, protocol),
              "load_avg_end": os.getloadavg()}
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "latency_protocol.json").write_text(json.dumps(report, indent=1))
    r, d, s = report["repeatability"], report["drift"], report["server"]
    md = [
        "| check | value | target |", "|---|---|---|",
        f"| MobileNetV2-224 x5, max/min of medians | {r['max_over_min']:.4f} | <= 1.03 |",
        f"| {d['n_archs']} archs x 3 passes {d['gap_s']:.0f} s apart: median pass-to-pass diff, "
        f"relative | {d['median_relative_diff_pct']:.2f}% | <= 1% and below absolute |",
        f"| same, absolute ms | {d['median_abs_ms_diff_pct']:.2f}% | |",
        f"| server vs local (3 rounds), max diff | {s['max_abs_diff_pct']:.2f}% | <= 5% |",
        f"| load average start / end | {report['load_avg_start'][0]:.2f} / "
        f"{report['load_avg_end'][0]:.2f} | idle |",
    ]
    (OUT / "latency_protocol.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
