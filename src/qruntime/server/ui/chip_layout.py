"""Where to draw each qubit of a coupling map: a deterministic layout computed with numpy.

IBM's documents carry no qubit coordinates, so they are computed in two steps:

1. Stress majorization (the method of Graphviz's ``neato``) on the graph distances
   between qubits, started from classical multidimensional scaling: on a lattice the
   graph distance is close to the distance on the chip, so the lattice comes out.
2. For a heavy-hex or square lattice, that picture is snapped to rows and columns as
   IBM draws its chips: rows of qubits across, joined up and down (on heavy-hex through
   one bridge qubit). The couplings are sorted into the lattice's directions (for a
   hexagonal lattice by walking the graph: the two couplings of a bridge run the same
   way, the three of a junction three ways), each direction is tried as "up and down",
   and the picture with the fewest rows is kept.

Any other graph keeps the first picture. Same graph, same picture, on every machine.
"""

from __future__ import annotations

import functools
import math
from collections import deque
from collections.abc import Iterable, Sequence

import numpy as np

__all__ = ["coupling_edges", "layout"]

Edge = tuple[int, int]


def coupling_edges(coupling_map: Iterable[Sequence[int]] | None, num_qubits: int) -> list[Edge]:
    """The undirected couplings between existing qubits, each once, sorted."""
    found = {
        (min(int(a), int(b)), max(int(a), int(b)))
        for a, b in coupling_map or ()
        if a != b and 0 <= a < num_qubits and 0 <= b < num_qubits
    }
    return sorted(found)


def layout(num_qubits: int, coupling_map: Iterable[Sequence[int]] | None) -> np.ndarray:
    """Coordinates of each qubit (``(num_qubits, 2)``, ``y`` down), a coupling about one
    unit long, the smallest coordinates 0. Without couplings: a square grid."""
    edges = tuple(coupling_edges(coupling_map, num_qubits))
    return np.array(_cached_layout(num_qubits, edges), dtype=float).reshape(num_qubits, 2)


def _neighbours(num_qubits: int, edges: Sequence[Edge]) -> list[list[int]]:
    found: list[list[int]] = [[] for _ in range(num_qubits)]
    for a, b in edges:
        found[a].append(b)
        found[b].append(a)
    return found


def _distances(num_qubits: int, edges: Sequence[Edge]) -> np.ndarray:
    """Graph distances by breadth-first search; qubits in other components are put just
    beyond the farthest reachable distance, so the components are drawn side by side."""
    neighbours = _neighbours(num_qubits, edges)
    dist = np.full((num_qubits, num_qubits), np.inf)
    for start in range(num_qubits):
        dist[start, start] = 0.0
        queue = deque([start])
        while queue:
            here = queue.popleft()
            for there in neighbours[here]:
                if dist[start, there] == np.inf:
                    dist[start, there] = dist[start, here] + 1
                    queue.append(there)
    finite = dist[np.isfinite(dist)]
    dist[~np.isfinite(dist)] = (finite.max() if finite.size else 0.0) + 2.0
    return dist


def _stress_layout(num_qubits: int, edges: Sequence[Edge]) -> np.ndarray:
    dist = _distances(num_qubits, edges)
    # Classical MDS: the two leading eigenvectors of the double-centred squared distances.
    centring = np.eye(num_qubits) - 1.0 / num_qubits
    values, vectors = np.linalg.eigh(-0.5 * centring @ dist**2 @ centring)
    top = np.argsort(values)[::-1][:2]
    pos = vectors[:, top] * np.sqrt(np.maximum(values[top], 1e-9))
    # A tiny fixed offset breaks exact ties (a symmetric graph puts qubits on one spot).
    index = np.arange(num_qubits)
    pos = pos + 1e-3 * np.column_stack((np.cos(index), np.sin(index)))
    # Stress majorization (SMACOF, weights 1/d^2): each step solves the weighted
    # Laplacian system, which never increases the stress.
    off = ~np.eye(num_qubits, dtype=bool)
    weights = np.zeros_like(dist)
    weights[off] = dist[off] ** -2.0
    laplacian = -weights
    laplacian[np.diag_indices(num_qubits)] = weights.sum(axis=1)
    pinv = np.linalg.pinv(laplacian)
    for _ in range(300):
        norm = np.sqrt(((pos[:, None, :] - pos[None, :, :]) ** 2).sum(axis=2))
        ratio = np.zeros_like(dist)
        ratio[off] = weights[off] * dist[off] / np.maximum(norm[off], 1e-9)
        b = -ratio
        b[np.diag_indices(num_qubits)] = ratio.sum(axis=1)
        new = pinv @ (b @ pos)
        moved = float(np.abs(new - pos).max())
        pos = new
        if moved < 1e-5:
            break
    return np.asarray(pos - pos.mean(axis=0))


