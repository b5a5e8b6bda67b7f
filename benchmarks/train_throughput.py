"""Training throughput on CPU: the Flax training step vs the same network in PyTorch.

For mnasnet-a1 and mobilenetv2 in the fmnist setting (32x32x1, batch 128) this measures
  - Flax: the project's real training step (mnas_jax.train.steps.train_step with the paper's
    optimiser, EMA and label smoothing), jitted whole with the state donated, for each
    depthwise implementation (xla = feature_group_count conv, shift = shift-and-add);
  - PyTorch: the same layers written from the ArchSpec (channels_last, RMSprop, label
    smoothing), torch's own CPU kernels (oneDNN);
  - compile seconds per new child (init + train, eval and state-creation steps, compiled as
    training does), for the two references and a few random children of the MnasNet space.
Rounds of Flax and PyTorch steps alternate so that machine-wide slowdowns (other jobs on the
same cores) hit both alike; the report gives medians over rounds and the load average.

PyTorch is a benchmark-only dependency (``pip install torch==2.13.0``), never a package one.

    python benchmarks/train_throughput.py [--rounds 5] [--steps 3] [--quick]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax

from mnas_jax.data import DataSource, load_fashion_mnist, put_sharded
from mnas_jax.data.source import Batch
from mnas_jax.models import build_model, init_variables
from mnas_jax.models import depthwise as dw_module
from mnas_jax.models.depthwise import DepthwiseImpl
from mnas_jax.space import ArchSpec, get_space, reference, sample_tokens
from mnas_jax.space.spec import Activation, LayerSpec, Op, Skip
from mnas_jax.train.config import paper
from mnas_jax.train.optim import make_optimizer
from mnas_jax.train.compile import compile_child
from mnas_jax.train.sharding import make_placement

log = logging.getLogger("train_throughput")
REPORTS = Path(__file__).parent / "reports"
BATCH = 128


# ---------------------------------------------------------------------------------------------
# Flax side


@dataclasses.dataclass
class FlaxRunner:
    """A compiled training step and its state for one (spec, impl, fast-conv) variant."""

    step: Callable
    state: Any
    batch: Batch
    key: jax.Array
    compile_seconds: float

    def run(self, steps: int) -> float:
        """Seconds for ``steps`` training steps (blocking on the result)."""
        start = time.perf_counter()
        for _ in range(steps):
            self.state, metrics = self.step(self.state, self.batch, self.key)
        jax.block_until_ready(metrics["loss"])
        return time.perf_counter() - start


def build_flax(spec: ArchSpec, impl: DepthwiseImpl, data: DataSource) -> FlaxRunner:
    """Compile a child exactly as training does (mnas_jax.train.loop.compile_child)."""
    config = dataclasses.replace(paper(), batch_size=BATCH)
    placement = make_placement()
    model = build_model(spec, impl)
    tx = make_optimizer(config, steps_per_epoch=390, total_steps=390 * 350)
    key = jax.random.key(1)
    start = time.perf_counter()
    variables = jax.device_put(init_variables(model, (1, *data.image_shape), seed=0), placement.replicated)
    compiled = compile_child(model, tx, config, spec, variables, data, placement, key)
    state = compiled.make_state(variables)
    seconds = time.perf_counter() - start
    batch = put_sharded(next(data.train_batches(BATCH, seed=0, epoch=0)), placement.data)
    runner = FlaxRunner(compiled.train, state, batch, key, seconds)
    runner.run(1)  # first run allocates buffers
    return runner


# ---------------------------------------------------------------------------------------------
# PyTorch side: the same network, written from the ArchSpec's resolved layers


def build_torch(spec: ArchSpec) -> tuple[Any, Callable[[int], float]]:
    import torch
    from torch import nn

    def act(a: Activation) -> nn.Module:
        return nn.ReLU6(inplace=True) if a is Activation.RELU6 else nn.ReLU(inplace=True)

    def conv_bn(cin: int, cout: int, k: int, stride: int, a: Activation | None, groups: int = 1) -> nn.Sequential:
        mods: list[nn.Module] = [
            nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False),
            nn.BatchNorm2d(cout, momentum=0.01, eps=1e-3),
        ]
        if a is not None:
            mods.append(act(a))
        return nn.Sequential(*mods)

    class SqueezeExcite(nn.Module):
        def __init__(self, channels: int, reduced: int) -> None:
            super().__init__()
            self.reduce, self.expand = nn.Linear(channels, reduced), nn.Linear(reduced, channels)

        def forward(self, x: Any) -> Any:
            s = torch.sigmoid(self.expand(torch.relu(self.reduce(x.mean((2, 3))))))
            return x * s[:, :, None, None]

    class Layer(nn.Module):
        def __init__(self, layer: LayerSpec) -> None:
            super().__init__()
            a, cin, cout, k, s = layer.activation, layer.in_channels, layer.out_channels, layer.kernel, layer.stride
            body: list[nn.Module] = []
            if layer.op is Op.CONV:
                body.append(conv_bn(cin, cout, k, s, a))
                if layer.se_channels:
                    body.append(SqueezeExcite(cout, layer.se_channels))
            elif layer.op is Op.SEPCONV:
                body.append(conv_bn(cin, cin, k, s, a, groups=cin))
                if layer.se_channels:
                    body.append(SqueezeExcite(cin, layer.se_channels))
                body.append(conv_bn(cin, cout, 1, 1, None))
            elif layer.op in (Op.MBCONV, Op.IR):
                mid = layer.mid_channels
                if layer.expansion > 1 or layer.op is Op.IR:
                    body.append(conv_bn(cin, mid, 1, 1, a, groups=layer.groups))
                body.append(conv_bn(mid, mid, k, s, a, groups=mid))
                if layer.se_channels:
                    body.append(SqueezeExcite(mid, layer.se_channels))
                body.append(conv_bn(mid, cout, 1, 1, None, groups=layer.groups))
            else:
                raise ValueError(f"op {layer.op.value!r} is not in this benchmark's PyTorch port")
            self.body, self.skip = nn.Sequential(*body), layer.skip
            shortcut: list[nn.Module] = []
            if layer.skip is Skip.POOL:
                if s > 1:
                    shortcut.append(nn.AvgPool2d(s, s, ceil_mode=True))
                if cin != cout:
                    shortcut.append(conv_bn(cin, cout, 1, 1, None))
            self.shortcut = nn.Sequential(*shortcut)

        def forward(self, x: Any) -> Any:
            y = self.body(x)
            if self.skip is Skip.IDENTITY:
                return y + x
            if self.skip is Skip.POOL:
                return y + self.shortcut(x)
            return y

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            layers = spec.layers()
            stem, head = layers[0], spec.head_channels
            body = layers[1:-3] if head else layers[1:-2]
            self.stem = conv_bn(stem.in_channels, stem.out_channels, stem.kernel, stem.stride, spec.activation)
            self.body = nn.Sequential(*[Layer(l) for l in body])
            last = body[-1].out_channels
            self.head = conv_bn(last, head, 1, 1, spec.activation) if head else nn.Identity()
            self.dropout = nn.Dropout(spec.dropout)
            self.classifier = nn.Linear(head or last, spec.num_classes)

        def forward(self, x: Any) -> Any:
            x = self.head(self.body(self.stem(x)))
            return self.classifier(self.dropout(x.mean((2, 3))))

    torch.set_num_threads(os.cpu_count() or 1)
    net = Net().to(memory_format=torch.channels_last).train()
    opt = torch.optim.RMSprop(net.parameters(), lr=0.008, alpha=0.9, eps=1e-3, momentum=0.9, weight_decay=1e-5)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=0.1)
    x = torch.randn(BATCH, spec.input_channels, spec.input_size, spec.input_size).to(memory_format=torch.channels_last)
    y = torch.randint(0, spec.num_classes, (BATCH,))

    def run(steps: int) -> float:
        start = time.perf_counter()
        for _ in range(steps):
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(net(x), y)
            loss.backward()
            opt.step()
        float(loss.detach())
        return time.perf_counter() - start

    run(2)  # warm-up: oneDNN primitive creation
    return net, run


# ---------------------------------------------------------------------------------------------


def interleave(runners: dict[str, Callable[[int], float]], rounds: int, steps: int) -> dict[str, list[float]]:
    """images/s of each runner per round, runners alternating inside every round."""
    out: dict[str, list[float]] = {name: [] for name in runners}
    for r in range(rounds):
        for name, run in runners.items():
            out[name].append(steps * BATCH / run(steps))
        log.info("round %d/%d: %s", r + 1, rounds, {k: round(v[-1], 1) for k, v in out.items()})
    return out


def depthwise_shapes(specs: list[ArchSpec]) -> list[tuple[int, int, int, int]]:
    """Distinct (size, channels, kernel, stride) of the depthwise convolutions in ``specs``."""
    shapes = set()
    for spec in specs:
        for layer in spec.layers():
            if layer.op in (Op.SEPCONV, Op.MBCONV, Op.IR):
                channels = layer.in_channels if layer.op is Op.SEPCONV else layer.mid_channels
                shapes.add((layer.in_size, channels, layer.kernel, layer.stride))
    return sorted(shapes, reverse=True)


def depthwise_timings(shapes: list[tuple[int, int, int, int]], rounds: int) -> list[dict[str, Any]]:
    """Forward + backward milliseconds of one depthwise conv at batch 128, per implementation."""
    rows = []
    for size, channels, kernel, stride in shapes:
        x = jax.random.normal(jax.random.key(0), (BATCH, size, size, channels))
        w = jax.random.normal(jax.random.key(1), (kernel, kernel, 1, channels))
        fns = {
            impl.value: jax.jit(jax.grad(
                lambda x, w, impl=impl: (dw_module.depthwise_conv(x, w, stride=stride, impl=impl) ** 2).sum(),
                argnums=(0, 1)))
            for impl in DepthwiseImpl
        }
        times: dict[str, list[float]] = {k: [] for k in fns}
        for f in fns.values():
            jax.block_until_ready(f(x, w))
        for _ in range(rounds):
            for k, f in fns.items():
                start = time.perf_counter()
                jax.block_until_ready(f(x, w))
                times[k].append(time.perf_counter() - start)
        ms = {k: 1e3 * min(v) for k, v in times.items()}
        rows.append({"size": size, "channels": channels, "kernel": kernel, "stride": stride, "ms": ms,
                     "speedup_shift": ms["xla"] / ms["shift"]})
        log.info("depthwise %s: %s", (size, channels, kernel, stride), {k: round(v, 1) for k, v in ms.items()})
    return rows


def child_compile_seconds(n: int, impl: DepthwiseImpl, data: DataSource) -> list[dict[str, Any]]:
    space = get_space("mnasnet", "fmnist")
    rows = []
    for tokens in sample_tokens(space.choices, seed=123, n=n):
        spec = space.decode(tokens)
        runner = build_flax(spec, impl, data)
        rows.append({"arch_id": spec.arch_id, "compile_seconds": runner.compile_seconds})
        log.info("child %s compiles in %.1f s", spec.arch_id, runner.compile_seconds)
    return rows


def main(argv: list[str] | None = None) -> int:
    from mnas_jax.train.runtime import prepare_process

    prepare_process(probe=False)  # XLA:CPU flags and the project's compilation cache, before JAX starts
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="mnasnet-a1,mobilenetv2")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=3, help="training steps per round and runner")
    parser.add_argument("--children", type=int, default=2, help="random children for compile times")
    parser.add_argument("--variants", default="xla,shift",
                        help="Flax variants: xla (feature_group_count depthwise, XLA gradients) and "
                             "shift (the CPU training path: shift-and-add depthwise, dense convs "
                             "with matrix-product gradients)")
    parser.add_argument("--depthwise", action=argparse.BooleanOptionalAction, default=True,
                        help="also time one depthwise conv (fwd+bwd) per shape of the models, xla vs shift")
    parser.add_argument("--out", type=Path, default=REPORTS)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    from rich.console import Console
    from rich.table import Table

    results: dict[str, Any] = {"batch": BATCH, "setting": "fmnist", "models": {}}
    data = load_fashion_mnist(input_size=32)
    for name in args.models.split(","):
        spec = reference(name, setting="fmnist")
        runners: dict[str, Callable[[int], float]] = {}
        compile_s: dict[str, float] = {}
        for variant in args.variants.split(","):
            runner = build_flax(spec, DepthwiseImpl(variant), data)
            runners[f"flax {variant}"] = runner.run
            compile_s[f"flax {variant}"] = runner.compile_seconds
            log.info("%s flax %s: compile %.1f s", name, variant, runner.compile_seconds)
        runners["pytorch"] = build_torch(spec)[1]
        ips = interleave(runners, args.rounds, args.steps)
        med = {k: statistics.median(v) for k, v in ips.items()}
        results["models"][name] = {
            "arch_id": spec.arch_id,
            "images_per_second": med,
            "images_per_second_rounds": ips,
            "ratio_to_pytorch": {k: med[k] / med["pytorch"] for k in med if k != "pytorch"},
            "compile_seconds": compile_s,
        }
    if args.depthwise:
        specs = [reference(name, setting="fmnist") for name in args.models.split(",")]
        results["depthwise"] = depthwise_timings(depthwise_shapes(specs), args.rounds)
    best = args.variants.split(",")[-1]
    results["children_compile"] = child_compile_seconds(args.children, DepthwiseImpl(best), data)
    results["environment"] = {
        "jax": jax.__version__,
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "loadavg": os.getloadavg(),
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
    }
    try:
        import torch

        results["environment"]["torch"] = torch.__version__
    except ImportError:
        pass

    table = Table(title=f"training images/s, fmnist setting, batch {BATCH} (median of {args.rounds} rounds)")
    table.add_column("model")
    table.add_column("runner")
    table.add_column("images/s", justify="right")
    table.add_column("x PyTorch", justify="right")
    table.add_column("compile s", justify="right")
    for name, r in results["models"].items():
        for runner, v in r["images_per_second"].items():
            ratio = r["ratio_to_pytorch"].get(runner)
            table.add_row(name, runner, f"{v:.1f}", "1.00" if ratio is None else f"{ratio:.2f}",
                          f"{r['compile_seconds'].get(runner, float('nan')):.1f}")
    Console().print(table)

    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "train_throughput.json").write_text(json.dumps(results, indent=2))
    (args.out / "train_throughput.md").write_text(markdown(results, args))
    log.info("wrote %s", args.out / "train_throughput.md")
    return 0


def markdown(results: dict[str, Any], args: argparse.Namespace) -> str:
    env = results["environment"]
    lines = [
        "# Training throughput: Flax vs PyTorch (CPU)",
        "",
        f"fmnist setting (32x32x1, 10 classes), batch {BATCH}, full training step (forward, backward, "
        f"optimiser). Median of {args.rounds} alternating rounds of {args.steps} steps. "
        f"jax {env['jax']}, torch {env.get('torch', '-')}, {env['cpu_count']} CPUs, "
        f"load average at the end {tuple(round(x, 2) for x in env['loadavg'])}.",
        "",
        "| model | runner | images/s | x PyTorch | compile s |",
        "|---|---|---:|---:|---:|",
    ]
    for name, r in results["models"].items():
        for runner, v in r["images_per_second"].items():
            ratio = r["ratio_to_pytorch"].get(runner)
            comp = r["compile_seconds"].get(runner)
            lines.append(f"| {name} | {runner} | {v:.1f} | {'1.00' if ratio is None else f'{ratio:.2f}'} | "
                         f"{'-' if comp is None else f'{comp:.1f}'} |")
    if results.get("depthwise"):
        lines += ["", "One depthwise convolution, forward + backward at batch 128 (min over rounds, ms):", "",
                  "| HxW | channels | kernel | stride | xla ms | shift ms | xla / shift |", "|---:|---:|---:|---:|---:|---:|---:|"]
        for r in results["depthwise"]:
            lines.append(f"| {r['size']} | {r['channels']} | {r['kernel']} | {r['stride']} | {r['ms']['xla']:.1f} | "
                         f"{r['ms']['shift']:.1f} | {r['speedup_shift']:.1f} |")
    lines += ["", "Compile seconds of new children (init + all steps, as training compiles them), random MnasNet-space samples:", ""]
    lines += [f"- `{c['arch_id']}`: {c['compile_seconds']:.1f} s" for c in results["children_compile"]]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
