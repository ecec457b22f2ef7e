r"""Blocked computations of the Gaussian-kernel model over centres (landmarks).

Private helpers of :class:`sklearn_crosslip.KernelCrossLipClassifier` for the
expansion over ``m`` centres ``z_r`` (``n_centers``),
``f_j(x) = sum_r alpha_jr k(x, z_r) + b_j``, trained on all ``n`` training points.
Nothing here allocates an ``n x n`` array: the training points are processed in
row blocks and every result is of size ``n x m``, ``m x m`` or ``block x m``.

The row blocks go through :class:`joblib.Parallel` (as certification does in
:mod:`sklearn_crosslip.bounds.theorem21`), so ``with
joblib.parallel_backend("dask"):`` spreads them over a dask cluster; outside
such a context they run in the calling process (one task, BLAS threads).

Cross-Lipschitz quadratic form over centres (eq. 6)
---------------------------------------------------
With ``k_ir = k(x_i, z_r)`` the input gradient of ``f_a = sum_r a_r k(., z_r)``
(the intercept has no input gradient) at a training point is
``grad f_a(x_i) = -2 gamma sum_r a_r k_ir (x_i - z_r)``, so

    sum_{i <= n} ||grad f_a(x_i)||^2 = a^T Q a,
    Q_rs = 4 gamma^2 sum_i k_ir k_is <x_i - z_r, x_i - z_s>.

With ``S_ir = ||x_i - z_r||^2`` and ``C_rs = ||z_r - z_s||^2``,
``||z_r - z_s||^2 = ||(x_i - z_s) - (x_i - z_r)||^2`` gives
``<x_i - z_r, x_i - z_s> = (S_ir + S_is - C_rs) / 2``, hence with ``M = Kn o S``
(``Kn`` the ``n x m`` kernel matrix, ``o`` the elementwise product)

    Q = 2 gamma^2 [M^T Kn + Kn^T M - (Kn^T Kn) o C]
      = 2 gamma^2 sum_b [(Kb o Sb)^T Kb + Kb^T (Kb o Sb) - (Kb^T Kb) o C]

summed over row blocks ``b`` of the training points: per block one ``dsyr2k``
(``P += Mb^T Kb + Kb^T Mb``) and one ``dsyrk`` (``G += Kb^T Kb``), about
``3 n m^2`` flops in all, and ``O(m^2 + block x m)`` memory. ``G = Kn^T Kn`` is
also the loss part of the preconditioner. With all training points as centres
(``z = x``) this is the ``n x n`` matrix of
:func:`sklearn_crosslip.regularizers.kernel.cross_lipschitz_matrix`.
"""

import math

import numpy as np
from joblib import Parallel, delayed, effective_n_jobs
from scipy.linalg import blas

from .regularizers.kernel import _symmetrize_upper

# Entries of one (block x m) temporary (~64 MB); three live at a time per task.
_BLOCK_ENTRIES = 1 << 23
_MIN_ROWS = 64


def row_sqnorms(X):
    """Squared Euclidean norms of the rows of ``X``."""
    return np.einsum("ij,ij->i", X, X)


def cross_sq_dists(A, A_sqnorm, B, B_sqnorm):
    """Squared distances between the rows of ``A`` and ``B`` (clipped at 0)."""
    S = A @ B.T
    S *= -2.0
    S += A_sqnorm[:, None]
    S += B_sqnorm[None, :]
    np.maximum(S, 0.0, out=S)
    return S


def available_memory():
    """Bytes of memory available to a new allocation (``MemAvailable``), or None.

    Read from ``/proc/meminfo`` (Linux); ``None`` where it cannot be read, in
    which case the memory guard of ``fit`` is skipped.
    """
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):  # pragma: no cover - non-Linux
        return None
    return None  # pragma: no cover


def block_rows(width, entries=_BLOCK_ENTRIES):
    """Rows of a block of ``width`` columns holding about ``entries`` entries."""
    return max(_MIN_ROWS, entries // max(int(width), 1))


def _chunks(n, n_tasks):
    """``n_tasks`` contiguous row ranges covering ``range(n)``."""
    n_tasks = max(1, min(int(n_tasks), n))
    edges = np.linspace(0, n, n_tasks + 1).round().astype(int)
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:]) if b > a]


def _n_tasks(n, rows_per_task_min=1024):
    """Number of joblib tasks: the effective number of workers (1 sequentially)."""
    return max(1, min(effective_n_jobs(None), math.ceil(n / rows_per_task_min)))