def _rotated(pos: np.ndarray, angle: float) -> np.ndarray:
    """``pos`` turned by ``angle`` (radians)."""
    cos, sin = math.cos(angle), math.sin(angle)
    return np.asarray(pos @ np.array([[cos, sin], [-sin, cos]]))


def _lattice(pos: np.ndarray, edges: Sequence[Edge]) -> tuple[float, int, float]:
    """How well the couplings' directions fit a square (order 4) or hexagonal (order 6)
    lattice: ``(score in [-1, 1], order, angle of one lattice direction)``."""
    vectors = np.array([pos[b] - pos[a] for a, b in edges])
    angles = np.arctan2(vectors[:, 1], vectors[:, 0])
    best = (-1.0, 4, 0.0)
    for order in (4, 6):
        turns = np.radians(np.arange(0.0, 360.0 / order, 0.5))
        scores = np.cos(order * (angles[None, :] - turns[:, None])).mean(axis=1)
        index = int(np.argmax(scores))
        if scores[index] > best[0]:
            best = (float(scores[index]), order, float(turns[index]))
    return best


def _hex_directions(pos: np.ndarray, edges: Sequence[Edge], turn: float) -> list[int]:
    """Each coupling's direction on a hexagonal lattice: 0, 1 or 2 (``turn`` plus that
    many 60 degrees).

    The first picture bends a large lattice a little, so each coupling is compared with
    the lattice as turned around it: the mean misfit (modulo 60 degrees) of the
    couplings within two steps of its qubits.
    """
    sector = math.pi / 3
    angles = np.array([math.atan2(pos[b, 1] - pos[a, 1], pos[b, 0] - pos[a, 0]) for a, b in edges])
    # Misfits as unit vectors at six times the angle: a mean that wraps at 60 degrees.
    misfit = np.exp(6j * (angles - turn))
    touching: list[list[int]] = [[] for _ in range(len(pos))]
    for index, (a, b) in enumerate(edges):
        touching[a].append(index)
        touching[b].append(index)
    near = [
        {e for n in {q, *(x for e in touching[q] for x in edges[e])} for e in touching[n]}
        for q in range(len(pos))
    ]
    frame = [float(np.angle(misfit[sorted(n)].sum())) / 6 if n else 0.0 for n in near]
    ways = []
    for index, (a, b) in enumerate(edges):
        corrected = angles[index] - turn - (frame[a] + frame[b]) / 2
        ways.append(round(corrected / sector) % 3)
    return ways


def _chains(num_qubits: int, edges: Sequence[Edge]) -> list[list[int]] | None:
    """The connected parts of a graph, each in path order; None if one is not a path."""
    neighbours = _neighbours(num_qubits, edges)
    if any(len(n) > 2 for n in neighbours):
        return None
    seen: set[int] = set()
    chains = []
    for start in range(num_qubits):
        if start in seen or len(neighbours[start]) == 2:
            continue  # a path is walked from one of its ends
        chain, previous, here = [start], -1, start
        seen.add(start)
        while following := [n for n in neighbours[here] if n != previous]:
            previous, here = here, following[0]
            chain.append(here)
            seen.add(here)
        chains.append(chain)
    return chains if len(seen) == num_qubits else None  # the rest are cycles


