"""Flax -> .tflite export: numerics against Flax through the real LiteRT interpreter, the op list
(builtin only, BN folded, no TRANSPOSE or standalone PAD), one-layer exports of every op kind,
the cache and the CLI.

Numerical checks use variables whose BN statistics are calibrated on random inputs
(`calibrate_batch_stats`): with data-free random statistics the input-dependent part of a deep
net's output fades to ~1e-3, which a 1e-4 tolerance could not tell from a broken conversion.
The default suite keeps a representative subset; `-m slow` runs the full sweep (every reference
in both settings, 20 sampled archs per MnasNet setting, several FBNet archs).
"""

from __future__ import annotations

import collections

import jax
import numpy as np
import pytest
from ai_edge_litert.interpreter import Interpreter, OpResolverType

from latency.export import (Exporter, cache_key, converter_versions, export_layer_tflite,
                            export_tflite)
from latency.oplist import non_builtin_ops, op_counts, ops_of
from latency.weights import batch_stats_from, calibrate_batch_stats, random_variables
from mnas_jax.cli.main import main
from mnas_jax.models import build_model
from mnas_jax.models.single_layer import build_single_layer, single_layer_input_shape
from mnas_jax.space import (ArchSpec, LayerSpec, Op, Skip, get_space, reference, reference_names,
                            sample_tokens)

TOL = 1e-4
XLA_FAST_COMPILE = {"xla_backend_optimization_level": 0}
SAMPLED = 20
DEFAULT_SAMPLED = {"fmnist": 3, "imagenet": 0}  # the rest of the 20 run with -m slow
DEFAULT_REFERENCES = {("imagenet", "mobilenetv2"), ("imagenet", "mnasnet-a1")}
# Ops a float32 export of these networks may contain. Anything else (a standalone RELU, PAD,
# BATCH_NORM-like MUL/ADD, a CUSTOM/Flex op) fails the op-list check.
ALLOWED = {"CONV_2D", "DEPTHWISE_CONV_2D", "ADD", "MUL", "LOGISTIC", "FULLY_CONNECTED", "SUM",
           "MEAN", "AVERAGE_POOL_2D", "RESHAPE", "TRANSPOSE"}


# -- oracles --------------------------------------------------------------------------------------
def expected_ops(layers: tuple[LayerSpec, ...]) -> collections.Counter:
    """What each layer must become once BN is folded and activations fused, from the spec alone."""
    want: collections.Counter = collections.Counter()
    for layer in layers:
        if layer.op in (Op.POOL, Op.FC):
            want["FULLY_CONNECTED"] += layer.op is Op.FC
            continue
        convs = {Op.CONV: 1, Op.SEPCONV: 2, Op.MBCONV: 2 + (layer.expansion > 1), Op.IR: 3,
                 Op.SKIP: int(layer.stride > 1 or layer.in_channels != layer.out_channels)}
        want["conv"] += convs[layer.op]
        if layer.skip is Skip.POOL:
            want["conv"] += layer.in_channels != layer.out_channels  # 1x1 projection
            want["AVERAGE_POOL_2D"] += layer.stride > 1
        want["ADD"] += layer.skip in (Skip.IDENTITY, Skip.POOL)
        se = int(layer.se_ratio > 0)
        want["MUL"] += se
        want["LOGISTIC"] += se
        want["FULLY_CONNECTED"] += 2 * se
        want["TRANSPOSE"] += int(layer.op is Op.IR and layer.groups > 1)  # channel shuffle
    return want


def check_ops(layers: tuple[LayerSpec, ...], ops: list[str]) -> None:
    counts = collections.Counter(ops)
    want = expected_ops(layers)
    assert not non_builtin_ops(ops), ops
    assert set(counts) <= ALLOWED, f"unexpected ops {set(counts) - ALLOWED}"
    assert counts["CONV_2D"] + counts["DEPTHWISE_CONV_2D"] == want["conv"], counts
    for op in ("ADD", "MUL", "LOGISTIC", "FULLY_CONNECTED", "AVERAGE_POOL_2D", "TRANSPOSE"):
        assert counts[op] == want[op], (op, counts, want)
    assert "PAD" not in counts and "PADV2" not in counts