# ------------------------------------------------------------- KNN gamma rule
def _knn_sum_task(X, sqnorm, i0, i1, n_neighbors):
    n = X.shape[0]
    step = block_rows(n)
    total = 0.0
    for a in range(i0, i1, step):
        b = min(a + step, i1)
        S = cross_sq_dists(X[a:b], sqnorm[a:b], X, sqnorm)
        S[np.arange(b - a), np.arange(a, b)] = np.inf  # exclude the point itself
        part = np.partition(S, n_neighbors - 1, axis=1)[:, :n_neighbors]
        total += float(np.sqrt(part).sum())
    return total


def knn_mean_distance(X, sqnorm, n_neighbors):
    """Mean distance of the rows of ``X`` to their ``n_neighbors`` nearest other rows.

    The KNN rule of Section 5 (``gamma = gamma_scale / rho^2``), computed in row
    blocks of ``block x n`` distances (never ``n x n``), through joblib.
    """
    n = X.shape[0]
    parts = Parallel(n_jobs=None)(
        delayed(_knn_sum_task)(X, sqnorm, a, b, n_neighbors)
        for a, b in _chunks(n, _n_tasks(n))
    )
    return sum(parts) / (n * n_neighbors)


# ----------------------------------------------- kernel and quadratic forms
def _gram_task(X, sqnorm, Z, zsq, gamma, with_p):
    """Kernel rows ``K = k(X, Z)`` and the upper triangles of ``K^T K`` and ``P``.

    ``P = M^T K + K^T M`` with ``M = K o S`` (see the module docstring).
    """
    n, m = X.shape[0], Z.shape[0]
    Kc = np.empty((n, m))
    G = np.zeros((m, m), order="F")
    P = np.zeros((m, m), order="F") if with_p else None
    step = block_rows(m)
    for a in range(0, n, step):
        b = min(a + step, n)
        S = cross_sq_dists(X[a:b], sqnorm[a:b], Z, zsq)  # (nb, m), C order
        Kb = Kc[a:b]
        np.multiply(S, -gamma, out=Kb)
        np.exp(Kb, out=Kb)
        # Kb.T is a Fortran-ordered (m, nb) view: G += Kb^T Kb (upper triangle)
        G = blas.dsyrk(1.0, Kb.T, beta=1.0, c=G, overwrite_c=1)
        if with_p:
            np.multiply(S, Kb, out=S)  # M_b = K_b o S_b
            P = blas.dsyr2k(1.0, S.T, Kb.T, beta=1.0, c=P, overwrite_c=1)
        del S
    return Kc, G, P


def center_gram(X, sqnorm, Z, zsq, gamma, with_p):
    """``Kn = k(X, Z)`` (n, m), ``G = Kn^T Kn`` and ``P = M^T Kn + Kn^T M`` (upper).

    Row blocks of ``X`` are distributed over joblib tasks; each task returns its
    rows of ``Kn`` and its partial ``G`` and ``P``, summed here.
    """
    n, m = X.shape[0], Z.shape[0]
    chunks = _chunks(n, _n_tasks(n))
    parts = Parallel(n_jobs=None)(
        delayed(_gram_task)(X[a:b], sqnorm[a:b], Z, zsq, gamma, with_p) for a, b in chunks
    )
    if len(parts) == 1:
        return parts[0]
    Kn = np.empty((n, m))
    G = P = None
    for (a, b), (Kc, Gc, Pc) in zip(chunks, parts):
        Kn[a:b] = Kc
        G = Gc if G is None else np.add(G, Gc, out=G)
        if with_p:
            P = Pc if P is None else np.add(P, Pc, out=P)
    return Kn, G, P


def finish_cross_lipschitz(G, P, Z, zsq, gamma, block=512):
    """``Q = 2 gamma^2 [P - G o C]`` written over ``P`` (full, symmetric, Fortran).

    ``G`` and ``P`` hold their upper triangles; ``C`` (squared distances of the
    centres) is computed in column blocks.
    """
    m = Z.shape[0]
    c = 2.0 * gamma * gamma
    for j0 in range(0, m, block):
        j1 = min(j0 + block, m)
        C = cross_sq_dists(Z[:j1], zsq[:j1], Z[j0:j1], zsq[j0:j1])
        C[np.arange(j0, j1), np.arange(j1 - j0)] = 0.0
        C *= G[:j1, j0:j1]
        P[:j1, j0:j1] -= C
        P[:j1, j0:j1] *= c
    return _symmetrize_upper(P)


def center_kernel(Z, zsq, gamma):
    """Kernel matrix ``k(Z, Z)`` of the centres (m, m)."""
    Kz = cross_sq_dists(Z, zsq, Z, zsq)
    np.fill_diagonal(Kz, 0.0)
    Kz *= -gamma
    np.exp(Kz, out=Kz)
    return Kz


