"""Linear algebra shared by the compression passes: layer inputs as matrices, REAP, Neuro-Unification.

Everything here is float64 numpy on plain matrices, so it can be tested against brute force without a
graph. A layer is the matrix ``W`` (out, n) acting on the columns of its input: a dense layer's input
features, or a conv's im2col patches ordered like ``weight.reshape(out, -1)`` (channel, then taps).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from fpgac.interp.float_kernels import windows
from fpgac.ir.graph import Node
from fpgac.ir.shapes import window_out


def layer_rows(node: Node, x: np.ndarray) -> np.ndarray:
    """The input of a dense or (ungrouped) conv node as rows ``(samples * positions, n)``.

    Row ``i`` times ``weight.reshape(out, -1).T`` is the node's pre-bias output at one position of one
    sample, so least-squares problems on these rows are problems on the layer's outputs.
    """
    x = np.asarray(x, np.float64)
    if node.op == "dense":
        return x.reshape(-1, x.shape[-1])
    attrs = node.attrs
    kernel = list(node.params["weight"].shape[2:])
    nd = len(kernel)
    out = [
        window_out(
            x.shape[2 + i],
            kernel[i],
            attrs["strides"][i],
            attrs["pads"][i],
            attrs["pads"][nd + i],
            attrs["dilations"][i],
            False,
        )
        for i in range(nd)
    ]
    view = windows(x, kernel, attrs["strides"], attrs["pads"], attrs["dilations"], out, 0.0)
    order = (0, *range(2, 2 + nd), 1, *range(2 + nd, 2 + 2 * nd))  # (N, *out, C, *kernel)
    return view.transpose(order).reshape(-1, x.shape[1] * math.prod(kernel))


def output_rows(node: Node, y: np.ndarray) -> np.ndarray:
    """A dense or conv node's output ``(N, out, *positions)`` or ``(N, ..., out)`` as rows ``(-1, out)``."""
    y = np.asarray(y, np.float64)
    if node.op == "dense":
        return y.reshape(-1, y.shape[-1])
    return np.moveaxis(y, 1, -1).reshape(-1, y.shape[1])


# Rows of im2col materialised at once (float64 elements): a chunk of samples, not the whole batch, so a
# conv on large feature maps costs tens of megabytes here instead of gigabytes.
_CHUNK = 1 << 22


@dataclass(frozen=True)
class Moments:
    """Sums over the calibration batch of a layer's input rows ``x`` with a constant 1 appended.

    ``gram = [x 1]ᵀ[x 1]`` and, given the outputs ``y``, ``cross = [x 1]ᵀ y``: all that least squares on
    the layer's outputs needs, accumulated chunk by chunk. The constant column makes the bias the last
    column of an augmented weight.
    """

    gram: np.ndarray
    cross: np.ndarray | None
    rows: int

    def mean(self) -> np.ndarray:
        return self.gram[:-1, -1] / self.rows

    def covariance(self, damp: float) -> np.ndarray:
        mean = self.mean()
        return add_damping(self.gram[:-1, :-1] / self.rows - np.outer(mean, mean), damp)

    def fit(self, damp: float, basis: np.ndarray | None = None) -> np.ndarray | None:
        """Least-squares ``[W b]`` (out, n + 1) from ``[x 1]`` (or ``[x 1] @ basis``) to ``y``.

        None without outputs, or with fewer than twice as many rows as unknowns per output: the fit
        would then learn the batch rather than the layer.
        """
        gram, cross = self.gram, self.cross
        if cross is None:
            return None
        if basis is not None:
            gram, cross = basis.T @ gram @ basis, basis.T @ cross
        if self.rows < 2 * len(gram):
            return None
        return np.linalg.solve(add_damping(gram, damp), cross).T