# -- helpers --------------------------------------------------------------------------------------
def run_tflite(model_bytes: bytes, x: np.ndarray) -> np.ndarray:
    it = Interpreter(model_content=model_bytes, num_threads=1)
    it.allocate_tensors()
    it.set_tensor(it.get_input_details()[0]["index"], x)
    it.invoke()
    return it.get_tensor(it.get_output_details()[0]["index"])


def input_shape(spec: ArchSpec) -> tuple[int, int, int, int]:
    return (1, spec.input_size, spec.input_size, spec.input_channels)


def calibrated_case(spec: ArchSpec, seed: int):
    """Random variables with calibrated BN statistics, two test inputs, and Flax's outputs,
    all from one compiled function (one XLA compile per architecture)."""
    model = build_model(spec)
    shape = input_shape(spec)
    variables = random_variables(model, shape, seed)
    rng = np.random.default_rng(seed)
    x_cal = rng.standard_normal((4, *shape[1:])).astype(np.float32)
    xs = rng.standard_normal((2, *shape[1:])).astype(np.float32)

    def flax_side(v, x_cal, xs):
        v = {**v, "batch_stats": batch_stats_from(model, v, x_cal)}
        return v, model.apply(v, xs)

    # Unoptimised XLA code computes the same float32 ops and compiles in half the time.
    compiled = jax.jit(flax_side).lower(variables, x_cal, xs).compile(XLA_FAST_COMPILE)
    variables, ys = compiled(variables, x_cal, xs)
    return variables, xs, np.asarray(ys)


def check_matches_flax(spec: ArchSpec, seed: int = 0) -> list[str]:
    variables, xs, ys = calibrated_case(spec, seed)
    model_bytes = export_tflite(spec, variables)
    got = np.concatenate([run_tflite(model_bytes, x[None]) for x in xs])
    assert got.shape == ys.shape == (2, spec.num_classes)
    err = float(np.abs(got - ys).max())
    assert err <= TOL, f"{spec.arch_id}: max abs error {err:.2e} > {TOL}"
    assert float(np.abs(ys[0] - ys[1]).max()) > 1e-2, "output barely depends on the input"
    ops = ops_of(model_bytes)
    check_ops(spec.layers(), ops)
    return ops


def sampled_specs(setting: str) -> list[ArchSpec]:
    space = get_space("mnasnet", setting)
    return [space.decode(t) for t in sample_tokens(space.choices, 2024, SAMPLED)]


def _cases():
    refs = [pytest.param(setting, name, id=f"{setting}-{name}",
                         marks=() if (setting, name) in DEFAULT_REFERENCES else pytest.mark.slow)
            for setting in ("imagenet", "fmnist") for name in reference_names()]
    sampled = [pytest.param(setting, i, id=f"{setting}-sampled{i}",
                            marks=() if i < DEFAULT_SAMPLED[setting] else pytest.mark.slow)
               for setting in ("fmnist", "imagenet") for i in range(SAMPLED)]
    return refs, sampled


REFERENCE_CASES, SAMPLED_CASES = _cases()


# -- whole networks -------------------------------------------------------------------------------
@pytest.mark.parametrize("setting,name", REFERENCE_CASES)
def test_reference_matches_flax(setting: str, name: str) -> None:
    ops = check_matches_flax(reference(name, setting))
    assert "TRANSPOSE" not in ops and "PAD" not in ops


@pytest.mark.parametrize("setting,index", SAMPLED_CASES)
def test_sampled_mnasnet_matches_flax(setting: str, index: int) -> None:
    ops = check_matches_flax(sampled_specs(setting)[index], seed=index)
    assert "TRANSPOSE" not in ops and "PAD" not in ops


