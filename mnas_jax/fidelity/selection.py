"""Choosing correlation candidates: one per log-latency bin over a range relative to the
reference model, by MEASURED latency, plus the reference model's widths.

Latency is measured in one steady session (see `measuring`), the candidates kept from an
earlier selection and the reference widths included. The pool is measured in rounds: first
architectures spread evenly over MACs (which order latency only roughly: in the fmnist setting
a 64.8M-MAC net ran at 0.95x MobileNetV2 and a 70.9M-MAC one at 0.82x), then, for the bins
still empty, the architectures a latency predictor fitted on everything measured so far puts
nearest those bins' centres. A bin is filled only by a measured value inside it. Candidates of
an earlier selection can be kept (with their names and ids), so that their finished runs keep
counting; only the bins they leave empty are filled.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Callable, Iterable, Sequence

import numpy as np

from mnas_jax.costs import arch_macs
from mnas_jax.fidelity.candidates import Candidate, Selection
from mnas_jax.space import ArchSpec, SearchSpace, reference, sample_tokens

log = logging.getLogger(__name__)

LATENCY_RANGE = (0.3, 2.0)
N_BINS = 16
WIDTHS = ("mobilenetv2-0.35", "mobilenetv2-0.5", "mobilenetv2-0.75", "mobilenetv2")
#: Relative latency (to the setting's reference model) of each architecture, measured.
Measure = Callable[[Sequence[ArchSpec]], list[float]]


def bin_edges(span: tuple[float, float] = LATENCY_RANGE, bins: int = N_BINS) -> np.ndarray:
    """``bins + 1`` edges spaced evenly in log latency over ``span``."""
    lo, hi = span
    if not 0 < lo < hi or bins < 1:
        raise ValueError(f"latency range {lo}-{hi} with {bins} bins: need 0 < low < high and >= 1 bin")
    return np.geomspace(lo, hi, bins + 1)


def bin_of(relative: float, edges: np.ndarray) -> int | None:
    """The bin holding ``relative`` (lower edge inclusive), None outside the range."""
    i = int(np.searchsorted(edges, relative, side="right")) - 1
    return i if 0 <= i < len(edges) - 1 else None


def _distance(relative: float, edges: np.ndarray, b: int) -> float:
    return abs(float(np.log(relative)) - 0.5 * float(np.log(edges[b]) + np.log(edges[b + 1])))


def keep_in_bins(candidates: Iterable[Candidate], edges: np.ndarray) -> dict[int, Candidate]:
    """At most one candidate per bin: the one nearest the bin's centre (log latency)."""
    out: dict[int, Candidate] = {}
    for c in candidates:
        b = bin_of(c.relative_latency, edges)
        if b is not None and (b not in out or _distance(c.relative_latency, edges, b)
                              < _distance(out[b].relative_latency, edges, b)):
            out[b] = c
    return out


def sample_pool(space: SearchSpace, seed: int, n: int) -> list[ArchSpec]:
    """Distinct architectures of ``n`` seeded token samples, sorted by MACs."""
    pool: dict[str, ArchSpec] = {}
    for tokens in sample_tokens(space.choices, seed, n):
        spec = space.decode(tokens)
        pool.setdefault(spec.arch_id, spec)
    return sorted(pool.values(), key=arch_macs)


def spread(specs: Sequence[ArchSpec], n: int) -> list[ArchSpec]:
    """``n`` of ``specs`` (sorted by MACs) at evenly spaced positions: an even spread over MACs."""
    if n >= len(specs):
        return list(specs)
    return list(dict.fromkeys(specs[int(i)] for i in np.linspace(0, len(specs) - 1, n)))


def guided_picks(space: SearchSpace, measured: dict[str, tuple[ArchSpec, float]],
                 unmeasured: Sequence[ArchSpec], targets: Sequence[float], per_target: int,
                 seed: int) -> list[ArchSpec]:
    """For each target latency, the ``per_target`` unmeasured architectures predicted nearest it
    by a latency predictor fitted on ``measured`` (a log-log fit on MACs when the predictor
    cannot be fitted, e.g. on fewer than 3 measured)."""
    if not unmeasured or not targets:
        return []
    specs = [s for s, _ in measured.values()]
    y = np.array([r for _, r in measured.values()])
    try:
        from predictor.model import fit_predictor

        pred = fit_predictor(specs, y, space_name=space.name, setting=space.setting, unit="relative",
                             seed=seed)
        guess = np.asarray(pred.predict(list(unmeasured)).value, float)
    except ValueError as e:  # too few measured, or outside what the predictor can featurize
        log.info("latency predictor not fitted (%s): MACs fit instead", e)
        macs = np.log([arch_macs(s) for s in specs])
        a, b = np.polyfit(macs, np.log(y), 1) if len(specs) >= 2 else (1.0, 0.0)
        guess = np.exp(a * np.log([arch_macs(s) for s in unmeasured]) + b)
    taken: set[str] = set()
    out = []
    for t in targets:
        order = np.argsort(np.abs(np.log(guess) - np.log(t)), kind="stable")
        fresh = [unmeasured[i] for i in order if unmeasured[i].arch_id not in taken][:per_target]
        taken.update(s.arch_id for s in fresh)
        out += fresh
    return out


def next_index(names: Iterable[str], prefix: str = "space-") -> int:
    """One more than the largest ``{prefix}NN`` among ``names`` (0 when none): new candidates
    never take the name of an earlier one, whose runs may still be in a results file."""
    found = [int(m.group(1)) for n in names if (m := re.fullmatch(re.escape(prefix) + r"(\d+)", n))]
    return max(found, default=-1) + 1


