"""The operator list of a .tflite model, read from its FlatBuffer (no interpreter, no delegate).

Why the FlatBuffer and not `Interpreter._get_ops_details()`: the interpreter applies XNNPACK by
default and then reports one DELEGATE node instead of the model's ops; reading the file gives
exactly what the converter wrote. Custom (non-builtin) ops are named 'CUSTOM:<name>' (Flex ops
from TensorFlow show up as 'CUSTOM:Flex...'), so a single check finds anything non-builtin.
"""

from __future__ import annotations

import collections
from functools import cache

from ai_edge_litert import schema_py_generated as schema

from latency.devices.base import check_tflite_bytes


@cache
def _builtin_names() -> dict[int, str]:
    return {v: k for k, v in vars(schema.BuiltinOperator).items()
            if not k.startswith("_") and isinstance(v, int)}


def _op_name(code: schema.OperatorCode) -> str:
    # Codes above 127 live in BuiltinCode; older files only fill DeprecatedBuiltinCode.
    builtin = max(int(code.BuiltinCode()), int(code.DeprecatedBuiltinCode()))
    if builtin == schema.BuiltinOperator.CUSTOM:
        custom = code.CustomCode()
        return f"CUSTOM:{custom.decode() if custom else '?'}"
    return _builtin_names().get(builtin, f"UNKNOWN_{builtin}")


def ops_of(model_bytes: bytes) -> list[str]:
    """Operator names of every subgraph, in execution order (e.g. ['CONV_2D', 'ADD', ...])."""
    check_tflite_bytes(model_bytes)
    buf = bytearray(model_bytes)
    model = schema.Model.GetRootAs(buf, 0)
    codes = [_op_name(model.OperatorCodes(i)) for i in range(model.OperatorCodesLength())]
    out = []
    for g in range(model.SubgraphsLength()):
        graph = model.Subgraphs(g)
        out += [codes[graph.Operators(i).OpcodeIndex()] for i in range(graph.OperatorsLength())]
    return out


def op_counts(model_bytes: bytes) -> dict[str, int]:
    """How many times each operator occurs, most frequent first."""
    return dict(collections.Counter(ops_of(model_bytes)).most_common())


def non_builtin_ops(ops: list[str]) -> list[str]:
    """The ops a builtin-only runtime cannot run (custom and Flex ops)."""
    return [op for op in ops if op.startswith(("CUSTOM", "UNKNOWN_"))]