def test_sampled_subset_covers_every_choice() -> None:
    """The default-suite subset exercises every op, SE, every skip incl. the pooling shortcut."""
    layers = [layer for spec in sampled_specs("fmnist")[:DEFAULT_SAMPLED["fmnist"]]
              for layer in spec.layers()]
    assert {(layer.op, layer.expansion) for layer in layers} >= {
        (Op.CONV, 1), (Op.SEPCONV, 1), (Op.MBCONV, 3), (Op.MBCONV, 6)}
    assert {layer.skip for layer in layers} == set(Skip)
    assert any(layer.skip is Skip.POOL and layer.stride > 1 for layer in layers)
    assert any(layer.se_ratio > 0 for layer in layers)
    assert {layer.kernel for layer in layers} >= {3, 5}


@pytest.mark.parametrize("first", [pytest.param(0, id="cycle0"),
                                   pytest.param(4, id="cycle4", marks=pytest.mark.slow),
                                   pytest.param(7, id="cycle7", marks=pytest.mark.slow)])
def test_fbnet_matches_flax(first: int) -> None:
    """FBNet: grouped 1x1 convs stay CONV_2D; each channel shuffle is RESHAPE+TRANSPOSE+RESHAPE."""
    space = get_space("fbnet")
    tokens = [(first + i) % n for i, n in enumerate(space.choices)]  # every op kind in turn
    spec = space.decode(tokens)
    assert any(layer.groups > 1 for layer in spec.layers())
    ops = check_matches_flax(spec)
    assert ops.count("RESHAPE") == 2 * ops.count("TRANSPOSE")


def test_latency_export_is_the_tested_conversion() -> None:
    """The cached latency-only path converts exactly like export_tflite with the same random
    variables (same bytes), and BN survives as folded constants: same op list as calibrated."""
    spec = sampled_specs("fmnist")[0]
    model = build_model(spec)
    cached = Exporter().export(spec, seed=5)
    explicit = export_tflite(spec, random_variables(model, input_shape(spec), 5))
    assert cached == explicit
    assert cached != Exporter().export(spec, seed=6)
    check_ops(spec.layers(), ops_of(cached))


def test_wrong_variables_are_rejected() -> None:
    a1, mnv2 = reference("mnasnet-a1", "fmnist"), reference("mobilenetv2", "fmnist")
    variables = random_variables(build_model(mnv2), input_shape(mnv2), 0)
    with pytest.raises(ValueError, match="do not match"):
        export_tflite(a1, variables)


# -- random weights -------------------------------------------------------------------------------
def test_random_variables_nonzero_and_seeded() -> None:
    spec = reference("mnasnet-a1", "fmnist")
    model = build_model(spec)
    a = random_variables(model, input_shape(spec), 1)
    assert set(a) == {"params", "batch_stats"}
    leaves = jax.tree_util.tree_flatten_with_path(a)[0]
    for path, leaf in leaves:
        assert np.all(np.asarray(leaf) != 0), path
    for path, leaf in jax.tree_util.tree_flatten_with_path(a["batch_stats"])[0]:
        if path[-1].key == "var":
            assert np.all(np.asarray(leaf) > 0), path
    same = random_variables(model, input_shape(spec), 1)
    other = random_variables(model, input_shape(spec), 2)
    flat = [np.asarray(x) for x in jax.tree.leaves(a)]
    assert all(np.array_equal(x, np.asarray(y)) for x, y in zip(flat, jax.tree.leaves(same)))
    assert not all(np.array_equal(x, np.asarray(y)) for x, y in zip(flat, jax.tree.leaves(other)))


def test_calibrated_stats_make_eval_mode_equal_train_mode() -> None:
    """Running statistics set to the batch statistics: eval mode then computes train mode."""
    layer = LayerSpec(Op.MBCONV, 3, 3, 0.25, Skip.IDENTITY, 8, 8, 1, 8)
    module = build_single_layer(layer)
    x = np.random.default_rng(0).standard_normal((4, 8, 8, 8)).astype(np.float32)
    variables = random_variables(module, (1, 8, 8, 8), 0)
    calibrated = {**variables, "batch_stats": batch_stats_from(module, variables, x)}
    train, _ = module.apply(variables, x, train=True, mutable=["batch_stats"])
    np.testing.assert_allclose(module.apply(calibrated, x, train=False), train, atol=1e-5)
    assert set(calibrate_batch_stats(module, variables, (1, 8, 8, 8), 0)) == set(variables)


