"""The largest ε of a grid of membership attacks, without counting every attack (issue 22, speed).

The NeurIPS 2023 forget quality (:mod:`.forget_quality`, SPEC §8) needs, per forget example, only the MAXIMUM ε over
~700 single thresholds and 400 × 400 interval attacks. Each attack's ε is read from a table indexed by its counts
``(tp, fp)``; counting 160,000 attacks per example is what cost the time. Here the attacks come in rows (one right
end, 400 left ends on a ``np.linspace`` grid; the single thresholds are one more row), and along a row both counts
only fall as the left end grows. So the ε of every attack between two counted left ends ``a < b`` is at most
``bound[tp(a), fp(b)]``, the ε table's maximum over fewer true and more false positives (:func:`bound_table`): a
stretch whose bound does not beat the best ε found so far is skipped, the others are split on a finer grid
(:data:`REFINE_STEPS`) and counted, down to single attacks. The result is the maximum over all attacks, bit for bit
(a branch and bound: the bound is exact, nothing is approximated); at N = 512 about 2% of the attacks get counted.

Hand-written because no library searches this grid; pure NumPy, vectorised over the rows of a chunk of examples (the
binary searches loop over the examples: NumPy has no batched ``searchsorted``).
"""

from __future__ import annotations

import numpy as np

REFINE_STEPS = (100, 25, 5, 1)
"""Grid steps of the successive refinements of :func:`search_rows` (each a multiple of the next; the last is 1).

Measured at N = 512 (1,000 examples of the speed benchmark): ~3,100 attacks counted per example out of ~160,700;
(50, 10, 1) counts ~4,100, (100, 20, 4, 1) ~3,200."""


def bound_table(table: np.ndarray) -> np.ndarray:
    """``bound[tp, fp] = max table[tp', fp']`` over every ``tp' <= tp`` and ``fp' >= fp`` of an ε table, raveled.

    An attack that flags at most ``tp`` positives and at least ``fp`` negatives has ε at most ``bound[tp, fp]``.
    The bound is the table's own running maximum (towards fewer true and more false positives), so it is exact
    whatever the table holds, dropped ``-inf`` and separating ``+inf`` included: no monotonicity of the ε formula
    is assumed, and comparing it with an ε read from the table compares like with like (no rounding).

    Example:
        >>> bound_table(np.array([[1.0, 0.0], [2.0, 0.5]])).tolist()  # rising in tp, falling in fp: itself
        [1.0, 0.0, 2.0, 0.5]
        >>> bound_table(np.array([[-np.inf, 0.5], [np.inf, -np.inf]])).tolist()  # dropped and separating attacks
        [0.5, 0.5, inf, 0.5]
    """
    bound = np.maximum.accumulate(table, axis=0)
    bound = np.maximum.accumulate(bound[:, ::-1], axis=1)[:, ::-1]
    return np.ascontiguousarray(bound).reshape(-1)


