"""Numba kernels for the Proposition 2.2 bound of the one-hidden-layer network.

Pure ``@njit(cache=True)`` functions on float64 arrays, no fastmath (they feed
a certificate). The split runs on one thread: it sits between BLAS calls whose
worker threads still spin on the other cores, and a parallel launch there
loses more to that contention than it gains.
"""

from numba import njit

__all__ = ["signed_gram_split"]


@njit(cache=True)
def signed_gram_split(G, sig, Sp, Sm):
    """Split ``S = diag(sig) G diag(sig)`` into its positive and negative parts.

    Writes ``Sp = max(S, 0)`` and ``Sm = max(-S, 0)`` (both non-negative, so
    ``S = Sp - Sm``); multiplication by ``sig in {-1, 0, 1}`` is exact.

    Parameters
    ----------
    G : ndarray of shape (U, U)
        Gram matrix ``W1^T W1``.
    sig : ndarray of shape (U,)
        Signs of ``v = W2[:, j] - W2[:, c]``.
    Sp, Sm : ndarray of shape (U, U)
        Output buffers.
    """
    U = G.shape[0]
    for r in range(U):
        sr = sig[r]
        for t in range(U):
            s = G[r, t] * (sr * sig[t])
            if s > 0.0:
                Sp[r, t] = s
                Sm[r, t] = 0.0
            else:
                Sp[r, t] = 0.0
                Sm[r, t] = -s