# -- one-layer models -----------------------------------------------------------------------------
LAYERS = {
    "stem": LayerSpec(Op.CONV, 3, 1, 0.0, Skip.NONE, 3, 32, 2, 32),
    "conv_se_identity": LayerSpec(Op.CONV, 5, 1, 0.25, Skip.IDENTITY, 16, 16, 1, 14),
    "conv_pool_proj_odd": LayerSpec(Op.CONV, 3, 1, 0.0, Skip.POOL, 16, 24, 2, 15),
    "sepconv_se_pool": LayerSpec(Op.SEPCONV, 3, 1, 0.25, Skip.POOL, 16, 16, 2, 14),
    "sepconv_relu6": LayerSpec(Op.SEPCONV, 3, 1, 0.0, Skip.NONE, 32, 16, 1, 16,
                               activation="relu6"),
    "mbconv_e3_se_identity": LayerSpec(Op.MBCONV, 5, 3, 0.25, Skip.IDENTITY, 24, 24, 1, 14),
    "mbconv_e6_pool_proj": LayerSpec(Op.MBCONV, 3, 6, 0.0, Skip.POOL, 16, 24, 2, 28),
    "ir_g2_shuffle": LayerSpec(Op.IR, 3, 1, 0.0, Skip.IDENTITY, 32, 32, 1, 16, groups=2),
    "ir_e6_s2": LayerSpec(Op.IR, 5, 6, 0.0, Skip.NONE, 32, 64, 2, 16),
    "fbnet_skip_conv": LayerSpec(Op.SKIP, 1, 1, 0.0, Skip.NONE, 32, 64, 2, 16),
    "fbnet_skip_identity": LayerSpec(Op.SKIP, 1, 1, 0.0, Skip.NONE, 32, 32, 1, 16),
    "head": LayerSpec(Op.CONV, 1, 1, 0.0, Skip.NONE, 96, 1280, 1, 7),
    "pool": LayerSpec(Op.POOL, 1, 1, 0.0, Skip.NONE, 1280, 1280, 1, 7),
    "fc": LayerSpec(Op.FC, 1, 1, 0.0, Skip.NONE, 1280, 1000, 1, 1),
}


@pytest.fixture(scope="module")
def exporter() -> Exporter:
    return Exporter()


@pytest.mark.parametrize("name", list(LAYERS))
def test_one_layer_export(name: str, exporter: Exporter) -> None:
    layer = LAYERS[name]
    model_bytes = exporter.export_layer(layer)
    module = build_single_layer(layer)
    shape = single_layer_input_shape(layer)
    variables = random_variables(module, shape, 0)  # the latency-only weights, seed 0
    x = np.random.default_rng(3).standard_normal(shape).astype(np.float32)
    want = np.asarray(jax.jit(lambda v, x: module.apply(v, x, train=False))(variables, x))
    got = run_tflite(model_bytes, x)
    assert got.shape == want.shape
    assert float(np.abs(got - want).max()) <= TOL
    ops = ops_of(model_bytes)
    if layer.op is Op.POOL:
        assert ops in (["MEAN"], ["SUM", "MUL"]), ops
    else:
        check_ops((layer,), ops)
    if name == "fbnet_skip_identity":
        assert ops == []  # the identity: nothing to run
    if name in ("conv_pool_proj_odd", "sepconv_se_pool", "mbconv_e6_pool_proj"):
        assert "AVERAGE_POOL_2D" in ops  # the pooling shortcut is one builtin op
    if name.startswith(("sepconv", "mbconv", "ir_")):
        assert "DEPTHWISE_CONV_2D" in ops


def test_export_layer_tflite_function() -> None:
    layer = LAYERS["mbconv_e3_se_identity"]
    assert export_layer_tflite(layer, seed=1) == Exporter().export_layer(layer, seed=1)