def ragged_linspace(start: np.ndarray, stop: np.ndarray, num: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.linspace(start[i], stop[i], num[i])`` for every ``i``, concatenated, bit for bit; and each value's ``i``.

    NumPy computes point ``k`` as ``k * step + start`` with ``step = (stop - start) / (num - 1)`` and then sets the
    last point to ``stop``; a one-point grid is ``[start]``. (NumPy divides in the other order only when ``step``
    underflows to 0 while ``stop != start``, which needs a subnormal span; the spans here are above 0.01 whenever
    ``num >= 2``.)
    """
    owner = np.repeat(np.arange(num.size), num)
    first = np.cumsum(num) - num
    k = np.arange(owner.size) - first[owner]
    step = (stop - start) / np.maximum(num - 1, 1)
    values = k * step[owner] + start[owner]
    ends = num > 1
    values[(first + num - 1)[ends]] = stop[ends]
    return values, owner


def count_below(sorted_rows: np.ndarray, values: np.ndarray, owner: np.ndarray, side: str) -> np.ndarray:
    """``np.searchsorted(sorted_rows[e], v, side)`` for every value ``v`` of example ``e = owner`` (``owner`` sorted).

    One binary search per value in the example's own sorted scores (a loop over the examples of a chunk: NumPy has no
    batched search; the values of one example are searched in one call).
    """
    out = np.empty(values.size, dtype=np.intp)
    bounds = np.searchsorted(owner, np.arange(sorted_rows.shape[0] + 1)).tolist()
    for e, (a, b) in enumerate(zip(bounds[:-1], bounds[1:], strict=True)):
        if a < b:
            out[a:b] = sorted_rows[e].searchsorted(values[a:b], side=side)
    return out


def grid_point(j: np.ndarray, start: np.ndarray, step: np.ndarray, stop: np.ndarray, last: np.ndarray) -> np.ndarray:
    """Point ``j`` of ``np.linspace(start, stop, last + 1)`` (``step = (stop - start) / last``), bit for bit.

    Example:
        >>> j, last = np.arange(4), np.full(4, 3)
        >>> bool((grid_point(j, 0.1, (0.8 - 0.1) / 3, 0.8, last) == np.linspace(0.1, 0.8, 4)).all())
        True
    """
    return np.where((j == last) & (j > 0), stop, j * step + start)


def left_ends_never_decrease(start: np.ndarray, step: np.ndarray, stop: np.ndarray, last: np.ndarray) -> np.ndarray:
    """Whether each row's grid ``j*step + start`` (``j < last``), then ``stop``, never decreases: the bounds of
    :func:`search_rows` need it. Rounding is monotone, so with ``step >= 0`` only the last point can break it, and
    (``398 · step <= stop - start`` in floating point) it does not for any score we know of; checked all the same,
    and the caller leaves an example that fails to a slower path."""
    return (last == 0) | ((step >= 0) & ((last - 1) * step + start <= stop))


def search_rows(
    best: np.ndarray,
    *,
    pos: np.ndarray,
    neg: np.ndarray,
    owner: np.ndarray,
    right: np.ndarray,
    start: np.ndarray,
    step: np.ndarray,
    stop: np.ndarray,
    last: np.ndarray,
    table: np.ndarray,
    bound: np.ndarray | None,
    stats: dict[str, int] | None = None,
) -> None:
    """Raise ``best[e]`` to the largest ε of the attacks of example ``e``'s rows, counting as few of them as it can.

    A row is a set of attacks ``{c : left_j <= c <= right}`` for the left ends ``left_j`` of a ``np.linspace`` grid
    (``j*step + start``, the last one ``stop``); single thresholds are a row whose right end counts every model.
    Both counts of an attack are stored as one flat index ``tp · (n_neg + 1) + fp`` into the ε table.

    Along a row the left end only grows, so the attack's true and false positives only fall. Between two counted
    left ends ``a < b`` every attack flags at most ``tp(a)`` positives and at least ``fp(b)`` negatives, so its ε is
    at most ``bound[tp(a), fp(b)]`` (:func:`bound_table`). A stretch whose bound does not exceed
    ``best`` (ties included: it cannot raise the maximum) is skipped; the others are split at the next grid step of
    :data:`REFINE_STEPS`, their new points counted, and so on down to every point. The maximum is therefore that
    of all attacks, bit for bit; only which attacks are counted depends on the order.

    Args:
        best: ``[n_examples]`` running maxima, raised in place.
        pos, neg: ``[n_examples, n]`` sorted scores of the positive and negative set of each example.
        owner: ``[n_rows]`` example of each row, non-decreasing.
        right: ``[n_rows]`` flat count ``tp · (n_neg + 1) + fp`` of the scores at or below the row's right end.
        start, step, stop, last: the row's left-end grid (``last`` = its number of points - 1).
        table, bound: the flat ε table and its bound table (``None``: no stretch is skipped, every attack is
            counted once; for the tests).
        stats: if given, ``visited`` (attacks counted) and ``ties_at_bound`` (stretches skipped with a bound equal
            to ``best``) are added to it.
    """
    width = neg.shape[1] + 1
    steps = REFINE_STEPS
    if stats is not None:
        stats.setdefault("visited", 0)
        stats.setdefault("ties_at_bound", 0)

    def visit(rows: np.ndarray, j: np.ndarray, *, ends: bool) -> np.ndarray:
        # the inner points of a stretch have j < last: no need to look for the last point
        left = grid_point(j, start[rows], step[rows], stop[rows], last[rows]) if ends else j * step[rows] + start[rows]
        ex = owner[rows]
        flat = right[rows] - (count_below(pos, left, ex, "left") * width + count_below(neg, left, ex, "left"))
        # l > r: both differences are <= 0 (the empty interval flags nothing): (tp, fp) = (0, 0), a dropped attack
        np.maximum(flat, 0, out=flat)
        np.maximum.at(best, ex, table[flat])
        if stats is not None:
            stats["visited"] += rows.size
        return flat

    # Both ends of every row, then stretches [a, b] between counted points, refined step by step.
    rows = np.arange(owner.size)
    both = visit(np.repeat(rows, 2), np.stack([np.zeros_like(last), last], axis=1).reshape(-1), ends=True)
    a, b, flat_a, flat_b = np.zeros_like(last), last.copy(), both[0::2], both[1::2]
    for g in steps:
        keep = b - a > 1
        if bound is not None:
            ub = bound[flat_a - flat_a % width + flat_b % width]  # bound[tp(a), fp(b)]
            row_best = best[owner[rows]]
            if stats is not None:
                stats["ties_at_bound"] += int((keep & (ub == row_best)).sum())
            keep &= ub > row_best
        rows, a, b, flat_a, flat_b = rows[keep], a[keep], b[keep], flat_a[keep], flat_b[keep]
        if rows.size == 0:
            return
        # the points of the grid of step g strictly inside each stretch (a is a multiple of g)
        n_in = (b - 1) // g - a // g
        stretch = np.repeat(np.arange(rows.size), n_in)
        k = np.arange(stretch.size) - (np.cumsum(n_in) - n_in)[stretch] + 1
        j = a[stretch] + k * g
        flat_j = visit(rows[stretch], j, ends=False)
        if g == 1:
            return
        # the n_in + 1 sub-stretches of each stretch, between consecutive counted points
        n_sub = n_in + 1
        first = np.cumsum(n_sub) - n_sub
        at = first[stretch] + k  # the sub-stretch that starts at point j (the one before it ends there)
        a_new, b_new, flat_a_new, flat_b_new = (np.empty(int(n_sub.sum()), dtype=np.intp) for _ in range(4))
        a_new[first], flat_a_new[first] = a, flat_a
        b_new[first + n_in], flat_b_new[first + n_in] = b, flat_b
        a_new[at], flat_a_new[at] = j, flat_j
        b_new[at - 1], flat_b_new[at - 1] = j, flat_j
        rows, a, b, flat_a, flat_b = np.repeat(rows, n_sub), a_new, b_new, flat_a_new, flat_b_new
    raise AssertionError("REFINE_STEPS must end with 1")  # pragma: no cover
