"""Cheap adversarial examples for adversarial training (the authors' recipe).

Adversarial training in Section 5 of Hein & Andriushchenko (2017) replaces part
of every mini-batch by adversarial examples of the current network. The
authors' published training code (max-andr/cross-lipschitz, ``worker.py`` with
``at_method='targeted_box_constrained'`` and ``ae_generation.generate_ae`` with
``binary_search=False``) makes them in one linearisation, without the search
that lands the Section 4 attack on the decision boundary. For a point ``x``
with predicted class ``c`` and runner-up class ``j`` (the second largest
logit), with ``g = grad f_j(x) - grad f_c(x)`` and margin ``b = f_c(x) -
f_j(x) >= 0``, it solves the linearised problem (8) for a random fraction
``u ~ U[0, 1)`` of the margin,

    delta = argmin ||delta||_2  s.t.  <g, delta> >= u b,  lo <= x + delta <= hi,

exactly with :func:`~sklearn_crosslip.attacks.min_norm_box_halfspace`. The
change moves ``x`` a random part of the way toward the linearised boundary
with the runner-up class, so most examples keep their prediction; where the
box makes the problem infeasible the point is left unchanged (as the authors
do). Cost: one forward pass, one input-gradient difference and one projection
per point, against tens of forward passes for the boundary search of
:func:`~sklearn_crosslip.attacks.adversarial_perturbation`.
"""

import numpy as np

from .projections import min_norm_box_halfspace

__all__ = ["linearized_training_change"]


def linearized_training_change(est, X, rng, lo=None, hi=None):
    """Random-fraction linearised changes toward the runner-up class (see module docstring).

    Parameters
    ----------
    est : fitted estimator
        A model of the robustness protocol (``_logits`` and either
        ``_input_gradient_difference(X, c, j)`` or ``_input_gradients``).
    X : ndarray of shape (m, d)
        Points (float64, C-contiguous, inside the box).
    rng : numpy.random.Generator
        Source of the fractions ``u``.
    lo, hi : None, float or ndarray of shape (d,), default=None
        Box of the inputs (``None``: unbounded).

    Returns
    -------
    delta : ndarray of shape (m, d)
        The changes; ``X + delta`` lies in the box. Rows where the linearised
        problem has no solution are 0.
    """
    X = np.ascontiguousarray(X, dtype=np.float64)
    m = X.shape[0]
    if m == 0:
        return np.zeros_like(X)
    F = est._logits(X)
    top2 = np.argsort(F, axis=1)[:, -2:]
    j, c = top2[:, 0], top2[:, 1]
    rows = np.arange(m)
    if hasattr(est, "_input_gradient_difference"):
        G = est._input_gradient_difference(X, c, j)
    else:
        grads = est._input_gradients(X)
        G = grads[rows, j] - grads[rows, c]
    b = (F[rows, c] - F[rows, j]) * rng.uniform(size=m)
    delta, feasible = min_norm_box_halfspace(G, b, X, lo, hi, p=2)
    delta[~np.asarray(feasible, dtype=bool)] = 0.0
    if lo is not None or hi is not None:
        # remove last-bit overshoot of the box
        delta = np.clip(X + delta, -np.inf if lo is None else lo,
                        np.inf if hi is None else hi) - X
    return delta
