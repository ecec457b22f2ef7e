"""Certificates and attacks written once for every model family.

:class:`RobustnessMixin` gives an estimator ``certified_radius`` (Theorem 2.1 of
Hein & Andriushchenko, 2017) and ``adversarial_perturbation`` (their Section 4),
in terms of a small protocol that each model implements:

``_logits(X)``
    (m, K) float64 decision values ``f_j(x)``, one column per class (K >= 2,
    also for binary problems).
``_logits_error(X)``
    (m,) float64: an upper bound on the absolute floating-point error of every
    entry of ``_logits(X)``; the certificate subtracts it from the margins.
``_input_gradients(X)``
    (m, K, d) float64 input gradients ``grad f_j(x)``.
``_local_cross_lipschitz(X, c, R, active=None, lo=None, hi=None, method="local", norm=2)``
    (m, K) upper bounds on ``max_{y in B_p(x_i, R_i) cap box} ||grad f_{c_i}(y) -
    grad f_j(y)||_q`` (``p = norm``, ``1/p + 1/q = 1``), nondecreasing in ``R``;
    entries that are not ``active`` (and the column ``c_i``) are ignored by the
    caller. ``norm`` is only passed for ``p != 2``.
``_global_cross_lipschitz(norm=2)``
    (K, K) R-independent upper bounds on ``sup_y ||grad f_c(y) - grad f_j(y)||_q``
    (``inf`` is allowed where no constant for that norm is known).

``X`` passed to the protocol is already validated: float64, C-contiguous,
finite, with ``n_features_in_`` columns.
"""

import numpy as np
from sklearn.utils.validation import check_is_fitted, validate_data

__all__ = ["RobustnessMixin", "certified_accuracy"]