def precompute(X, Z, gamma, regularizer):
    """Everything of the centred fit that does not depend on ``lam``.

    Returns ``(Kn, G, H)``: the (n, m) kernel matrix, ``G = Kn^T Kn`` (full,
    symmetric) and the matrix of the regulariser, ``Q`` for
    ``'cross_lipschitz'``, ``k(Z, Z)`` for ``'rkhs'``, ``None`` for ``'none'``.
    This is the function cached by the estimator's ``memory``.
    """
    sqnorm, zsq = row_sqnorms(X), row_sqnorms(Z)
    with_p = regularizer == "cross_lipschitz"
    Kn, G, P = center_gram(X, sqnorm, Z, zsq, gamma, with_p)
    if with_p:
        H = finish_cross_lipschitz(G, P, Z, zsq, gamma)
    elif regularizer == "rkhs":
        H = center_kernel(Z, zsq, gamma)
    else:
        H = None
    return Kn, _symmetrize_upper(G), H


def knn_rho(X, n_neighbors):
    """Mean KNN distance of the rows of ``X`` (cached by the estimator's ``memory``)."""
    return knn_mean_distance(X, row_sqnorms(X), n_neighbors)


# ------------------------------------------------------------- memory guard
def centered_peak_bytes(n, m, regularizer, n_tasks=1):
    """Estimated peak of the centred fit beyond the training inputs, in bytes.

    ``Kn`` (``8 n m``) lives throughout; the precomputation adds ``G`` and ``P``
    per joblib task and three ``block x m`` temporaries; then ``G``, ``H`` and
    the preconditioner ``B`` (``24 m^2``).
    """
    mats = 2 if regularizer == "cross_lipschitz" else 1
    blocks = 3 * 8 * min(n, block_rows(m)) * m
    phase1 = 8 * m * m * mats * n_tasks + blocks * n_tasks + (8 * m * m if n_tasks > 1 else 0)
    phase2 = 8 * m * m * (3 if regularizer != "none" else 2)
    return 8 * n * m + max(phase1, phase2) + 16 * 10 * m * 20  # + L-BFGS history


def exact_peak_bytes(n, regularizer):
    """Estimated peak of the fit over all ``n`` training points (``n x n`` arrays)."""
    per = 24 if regularizer == "cross_lipschitz" else 16
    return per * n * n + 3 * 8 * 512 * n


def check_memory(needed, what, advice):
    """Raise ``MemoryError`` if ``needed`` bytes exceed the available memory."""
    avail = available_memory()
    if avail is not None and needed > 0.9 * avail:
        raise MemoryError(
            f"{what} needs about {needed / 2**30:.1f} GiB but only "
            f"{avail / 2**30:.1f} GiB of memory is available. {advice}"
        )


# ----------------------------------------------------------- centre choice
def stratified_centers(y_idx, m, n_classes, rng):
    """Indices of ``m`` training points drawn without replacement per class.

    ``rng`` is a :class:`numpy.random.RandomState`.

    Class ``c`` gets ``m n_c / n`` centres rounded by largest remainder (at most
    ``n_c``, at least one where ``m >= n_classes``); returned sorted.
    """
    n = y_idx.shape[0]
    counts = np.bincount(y_idx, minlength=n_classes)
    share = m * counts / n
    take = np.floor(share).astype(int)
    if m >= n_classes:
        take = np.maximum(take, np.minimum(counts, 1))
    rest = m - take.sum()
    order = np.argsort(-(share - np.floor(share)), kind="stable")
    i = 0
    while rest != 0:
        c = order[i % n_classes]
        if rest > 0 and take[c] < counts[c]:
            take[c] += 1
            rest -= 1
        elif rest < 0 and take[c] > 1:
            take[c] -= 1
            rest += 1
        i += 1
    idx = [rng.choice(np.flatnonzero(y_idx == c), int(take[c]), replace=False)
           for c in range(n_classes) if take[c] > 0]
    return np.sort(np.concatenate(idx))


def kmeans_centers(X, y_idx, m, n_classes, rng):
    """``m`` k-means centres, computed per class (stratified counts, k-means++ init)."""
    from sklearn.cluster import KMeans

    idx = stratified_centers(y_idx, m, n_classes, rng)
    take = np.bincount(y_idx[idx], minlength=n_classes)
    out = []
    for c in range(n_classes):
        if take[c] == 0:
            continue
        Xc = X[y_idx == c]
        km = KMeans(n_clusters=int(take[c]), n_init=1, max_iter=50,
                    random_state=int(rng.randint(2**31 - 1)))
        out.append(km.fit(Xc).cluster_centers_)
    return np.ascontiguousarray(np.vstack(out), dtype=np.float64)