def _fill(empty: Sequence[int], pool: dict[str, tuple[ArchSpec, float]], edges: np.ndarray,
          chosen: dict[int, ArchSpec]) -> None:
    """Put in each empty bin the measured pool architecture inside it nearest its centre."""
    used = {s.arch_id for s in chosen.values()}
    for b in empty:
        inside = [(s, v) for i, (s, v) in pool.items() if i not in used and bin_of(v, edges) == b]
        if inside:
            chosen[b] = min(inside, key=lambda sv: _distance(sv[1], edges, b))[0]
            used.add(chosen[b].arch_id)


def select_candidates(space: SearchSpace, measure: Measure, *, pool: int = 48, seed: int = 2026,
                      keep: Selection | None = None, keep_names: Sequence[str] | None = None,
                      taken_names: Iterable[str] = (), widths: Sequence[str] = WIDTHS,
                      span: tuple[float, float] = LATENCY_RANGE, bins: int = N_BINS, rounds: int = 3,
                      per_bin: int = 3, device: str | None = None) -> Selection:
    """One space architecture per log-latency bin of ``span`` (measured), plus ``widths``.

    ``keep``: an earlier selection. Its space candidates and the widths are measured again
    with the pool (a value from another session is not trusted: the reference-relative unit
    only holds within a steady session). Those inside a bin are kept (one per bin, nearest its
    centre) with their names and ids; ``keep_names`` instead keeps exactly the named ones,
    wherever they fall (they have runs), each occupying its bin. The others are dropped and
    never chosen again, so that no name or id changes meaning. Only the unoccupied bins are
    filled: from ``pool`` architectures spread over MACs, then up to ``rounds - 1`` guided
    rounds of ``per_bin`` per empty bin. New candidates are named ``space-NN`` after every name
    of ``keep`` and ``taken_names``.
    """
    edges = bin_edges(span, bins)
    if keep_names is not None and keep is None:
        raise ValueError("names to keep were given without a selection to keep them from")
    old = list(keep.candidates) if keep is not None else []
    width_specs = {w: reference(w, space.setting) for w in widths}
    width_ids = {s.arch_id for s in width_specs.values()}
    old_space = [c for c in old if c.arch_id not in width_ids]
    named = keep.pick(list(keep_names)) if keep is not None and keep_names is not None else None
    eligible = named if named is not None else old_space
    for c in eligible:
        space.encode(c.arch)  # ValueError naming the field outside the space
    known = {c.arch_id for c in old}
    sample = sample_pool(space, seed, 20 * pool)
    batch = [s for s in spread(sample, pool) if s.arch_id not in known]
    again = [c.arch for c in eligible] + list(width_specs.values())
    values = measure(batch + again)
    measured = {s.arch_id: (s, v) for s, v in zip(batch, values)}
    fresh = {s.arch_id: v for s, v in zip(again, values[len(batch):])}
    if named is not None:
        kept = {c.name: bin_of(fresh[c.arch_id], edges) for c in named}
    else:
        remeasured = [dataclasses.replace(c, relative_latency=fresh[c.arch_id]) for c in eligible]
        binned = keep_in_bins(remeasured, edges)
        kept = {c.name: b for b, c in binned.items()}
    occupied = {b for b in kept.values() if b is not None}
    chosen: dict[int, ArchSpec] = {}
    fit_on = {c.arch_id: (c.arch, fresh[c.arch_id]) for c in eligible}  # the guided rounds' predictor data
    for r in range(max(rounds, 1)):
        _fill([b for b in range(bins) if b not in occupied and b not in chosen], measured, edges, chosen)
        empty = [b for b in range(bins) if b not in occupied and b not in chosen]
        if not empty or r >= rounds - 1:
            break
        centres = [float(np.sqrt(edges[b] * edges[b + 1])) for b in empty]
        unmeasured = [s for s in sample if s.arch_id not in measured and s.arch_id not in known]
        batch = guided_picks(space, {**fit_on, **measured}, unmeasured, centres, per_bin, seed + r)
        if not batch:
            break
        measured.update((s.arch_id, (s, v)) for s, v in zip(batch, measure(batch)))
    start = next_index([c.name for c in old] + list(taken_names))
    rows = [dataclasses.replace(c, relative_latency=fresh[c.arch_id]) for c in old_space if c.name in kept]
    rows += [Candidate(f"space-{start + k:02d}", s.arch_id, s.to_string(), measured[s.arch_id][1],
                       arch_macs(s)) for k, (b, s) in enumerate(sorted(chosen.items()))]
    cands = sorted(rows, key=lambda c: c.relative_latency)
    cands += [Candidate(w, s.arch_id, s.to_string(), fresh[s.arch_id], arch_macs(s))
              for w, s in width_specs.items()]
    previous = {c.name: c.relative_latency for c in old if c.name in kept or c.arch_id in width_ids}
    notes = {"kept": [c.name for c in cands if c.name in kept],
             "dropped": [c.name for c in old_space if c.name not in kept],
             "previous_relative_latency": previous, "measured": len(measured), "rounds": r + 1,
             "empty_bins": [b for b in range(bins) if b not in occupied and b not in chosen],
             "outside_range": [c.name for c in cands[:len(rows)]
                               if bin_of(c.relative_latency, edges) is None],
             "bin_edges": [round(float(e), 4) for e in edges]}
    control = space.reference_name
    if control in width_specs:  # the reference measured as a candidate: 1.0 in a steady session
        notes["reference_as_candidate"] = fresh[width_specs[control].arch_id]
    return Selection(tuple(cands), space.name, space.setting, seed, device, space.reference_name,
                     (float(span[0]), float(span[1])), bins, notes)