def moments(node: Node, x: np.ndarray, y: np.ndarray | None = None) -> Moments:
    """:class:`Moments` of ``node``'s input ``x`` (and output ``y``) over the batch, in chunks of samples."""
    positions = max(1, len(layer_rows(node, x[:1])))
    columns = layer_rows(node, x[:1]).shape[1] + 1
    step = max(1, _CHUNK // (positions * columns))
    gram = np.zeros((columns, columns))
    cross = None if y is None else np.zeros((columns, output_rows(node, y[:1]).shape[1]))
    rows = 0
    for start in range(0, len(x), step):
        chunk = layer_rows(node, x[start : start + step])
        chunk = np.concatenate([chunk, np.ones((len(chunk), 1))], axis=1)
        gram += chunk.T @ chunk
        if cross is not None and y is not None:
            cross += chunk.T @ output_rows(node, y[start : start + step])
        rows += len(chunk)
    return Moments(gram, cross, rows)


def add_damping(gram: np.ndarray, damp: float) -> np.ndarray:
    """``G + λI`` with ``λ = damp * mean(diag(G))``: relative, so it means the same at any scale."""
    scale = float(np.mean(np.diag(gram))) if len(gram) else 1.0
    return gram + damp * (scale or 1.0) * np.eye(len(gram))


def anchored_fit(a: np.ndarray, t: np.ndarray, prior: np.ndarray, damp: float) -> np.ndarray:
    """``x`` minimising ``‖a x - t‖² + λ‖x - prior‖²`` (``λ = damp * mean(diag(aᵀa))``); ``prior`` itself
    when ``a`` has fewer rows than columns.

    The refit of pruned weights (``prior``: their trained values). Plain ridge pulls towards zero, and that
    is what made ``prune(reconstruct=true)`` worse than no refit: a direction the calibration batch does not
    excite (an input that is zero on every sample, a unit that never fires on it) lost its trained weight,
    and a batch with fewer rows than unknowns was fitted exactly, by the minimum-norm solution. Anchored,
    unexcited directions keep their trained values; with fewer rows than unknowns the batch cannot tell the
    layer from the batch, so the weights stay as trained (plain magnitude pruning).
    """
    if len(a) < a.shape[1]:
        return np.array(prior, np.float64)
    gram = a.T @ a
    scale = float(np.mean(np.diag(gram))) if len(gram) else 1.0
    lam = damp * (scale or 1.0)
    return np.linalg.solve(gram + lam * np.eye(len(gram)), a.T @ t + lam * prior)


def refit(weight: np.ndarray, gram: np.ndarray, kept: np.ndarray) -> np.ndarray:
    """The least-squares refit of ``weight`` onto the columns ``kept``, zeros elsewhere.

    Minimises ``tr((W - W') G (W - W')ᵀ)`` (the output error when ``G = XᵀX``) with ``W'`` zero outside
    ``kept``: ``W'_K = W G[:, K] G[K, K]⁻¹``.
    """
    result = np.zeros_like(weight)
    result[:, kept] = np.linalg.solve(gram[np.ix_(kept, kept)], (weight @ gram[:, kept]).T).T
    return result


def reap_select(
    weight: np.ndarray, gram: np.ndarray, blocks: Sequence[np.ndarray], keep: int
) -> tuple[list[int], np.ndarray]:
    """REAP for one consumer: :func:`reap_group_select` with a single weight."""
    kept, weights = reap_group_select([weight], [gram], [blocks], keep)
    return kept, weights[0]


def reap_group_select(
    weights: Sequence[np.ndarray],
    grams: Sequence[np.ndarray],
    blocks: Sequence[Sequence[np.ndarray]],
    keep: int,
) -> tuple[list[int], list[np.ndarray]]:
    """REAP over every consumer of a group of units: the kept units (sorted) and each refitted weight."""
    for remaining, fitted in reap_drops(weights, grams, blocks):
        if len(remaining) <= keep:
            return sorted(remaining), [w.copy() for w in fitted]
    raise ValueError(f"keep must be at least 1, not {keep}")


def reap_drops(
    weights: Sequence[np.ndarray],
    grams: Sequence[np.ndarray],
    blocks: Sequence[Sequence[np.ndarray]],
) -> Iterator[tuple[list[int], list[np.ndarray]]]:
    """REAP: greedily drop the unit whose removal, after an optimal refit of every consumer, costs least.

    Consumer ``j`` reads unit ``u`` through the columns ``blocks[j][u]`` of its weight ``weights[j]``
    (out, n), with ``grams[j]`` the Gram matrix of its own input. The consumers' refits are independent
    least-squares problems, so the joint error of a set of dropped units is the sum of their errors.
    With ``H = G⁻¹`` one consumer's refit error of dropping columns ``C`` is ``tr(W_C H_CC⁻¹ W_Cᵀ)``
    (``‖w_i‖²/H_ii`` for one column), the refit is ``W_R ← W_R - W_C H_CC⁻¹ H_CR`` and the remaining
    inverse is the Schur downdate ``H_RR ← H_RR - H_RC H_CC⁻¹ H_CR``: one matrix update per drop instead
    of a least-squares solve per candidate. Each drop's cost is the increase of the total error, so the
    greedy choices are those of brute force. Columns outside every block (the bias column) are never
    dropped.

    Yields the remaining units and the refitted weights (zeros in dropped columns; the same arrays,
    updated in place, at every step: copy what you keep) before any drop and after each, down to one unit.
    """
    if _stackable(weights, blocks):
        yield from _stacked_drops(weights, grams, blocks[0])
        return
    w = [np.array(weight, np.float64) for weight in weights]
    h = [np.linalg.inv(np.asarray(gram, np.float64)) for gram in grams]
    alive = [np.ones(x.shape[1], bool) for x in w]
    remaining = list(range(len(blocks[0])))
    yield remaining, w
    while len(remaining) > 1:
        costs = sum(
            (_drop_costs(w[j], h[j], [blocks[j][b] for b in remaining]) for j in range(len(w))),
            np.zeros(len(remaining)),
        )
        drop = remaining.pop(int(np.argmin(costs)))
        for j in range(len(w)):
            c = blocks[j][drop]
            alive[j][c] = False
            rest = np.flatnonzero(alive[j])
            h_cc_inv = np.linalg.inv(h[j][np.ix_(c, c)])
            h_cr = h[j][np.ix_(c, rest)]
            w[j][:, rest] -= w[j][:, c] @ h_cc_inv @ h_cr
            h[j][np.ix_(rest, rest)] -= h_cr.T @ h_cc_inv @ h_cr
            w[j][:, c] = 0.0
        yield remaining, w


def _stackable(weights: Sequence[np.ndarray], blocks: Sequence[Sequence[np.ndarray]]) -> bool:
    """Many consumers of one column per unit, all alike (POEM's one problem per output): vectorise them."""
    first = blocks[0]
    return (
        len(weights) > 1
        and all(len(b) == 1 for b in first)
        and all(w.shape == weights[0].shape for w in weights)
        and all(
            len(bl) == len(first) and all(np.array_equal(a, b) for a, b in zip(bl, first, strict=True))
            for bl in blocks
        )
    )


def _stacked_drops(
    weights: Sequence[np.ndarray], grams: Sequence[np.ndarray], blocks: Sequence[np.ndarray]
) -> Iterator[tuple[list[int], list[np.ndarray]]]:
    """:func:`reap_drops` for consumers stacked in one array: the same steps on whole (k, n, n) arrays.

    The rank-one downdate is applied to all of each ``H``, dropped rows too: an entry of two kept columns
    is only ever updated from entries of kept columns, so the kept part stays the Schur complement.
    """
    w = np.stack([np.array(x, np.float64) for x in weights])  # (k, out, n)
    h = np.linalg.inv(np.stack([np.asarray(g, np.float64) for g in grams]))  # (k, n, n)
    columns = np.array([b[0] for b in blocks])
    remaining = list(range(len(blocks)))
    alive = np.ones(w.shape[2], bool)
    yield remaining, list(w)
    while len(remaining) > 1:
        cols = columns[remaining]
        diag = np.diagonal(h, axis1=1, axis2=2)[:, cols]  # (k, units)
        costs = np.sum(np.sum(w[:, :, cols] ** 2, axis=1) / diag, axis=0)
        drop = remaining.pop(int(np.argmin(costs)))
        c = columns[drop]
        pivot = h[:, c, c][:, None, None]
        w -= w[:, :, c : c + 1] * (h[:, c : c + 1, :] / pivot)
        h -= h[:, :, c : c + 1] * (h[:, c : c + 1, :] / pivot)
        alive[c] = False
        w[:, :, ~alive] = 0.0
        yield remaining, list(w)


def _drop_costs(w: np.ndarray, h: np.ndarray, blocks: Sequence[np.ndarray]) -> np.ndarray:
    """The refit error of dropping each block alone from one consumer, ``tr(W_C H_CC⁻¹ W_Cᵀ)``."""
    if all(len(b) == 1 for b in blocks):
        cols = np.array([b[0] for b in blocks])
        return np.asarray(np.sum(w[:, cols] ** 2, axis=0) / np.diag(h)[cols])
    return np.array([np.trace(w[:, b] @ np.linalg.solve(h[np.ix_(b, b)], w[:, b].T)) for b in blocks])


def unify_select(
    weight: np.ndarray, signals: np.ndarray, columns: Sequence[np.ndarray], bias_col: int, keep: int
) -> tuple[list[int], np.ndarray]:
    """Neuro-Unification: merge units, one at a time, into the surviving unit that best emulates them.

    ``signals[:, u]`` is unit ``u``'s activation (samples x positions flattened) as the next layer sees
    it. Unit ``u`` is emulated by ``v`` as ``z_u ≈ a z_v + b`` (least squares); merging folds ``u``'s
    outgoing columns into ``v``'s (``W_v += a W_u``, tap by tap) and ``b`` times their sum into the bias
    column. The merge chosen is the one with the least ``‖W_u‖² · residual(u, v)``: the output error it
    adds if the next layer's input were one position. Returns kept units and the folded weight.
    """
    w = np.array(weight, np.float64)
    z = signals - signals.mean(axis=0)
    cov = z.T @ z
    var = np.maximum(np.diag(cov), 1e-30)
    slope = cov / var[None, :]  # slope[u, v]: a in z_u ≈ a z_v
    residual = np.maximum(np.diag(cov)[:, None] - cov**2 / var[None, :], 0.0)
    means = signals.mean(axis=0)
    units = len(columns)
    np.fill_diagonal(residual, np.inf)
    alive = np.ones(units, bool)
    while alive.sum() > keep:
        norms = np.array([np.sum(w[:, columns[u]] ** 2) for u in range(units)])
        masked = np.where(alive[None, :], residual, np.inf)
        best = np.argmin(masked, axis=1)
        cost = np.where(alive, norms * masked[np.arange(units), best], np.inf)
        u = int(np.argmin(cost))
        v = int(best[u])
        a = slope[u, v]
        w[:, columns[v]] += a * w[:, columns[u]]
        w[:, bias_col] += (means[u] - a * means[v]) * w[:, columns[u]].sum(axis=1)
        w[:, columns[u]] = 0.0
        alive[u] = False
    return [int(u) for u in np.flatnonzero(alive)], w


def whitened_svd(
    weight: np.ndarray, cov: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """SVD of ``W L`` where ``L Lᵀ = cov`` (activation-aware), or of ``W`` when ``cov`` is None.

    Truncating ``W L = U S Vᵀ`` to rank r gives the ``W'`` of rank r with the least output error
    ``‖(W - W') X‖`` for inputs of covariance ``cov``: ``W' = U_r S_r V_rᵀ L⁻¹``. Returns U, S, Vᵀ and
    ``L⁻¹`` (None without ``cov``), so the caller maps ``Vᵀ`` back.
    """
    if cov is None:
        u, s, vt = np.linalg.svd(weight, full_matrices=False)
        return u, s, vt, None
    chol = np.linalg.cholesky(cov)
    u, s, vt = np.linalg.svd(weight @ chol, full_matrices=False)
    return u, s, vt, np.linalg.inv(chol)


def vbmf_rank(matrix: np.ndarray) -> int:
    """The rank that empirical variational Bayesian matrix factorisation (Nakajima et al. 2013) keeps.

    The noise variance is the one that minimises the EVBMF free energy, found by a grid and golden-section
    search between the analytic bounds; singular values above the EVBMF threshold for that variance are kept.
    Used by ``lowrank(rank=auto)``, as in Kim et al.'s Tucker-2 compression of CNNs.
    """
    y = matrix if matrix.shape[0] <= matrix.shape[1] else matrix.T
    rows, cols = y.shape
    s = np.linalg.svd(y, compute_uv=False)
    alpha = rows / cols
    tau_bar = 2.5129 * math.sqrt(alpha)
    x_bar = (1 + tau_bar) * (1 + alpha / tau_bar)
    e_h = max(min(math.ceil(rows / (1 + alpha)) - 1, rows) - 1, 0)
    upper = float(np.sum(s**2)) / (rows * cols)
    tail = s[min(e_h + 1, rows - 1) :]
    lower = max(float(tail[0] ** 2) / (cols * x_bar), float(np.mean(tail**2)) / cols)
    lower = min(lower, upper * 0.999) if lower > 0 else upper * 1e-6

    def free_energy(sigma2: float) -> float:
        x = s**2 / (cols * sigma2)
        z1, z2 = x[x > x_bar], x[x <= x_bar]
        tau = 0.5 * (z1 - (1 + alpha) + np.sqrt(np.maximum((z1 - (1 + alpha)) ** 2 - 4 * alpha, 0.0)))
        z2 = np.maximum(z2, 1e-300)
        return float(
            np.sum(z2 - np.log(z2))
            + np.sum(z1 - tau)
            + np.sum(np.log((tau + 1) / z1))
            + alpha * np.sum(np.log(tau / alpha + 1))
        )

    # The free energy is not unimodal over the many decades between the bounds: a log-spaced grid
    # first, then golden-section search (in log sigma²) between the best point's neighbours.
    grid = np.linspace(math.log(lower), math.log(upper), 200)
    best = int(np.argmin([free_energy(math.exp(g)) for g in grid]))
    a, b = grid[max(best - 1, 0)], grid[min(best + 1, len(grid) - 1)]
    ratio = (math.sqrt(5) - 1) / 2
    for _ in range(60):
        c, d = b - ratio * (b - a), a + ratio * (b - a)
        if free_energy(math.exp(c)) < free_energy(math.exp(d)):
            b = d
        else:
            a = c
    sigma2 = math.exp((a + b) / 2)
    threshold = math.sqrt(cols * sigma2 * (1 + tau_bar) * (1 + alpha / tau_bar))
    return max(1, int(np.sum(s > threshold)))


def relu_masked_fits(
    rows: np.ndarray, target: np.ndarray, current: np.ndarray, damp: float
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Per output, the least-squares fit and damped Gram matrix over the rows a ReLU after it lets through.

    ``rows`` are the layer's input rows with the constant column, ``target`` its original pre-activations
    and ``current`` those of the weights fitted so far. A row where both are negative is zero after the
    ReLU either way, so its error does not count (POEM): each output gets its own Gram matrix of the
    rows that count for it, and REAP over those "consumers" of one row each selects and refits for the
    error after the activation. Returns each output's ``[w b]`` (1, n + 1) and Gram matrix.
    """
    counts = (target > 0) | (current > 0)
    fits, grams = [], []
    for o in range(target.shape[1]):
        x = rows[counts[:, o]]
        gram = add_damping(x.T @ x, damp)
        fits.append(np.linalg.solve(gram, x.T @ target[counts[:, o], o])[None, :])
        grams.append(gram)
    return fits, grams