# -- op list reader -------------------------------------------------------------------------------
def test_ops_of_agrees_with_interpreter(exporter: Exporter) -> None:
    model_bytes = exporter.export_layer(LAYERS["mbconv_e3_se_identity"])
    it = Interpreter(model_content=model_bytes,
                     experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    it.allocate_tensors()
    assert ops_of(model_bytes) == [d["op_name"] for d in it._get_ops_details()]
    assert op_counts(model_bytes)["FULLY_CONNECTED"] == 2


def test_ops_of_rejects_non_tflite() -> None:
    with pytest.raises(ValueError, match="TFL3"):
        ops_of(b"not a model at all")


# -- cache ----------------------------------------------------------------------------------------
def test_cache_hits_return_identical_bytes(tmp_path) -> None:
    layer = LAYERS["sepconv_se_pool"]
    first = Exporter(tmp_path)
    a = first.export_layer(layer)
    assert first.conversions == 1
    assert first.export_layer(layer) == a and first.conversions == 1  # memory hit
    files = list(tmp_path.glob("*.tflite"))
    assert len(files) == 1 and files[0].read_bytes() == a
    assert not list(tmp_path.glob(".*.tmp"))  # atomic write left no temporary file

    second = Exporter(tmp_path)  # another process: disk hit, no conversion
    assert second.export_layer(layer) == a and second.conversions == 0
    assert second.export_layer(layer, seed=1) != a and second.conversions == 1

    files[0].write_bytes(b"damaged")  # a broken file is converted again and replaced
    third = Exporter(tmp_path)
    assert third.export_layer(layer) == a and third.conversions == 1
    assert files[0].read_bytes() == a


def test_arch_cache_and_trained_variables_bypass(tmp_path) -> None:
    spec = reference("mobilenetv2-0.35", "fmnist")
    ex = Exporter(tmp_path, memory_bytes=0)
    a = ex.export(spec)
    assert Exporter(tmp_path).export(spec) == a
    variables = random_variables(build_model(spec), input_shape(spec), 0)
    assert ex.export(spec, variables) == a  # same weights as seed 0, converted, not cached
    assert ex.conversions == 2 and len(list(tmp_path.glob("*.tflite"))) == 1


def test_cache_key_names_every_version() -> None:
    versions = converter_versions()
    assert [name for name, _ in versions] == ["jax", "jaxlib", "flax", "tensorflow"]
    assert all(v != "absent" for _, v in versions)
    key = cache_key("arch", "abc", 0, versions)
    assert key != cache_key("arch", "abc", 1, versions)
    assert key != cache_key("arch", "abc", 0, (("jax", "0.0.1"), *versions[1:]))


# -- CLI ------------------------------------------------------------------------------------------
def test_cli_export_writes_file(tmp_path, capsys) -> None:
    out = tmp_path / "m.tflite"
    assert main(["export", "mobilenetv2-0.35", "--setting", "fmnist", "-o", str(out)]) == 0
    data = out.read_bytes()
    assert data[4:8] == b"TFL3" and data == Exporter().export(reference("mobilenetv2-0.35",
                                                                        "fmnist"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.tflite"]
    assert "CONV_2D" in capsys.readouterr().out


def test_cli_export_errors(tmp_path, capsys) -> None:
    assert main(["export", "no-such-net", "-o", str(tmp_path / "x.tflite")]) == 2
    assert main(["export", "mobilenetv2", "-o", str(tmp_path / "missing" / "x.tflite")]) == 2
    err = capsys.readouterr().err
    assert err.count("mnas: error:") == 2 and "missing" in err
    assert not list(tmp_path.iterdir())


def test_nasbench_macro_matches_flax() -> None:
    """NAS-Bench-Macro: identity where the shape changes (1x1 conv) and where it is kept, both
    inverted bottlenecks, through the real converter and LiteRT interpreter."""
    spec = get_space("nasbench-macro").parse("00120210")
    assert {layer.op for layer in spec.layers()} >= {Op.SKIP, Op.IR}
    check_matches_flax(spec)
