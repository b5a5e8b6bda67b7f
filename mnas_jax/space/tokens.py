"""Reading token rows: the one check every consumer of tokens (spaces, controllers, featurizers)
runs before it trusts them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def token_rows(tokens: Any, choices: Sequence[int], *, names: Sequence[str] | None = None,
               where: str = "the space", min_rows: int = 0) -> np.ndarray:
    """Token rows ``(n, D)`` as int64, checked against ``choices`` (options per decision).

    ValueError naming the first token outside its decision's range, or the expected shape.
    ``names`` labels the decisions and ``where`` the space in the message.
    """
    t = np.asarray(tokens)
    d = len(choices)
    if (t.ndim != 2 or t.shape[1] != d or t.shape[0] < min_rows
            or not np.issubdtype(t.dtype, np.integer)):
        raise ValueError(f"tokens must be integer rows of {d} decisions, shape (n, {d})"
                         f"{f' with n >= {min_rows}' if min_rows else ''}, for {where}; "
                         f"got {t.dtype} of shape {t.shape}")
    bad = (t < 0) | (t >= np.asarray(choices, dtype=np.int64))
    if bad.any():
        row, col = (int(i) for i in np.argwhere(bad)[0])
        label = f"{col} ({names[col]})" if names is not None else f"{col}"
        raise ValueError(f"token {int(t[row, col])} at row {row}, decision {label} is outside "
                         f"{where}: that decision has {int(choices[col])} choices")
    return t.astype(np.int64)


def token_row(tokens: Sequence[int], choices: Sequence[int]) -> tuple[int, ...]:
    """One token sequence as a tuple of ints, checked as by `token_rows`."""
    return tuple(int(x) for x in token_rows([list(tokens)], choices)[0])