class RobustnessMixin:
    """Mixin adding certified radii and adversarial perturbations to a classifier."""

    def _validate_robustness_input(self, X):
        check_is_fitted(self)
        X = validate_data(
            self, X, reset=False, dtype=np.float64, order="C", ensure_all_finite=True
        )
        return X

    # Prediction from the protocol's logits, shared by every model family.
    def decision_function(self, X):
        """Decision values ``f(x)``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Input samples.

        Returns
        -------
        scores : ndarray of shape (n_samples,) or (n_samples, n_classes)
            ``f_1(x) - f_0(x)`` for two classes (positive favours
            ``classes_[1]``), otherwise one column per class.
        """
        F = self._logits(self._validate_robustness_input(X))
        return F[:, 1] - F[:, 0] if F.shape[1] == 2 else F

    def predict_log_proba(self, X):
        """Logarithm of the class probabilities, computed stably (log-sum-exp).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Input samples.

        Returns
        -------
        log_proba : ndarray of shape (n_samples, n_classes)
            In the order of ``classes_``.
        """
        F = self._logits(self._validate_robustness_input(X))
        F -= F.max(axis=1, keepdims=True)
        F -= np.log(np.exp(F).sum(axis=1, keepdims=True))
        return F

    def predict_proba(self, X):
        """Class probabilities, the softmax of the decision values.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Input samples.

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
            In the order of ``classes_``.
        """
        F = self._logits(self._validate_robustness_input(X))
        F -= F.max(axis=1, keepdims=True)
        np.exp(F, out=F)
        F /= F.sum(axis=1, keepdims=True)
        return F

    def predict(self, X):
        """Predicted class labels (largest decision value).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Input samples.

        Returns
        -------
        y_pred : ndarray of shape (n_samples,)
        """
        F = self._logits(self._validate_robustness_input(X))
        return self.classes_[np.argmax(F, axis=1)]

    def certified_radius(
        self, X, y=None, *, norm=2, bound="local", box=None, n_jobs=None,
        return_details=False,
    ):
        """Certified robustness radius of each sample in a p-norm (Theorem 2.1).

        For each row ``x`` of ``X`` returns ``alpha(x)`` such that every input
        ``x + delta`` with ``||delta||_p <= alpha(x)`` (and inside ``box`` when
        one is given) receives the same predicted class as ``x``. The value is
        ``max_R min(min_{j != c} (f_c(x) - f_j(x)) / L_j(R), R)`` with ``L_j(R)``
        an upper bound on the local cross-Lipschitz constant, in the dual
        norm ``q`` (``1/p + 1/q = 1``), over the ball ``B_p(x, R)``
        (Proposition 2.1 for kernel models, Proposition 2.2 for the
        one-hidden-layer network when ``p = 2``; the bounds of
        :doc:`/norms` for ``p = 1`` and ``p = inf``); ``R`` is optimised by a
        safeguarded search and the safe end of it is returned. All bounds are
        computed in float64 and rounded toward a smaller radius.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Points to certify.
        y : array-like of shape (n_samples,), default=None
            True labels. If given, misclassified points get radius 0, so that
            ``radius.mean()`` is a certified-robustness summary.
        norm : {1, 2, np.inf, "l1", "l2", "linf"}, default=2
            The p-norm in which the radius is measured and certified.
        bound : {"local", "local_fast", "global"}, default="local"
            ``"local"``: Theorem 2.1 with the paper's local bounds (exact
            Proposition 2.1 / 2.2, each capped by the global constant).
            ``"local_fast"``: a cheaper sound local bound (for kernel models,
            Proposition 2.1 over the nearest training points plus a
            triangle-inequality bound for the rest). ``"global"``: an
            R-independent global cross-Lipschitz constant.
        box : tuple (lo, hi) or None, default=None
            Input domain, e.g. ``(0, 1)`` for images. The local constant is then
            maximised over the ball intersected with the box, which can only
            enlarge the radius; the guarantee holds for inputs inside the box.
        n_jobs : int, default=None
            Number of joblib workers over chunks of samples (``None`` means 1
            unless in a :func:`joblib.parallel_backend` context).
        return_details : bool, default=False
            If True, also return a dict with the optimal ``R`` and the binding
            class index per sample (see
            :func:`sklearn_crosslip.bounds.theorem21.certified_radius`).

        Returns
        -------
        radius : ndarray of shape (n_samples,)
            Certified lower bounds on the p-norm distance to the decision
            boundary.
        details : dict
            Only when ``return_details=True``.
        """
        from .bounds.theorem21 import certified_radius

        X = self._validate_robustness_input(X)
        return certified_radius(
            self, X, y, norm=norm, bound=bound, box=box, n_jobs=n_jobs,
            return_details=return_details,
        )

    def adversarial_perturbation(
        self,
        X,
        *,
        norm=2,
        box=None,
        target=None,
        boundary_search=True,
        refine_steps=0,
        n_jobs=None,
    ):
        """Small input changes that flip the decision (Section 4, eq. 8).

        Linearises the classifier at ``x`` and solves the box-constrained
        minimal-norm problem (8) exactly in O(d log d) for every competing class;
        the smallest change is kept (untargeted) and, with ``boundary_search``,
        a search on the linearised target value places ``x + delta`` just past
        the decision boundary. ``refine_steps > 0`` repeats the linearised
        projection from the current boundary point to tighten the result.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Points to attack.
        norm : {1, 2, inf}, default=2
            The p-norm of ``delta`` that is minimised.
        box : tuple (lo, hi) or None, default=None
            Input domain; ``X + delta`` stays inside it.
        target : class label, array-like of shape (n_samples,) or None, default=None
            Class to reach. ``None`` means any class other than the predicted one.
        boundary_search : bool, default=True
            Search along the linearised target value so that the decision just flips.
        refine_steps : int, default=0
            Extra linearise-and-project steps from the current adversarial point.
        n_jobs : int, default=None
            Number of joblib workers over chunks of samples.

        Returns
        -------
        delta : ndarray of shape (n_samples, n_features)
            Perturbations with ``predict(X + delta) != predict(X)`` (or equal to
            ``target``); rows where no adversarial change was found are NaN and
            counted in a warning.
        """
        from .attacks.boundary import adversarial_perturbation

        X = self._validate_robustness_input(X)
        return adversarial_perturbation(
            self,
            X,
            norm=norm,
            box=box,
            target=target,
            boundary_search=boundary_search,
            refine_steps=refine_steps,
            n_jobs=n_jobs,
        )


def certified_accuracy(
    estimator, X, y, radii, *, norm=2, bound="local", box=None, n_jobs=None
):
    """Fraction of samples classified correctly with a certified radius >= r.

    Parameters
    ----------
    estimator : fitted KernelCrossLipClassifier or MLPCrossLipClassifier
        The model to certify.
    X : array-like of shape (n_samples, n_features)
        Evaluation points.
    y : array-like of shape (n_samples,)
        True labels.
    radii : float or array-like of shape (n_radii,)
        Radii, in the ``norm``, at which to evaluate.
    norm : {1, 2, np.inf, "l1", "l2", "linf"}, default=2
        The p-norm of the radii.
    bound, box, n_jobs
        Passed to ``estimator.certified_radius``.

    Returns
    -------
    accuracy : float or ndarray of shape (n_radii,)
        For each radius ``r``, the fraction of samples that are correctly
        classified and whose certified radius is at least ``r``.
    """
    radii_arr = np.asarray(radii, dtype=np.float64)
    if radii_arr.ndim > 1 or np.isnan(radii_arr).any() or (radii_arr < 0).any():
        raise ValueError("radii must be a non-negative float or 1-d array of floats.")
    rad = estimator.certified_radius(X, y, norm=norm, bound=bound, box=box, n_jobs=n_jobs)
    correct = estimator.predict(X) == np.asarray(y)
    acc = np.array([np.mean(correct & (rad >= r)) for r in np.atleast_1d(radii_arr)])
    return float(acc[0]) if radii_arr.ndim == 0 else acc