def _rows(pos: np.ndarray, edges: Sequence[Edge], upright: Sequence[bool]) -> np.ndarray | None:
    """``pos`` snapped to rows and columns; ``upright`` marks the couplings between rows.

    What the other couplings join must be simple paths: the rows, ordered top to bottom
    as in ``pos``. Qubits joined up and down share a column; a qubit on no row (a
    heavy-hex bridge) sits between the rows it joins, or beside the one row it hangs
    from. None where the graph does not fit that picture.
    """
    num_qubits = len(pos)
    chains = _chains(num_qubits, [e for e, up in zip(edges, upright, strict=True) if not up])
    if chains is None:
        return None
    rows = [c if pos[c[0], 0] <= pos[c[-1], 0] else c[::-1] for c in chains if len(c) > 1]
    rows.sort(key=lambda chain: float(np.mean(pos[chain, 1])))
    row_of = {q: r for r, chain in enumerate(rows) for q in chain}
    index_of = {q: i for chain in rows for i, q in enumerate(chain)}
    links = _neighbours(num_qubits, [e for e, up in zip(edges, upright, strict=True) if up])
    pairs: list[Edge] = []  # qubits on two rows, joined directly or through a bridge
    for qubit, others in enumerate(links):
        on_rows = [o for o in others if o in row_of]
        if qubit in row_of:
            pairs += [(qubit, o) for o in on_rows if qubit < o]
        else:
            pairs += [(x, y) for x in on_rows for y in on_rows if x < y]
    offset: dict[int, int] = {}  # each row's first column, so that joined qubits line up
    for start in range(len(rows)):
        if start in offset:
            continue
        offset[start] = 0
        queue = deque([start])
        while queue:
            r = queue.popleft()
            for x, y in pairs + [(b, a) for a, b in pairs]:
                if row_of[x] != r:
                    continue
                column, s = offset[r] + index_of[x], row_of[y]
                if s == r or (s in offset and offset[s] + index_of[y] != column):
                    return None
                if s not in offset:
                    offset[s] = column - index_of[y]
                    queue.append(s)
    gap = 2.0 if any(q not in row_of and links[q] for q in range(num_qubits)) else 1.0
    out = np.zeros((num_qubits, 2))
    for qubit, r in row_of.items():
        out[qubit] = (offset[r] + index_of[qubit], r * gap)
    for qubit in range(num_qubits):
        if qubit in row_of:
            continue
        on_rows = [o for o in links[qubit] if o in row_of]
        if not on_rows or len(on_rows) > 2:
            return None
        if len(on_rows) == 2:
            out[qubit] = (out[on_rows[0], 0], float(np.mean(out[on_rows, 1])))
        else:  # hanging from one row: above or below it, as in ``pos``
            side = 1.0 if pos[qubit, 1] > pos[on_rows[0], 1] else -1.0
            out[qubit] = (out[on_rows[0], 0], out[on_rows[0], 1] + side * gap / 2)
    if len({(x, y) for x, y in out.round(3).tolist()}) < num_qubits:
        return None  # two qubits on one spot
    return np.asarray(out - out.min(axis=0))


def _qubit_zero_top_left(pos: np.ndarray) -> np.ndarray:
    pos = pos - pos.mean(axis=0)
    for column in (0, 1):
        if pos[0, column] > 0:
            pos[:, column] = -pos[:, column]
    return pos


def _snapped(pos: np.ndarray, edges: Sequence[Edge]) -> np.ndarray | None:
    """The rows-and-columns picture with the longest shortest row (then the fewest rows,
    then the widest), if any: a chip's rows are its long chains of qubits."""
    score, order, turn = _lattice(pos, edges)
    if score < 0.5:
        return None
    tries: list[tuple[float, list[bool]]] = []  # (direction to turn upright, upright flags)
    if order == 6:
        ways = _hex_directions(pos, edges, turn)
        tries = [(turn + k * math.pi / 3, [way == k for way in ways]) for k in range(3)]
    else:
        for k in range(2):
            direction = turn + k * math.pi / 2
            flags = []
            for a, b in edges:
                angle = math.atan2(pos[b, 1] - pos[a, 1], pos[b, 0] - pos[a, 0])
                flags.append(abs(math.cos(angle - direction)) > math.cos(math.pi / 4))
            tries.append((direction, flags))
    found: list[tuple[int, int, float, int, np.ndarray]] = []
    for direction, flags in tries:
        turned = _qubit_zero_top_left(_rotated(pos, math.pi / 2 - direction))
        snapped = _rows(turned, edges, flags)
        if snapped is not None:
            rows = len({y for _, y in snapped.round(3).tolist()})
            across = [e for e, up in zip(edges, flags, strict=True) if not up]
            shortest = min(
                (len(c) for c in _chains(len(pos), across) or [] if len(c) > 1), default=0
            )
            found.append((-shortest, rows, -float(np.ptp(snapped[:, 0])), len(found), snapped))
    return min(found, key=lambda f: f[:4])[4] if found else None


@functools.lru_cache(maxsize=64)
def _cached_layout(num_qubits: int, edges: tuple[Edge, ...]) -> tuple[tuple[float, float], ...]:
    if num_qubits <= 1 or not edges:
        columns = max(1, math.ceil(math.sqrt(num_qubits)))
        return tuple((float(i % columns), float(i // columns)) for i in range(num_qubits))
    pos = _stress_layout(num_qubits, edges)
    snapped = _snapped(pos, edges)
    if snapped is None:  # the first picture: its long axis across, a coupling one unit
        _, _, axes = np.linalg.svd(pos, full_matrices=False)
        pos = _qubit_zero_top_left(pos @ axes.T)
        lengths = [float(np.linalg.norm(pos[a] - pos[b])) for a, b in edges]
        snapped = pos / max(float(np.median(lengths)), 1e-9)
        snapped = snapped - snapped.min(axis=0)
    return tuple((float(x), float(y)) for x, y in snapped)
