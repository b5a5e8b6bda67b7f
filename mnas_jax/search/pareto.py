"""Pareto fronts and dominance (accuracy up, latency down)."""

from __future__ import annotations

from typing import Sequence


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of (latency, accuracy) points no other point dominates, by latency."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    front, best = [], float("-inf")
    for i in order:
        if points[i][1] > best:
            front.append(i)
            best = points[i][1]
    return front


def dominates(a: tuple[float, float], b: tuple[float, float]) -> bool:
    """a = (latency, accuracy) dominates b: no slower and no less accurate, better in one."""
    return a[0] <= b[0] and a[1] >= b[1] and (a[0] < b[0] or a[1] > b[1])
