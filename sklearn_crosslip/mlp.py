"""One-hidden-layer softplus network with Cross-Lipschitz regularisation.

The network of Hein & Andriushchenko (2017), Sections 2.3, 3.2 and 5:
``f(x) = W2^T s(W1^T x + b1) + b2`` with ``s(t) = log(1 + exp(a t)) / a``,
trained with the softmax cross-entropy loss plus ``lam * Omega`` (eq. 7),
where ``Omega`` is the Cross-Lipschitz functional of eq. (6), weight decay, or
nothing; dropout on the hidden layer is the fourth choice.
"""

import numbers
import warnings

import numpy as np
import scipy.optimize
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import validate_data

from ._mlp_numba import (
    adam_step_inplace,
    backprop_hidden_inplace,
    ema_update_inplace,
    nesterov_step_inplace,
    softplus_and_derivative,
    softplus_derivative,
    softplus_forward_inplace,
)
from ._robustness import RobustnessMixin
from .regularizers.certified import CERTIFIED_BOUNDS, certified_loss_and_grad, power_iteration
from .regularizers.mlp import (
    cross_lipschitz_from_derivatives,
    weight_decay_penalty_and_grad,
)

__all__ = ["MLPCrossLipClassifier"]

_REGULARIZERS = ("cross_lipschitz", "weight_decay", "dropout", "none")
_SOLVERS = ("lbfgs", "adam", "sgd")

# lam=None resolves to these: the best validation error (train 4000 / validation 1000 of
# the bundled MNIST, L-BFGS, 1024 units) over lam in {1e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2}
# for cross_lipschitz and {1e-6, 1e-5, 1e-4, 3e-4, 1e-3} for weight_decay.
_DEFAULT_LAM = {"cross_lipschitz": 1e-3, "weight_decay": 1e-4, "dropout": 0.0, "none": 0.0}

# Stochastic solvers: sklearn's constants.
_N_ITER_NO_CHANGE = 10
_MOMENTUM = 0.9
_ADAM_BETA1, _ADAM_BETA2, _ADAM_EPS = 0.9, 0.999, 1e-8

# Power iteration for ||W1||_2 in certified training: iterations at the start of a
# stochastic fit (then one per mini-batch, warm-started), and the convergence test of
# every L-BFGS evaluation.
_POWER_ITER_START = 30
_POWER_ITER_MAX = 200
_POWER_TOL = 1e-10

# Rows per block when evaluating the float64 model (bounds memory at ~ block * U).
_EVAL_BLOCK = 2048

def _loss_and_grad(W1, b1, W2, b2, X, y, softplus_alpha, regularizer, lam, dropout_mask=None,
                   certified=None):
    """Objective (7) on a batch and its gradient.

    ``mean_i CE(y_i, f(x_i)) + lam * Omega``; all arrays in one float dtype
    (float32 or float64), the value accumulated in float64.

    Parameters
    ----------
    W1, b1, W2, b2 : ndarray
        Network parameters, shapes (d, U), (U,), (U, K), (K,).
    X : ndarray of shape (n, d), C-contiguous, same dtype as ``W1``
        Batch inputs.
    y : ndarray of shape (n,) of int
        Class indices in ``[0, K)``.
    softplus_alpha : float
        Softplus slope ``a``.
    regularizer : {"cross_lipschitz", "weight_decay", "dropout", "none"}
        ``Omega``; "dropout" and "none" add nothing.
    lam : float
        Regularisation weight.
    dropout_mask : ndarray of shape (n, U) or None
        Inverted-dropout mask (entries 0 or ``1 / (1 - p)``) on the hidden layer.
    certified : tuple (eps, bound, p, q) or None
        Certified training (:mod:`~sklearn_crosslip.regularizers.certified`):
        the cross-entropy is taken of the logits shifted by ``eps * L_cj(eps)``,
        with ``p^T W1 q`` standing for ``||W1||_2``. ``None`` or ``eps = 0``:
        the plain cross-entropy.

    Returns
    -------
    value : float
    grads : tuple (gW1, gb1, gW2, gb2)
    """
    dt = W1.dtype.type
    eps, bound, p, q = (0.0, "local_fast", None, None) if certified is None else certified
    Z = X @ W1
    Z0 = Z.copy() if eps > 0 else None  # pre-activations for the certified bound
    S = np.empty_like(Z)
    softplus_forward_inplace(Z, b1, dt(softplus_alpha), S)  # Z now holds H = s(Z + b1)
    H = Z if dropout_mask is None else Z * dropout_mask
    F = (H @ W2).astype(np.float64)
    F += b2
    # Softmax cross-entropy (the loss of Section 3), log-sum-exp shifted by the max; with
    # certified training of the logits shifted by eps * L_cj(eps)
    value, dF, dT, gW1_cert, gW2_cert = certified_loss_and_grad(
        F, Z0, b1, W1, W2, y, softplus_alpha, eps, p, q, bound
    )
    dF = dF.astype(dt)
    gW2 = H.T @ dF
    gb2 = dF.sum(axis=0)
    dH = dF @ W2.T
    if dropout_mask is not None:
        dH *= dropout_mask
    gZ = None
    if regularizer == "cross_lipschitz" and lam > 0:
        # eq. (6) in the analytic one-hidden-layer form of Section 3.2
        omega, gZ, gW1_direct, gW2_reg = cross_lipschitz_from_derivatives(
            S, W1, W2, softplus_alpha
        )
        value += lam * omega
    backprop_hidden_inplace(dH, S, gZ, dt(lam))  # dH <- dH * s'(Z) + lam * dOmega/dZ
    if dT is not None:
        dH += dT  # the bound's dependence on the pre-activations
    gW1 = X.T @ dH
    gb1 = dH.sum(axis=0)
    if regularizer == "cross_lipschitz" and lam > 0:
        gW1 += dt(lam) * gW1_direct
        gW2 += dt(lam) * gW2_reg
    elif regularizer == "weight_decay" and lam > 0:
        omega, g1, g2 = weight_decay_penalty_and_grad(W1, W2)
        value += lam * omega
        gW1 += dt(lam) * g1
        gW2 += dt(lam) * g2
    if gW1_cert is not None:
        gW1 += gW1_cert
        gW2 += gW2_cert
    return value, (gW1, gb1, gW2, gb2)


class _Layout:
    """Flattening of (W1, W2, b1, b2) into one float64 vector (sklearn's order)."""

    def __init__(self, d, U, K):
        self.shapes = [(d, U), (U, K), (U,), (K,)]
        sizes = [int(np.prod(s)) for s in self.shapes]
        self.bounds = np.concatenate([[0], np.cumsum(sizes)])

    def pack(self, W1, b1, W2, b2):
        return np.concatenate(
            [W1.ravel(), W2.ravel(), b1.ravel(), b2.ravel()], dtype=np.float64
        )

    def unpack(self, theta, dtype):
        W1, W2, b1, b2 = (
            theta[self.bounds[k]:self.bounds[k + 1]].reshape(s).astype(dtype, copy=False)
            for k, s in enumerate(self.shapes)
        )
        return W1, b1, W2, b2


def _step_factor(schedule, t, total):
    """Step-size factor of update ``t`` (0-based) of ``total`` planned updates."""
    if schedule == "constant" or t < 0.72 * total:
        return 1.0
    return 0.1 if t < 0.88 * total else 0.01


class MLPCrossLipClassifier(RobustnessMixin, ClassifierMixin, BaseEstimator):
    """One-hidden-layer softplus network with Cross-Lipschitz regularisation.

    The classifier of Hein & Andriushchenko (2017), Sections 2.3 and 3.2:
    ``f(x) = W2^T s(W1^T x + b1) + b2`` with the softplus
    ``s(t) = log(1 + exp(a t)) / a``, one output per class (also for binary
    problems), trained on the softmax cross-entropy plus ``lam * Omega``
    (eq. 7). With ``regularizer='cross_lipschitz'``, ``Omega`` is eq. (6): the
    mean over training points of the squared differences of the input
    gradients of all pairs of outputs, evaluated in the analytic form of
    Section 3.2 (cost of about two extra ``n x U^2`` products per evaluation,
    no ``(n, K, d)`` tensor). The fitted model provides certified robustness
    radii (Theorem 2.1 with Proposition 2.2) and box-constrained adversarial
    changes through :class:`~sklearn_crosslip._robustness.RobustnessMixin`.

    Parameters
    ----------
    hidden_units : int, default=1024
        Number of hidden units ``U``.
    softplus_alpha : float, default=10.0
        Slope ``a > 0`` of the softplus (the paper uses 10); larger values
        approach the ReLU.
    regularizer : {"cross_lipschitz", "weight_decay", "dropout", "none"}, \
            default="cross_lipschitz"
        ``"cross_lipschitz"``: eq. (6). ``"weight_decay"``: the squared L2 norm
        ``||W1||_F^2 + ||W2||_F^2`` (biases excluded). ``"dropout"``: inverted
        dropout on the hidden layer with rate ``dropout_rate`` (only with a
        stochastic solver; ``lam`` is ignored). ``"none"``: the plain loss.
    lam : float or None, default=None
        Regularisation weight ``lambda >= 0`` of eq. (7). ``None`` uses a
        default for the chosen regulariser, selected on a validation split of
        the bundled MNIST: 1e-3 for ``"cross_lipschitz"`` and 1e-4 for
        ``"weight_decay"`` (scikit-learn's ``alpha`` corresponds to
        ``lam = alpha / (2 n_samples)``).
    dropout_rate : float, default=0.5
        Probability in [0, 1) of dropping a hidden unit during training
        (``regularizer="dropout"`` only).
    solver : {"lbfgs", "adam", "sgd"}, default="lbfgs"
        ``"lbfgs"``: scipy's L-BFGS-B on the full deterministic objective.
        ``"adam"``: Adam on mini-batches (scikit-learn's constants).
        ``"sgd"``: mini-batch SGD with Nesterov momentum 0.9.
    max_iter : int, default=200
        L-BFGS iterations, or epochs for the stochastic solvers.
    tol : float, default=1e-4
        L-BFGS: tolerance on the largest gradient entry. Stochastic solvers:
        training stops when the epoch loss has not improved by ``tol`` for 10
        consecutive epochs.
    batch_size : int or "auto", default="auto"
        Mini-batch size of the stochastic solvers; ``"auto"`` is
        ``min(200, n_samples)``.
    learning_rate_init : float, default=1e-3
        Step size of the stochastic solvers.
    learning_rate : {"constant", "step"}, default="constant"
        Step-size schedule of the stochastic solvers: ``"constant"`` keeps
        ``learning_rate_init``; ``"step"`` divides it by 10 after 72 % and by
        100 after 88 % of the ``max_iter`` epochs' updates (the schedule of the
        authors' published training code, max-andr/cross-lipschitz). Ignored
        by L-BFGS.
    random_state : int, RandomState instance or None, default=None
        Seeds the Glorot-uniform initialisation, the mini-batch order and the
        dropout masks.
    warm_start : bool, default=False
        Start from the weights of the previous call to ``fit`` (same classes,
        features and ``hidden_units``).
    verbose : bool or int, default=False
        Print the objective after each iteration / epoch.
    augmentation : {None, "affine"} or callable, default=None
        Data augmentation of every mini-batch (paper Section 5, second
        setting; stochastic solvers only). ``"affine"`` applies
        :class:`~sklearn_crosslip.augmentation.AffineAugmenter` (random shifts
        of up to 2 pixels, rotations of up to 15 degrees, zoom of up to 10 %)
        to square gray-scale images; a callable ``f(X_batch, rng)`` returning
        a batch of the same shape is used as given. Deterministic under
        ``random_state``.
    adversarial_fraction : float, default=0.0
        Adversarial training (paper Section 5, third setting; stochastic
        solvers only): this fraction of every mini-batch is replaced by L2
        adversarial examples of the current network, made by the library's own
        Section 4 attack (:meth:`adversarial_perturbation` with boundary
        search, or the authors' cheaper examples, see ``adversarial_attack``)
        and labelled with the true class. Measured cost of the default
        ``"boundary"`` examples on bundled MNIST (1024 units, Adam, batches of
        128, fraction 0.5, 4000 images, 2 quiet cores): 4.7 s per epoch
        instead of 0.56 s with weight decay (8x), 6.2 s instead of 1.25 s with
        Cross-Lipschitz (5x), since every batch runs the attack (about 0.1 s
        per 64 points) on the current network.
    adversarial_attack : {"boundary", "linearized"}, default="boundary"
        How the adversarial training examples are made. ``"boundary"``: the
        Section 4 attack landed on the decision boundary (the smallest change
        found that flips the current network). ``"linearized"``: the authors'
        training recipe (max-andr/cross-lipschitz): one linearisation toward
        the runner-up class, a change to a random fraction ``U[0, 1)`` of the
        linearised margin, no search
        (:func:`~sklearn_crosslip.attacks.linearized_training_change`); one
        forward pass and one gradient per example, several times cheaper.
    input_box : tuple (lo, hi) or None, default=None
        Input domain that adversarial training examples respect, e.g.
        ``(0, 1)`` for images; ``None`` means unconstrained.
    certified_margin : float, default=0.0
        Certified training at L2 radius ``eps = certified_margin >= 0``
        (:doc:`/certified_training`): for every training point with true class
        ``c`` and every ``j != c`` the logit ``f_j`` is raised by
        ``eps * L_cj(eps)`` before the cross-entropy, where ``L_cj(eps)`` is an
        upper bound on ``||grad f_c - grad f_j||_2`` over ``B_2(x, eps)``
        (``certified_bound``). A training point whose shifted margin is
        positive is certified at radius ``eps`` by Theorem 2.1
        (:meth:`certified_radius`). Combines with every regulariser, solver and
        training setting; ``0`` switches it off.
    certified_bound : {"local_fast", "global"}, default="local_fast"
        The bound of certified training: ``"local_fast"`` is
        ``||W1||_2 ||(w_c - w_j) * s'(z + eps ||u_r||_2)||_2`` (the library's
        ``bound="local_fast"`` at the training point), ``"global"`` the
        constant ``||W1||_2 ||w_c - w_j||_2``. ``||W1||_2`` is tracked by power
        iteration (one step per mini-batch, warm-started; converged at every
        L-BFGS evaluation).
    certified_warmup : int, default=0
        Stochastic solvers: epochs over which the radius grows linearly (per
        mini-batch) from 0 to ``certified_margin``; the convergence test
        (``tol``) starts after them. Must not exceed ``max_iter``; must be 0
        with ``solver="lbfgs"``.
    ema_decay : float or None, default=None
        Stochastic solvers: keep an exponential moving average of the weights,
        ``avg <- d avg + (1 - d) w`` after every mini-batch update with
        ``d = min(ema_decay, (1 + t) / (10 + t))`` at update ``t`` (the
        warm-up of TensorFlow's ``ExponentialMovingAverage``, so that the
        random initialisation is forgotten quickly), and return the average as
        the fitted weights (Polyak averaging; Polyak & Juditsky 1992). During
        training ``coefs_`` hold the current, not the averaged, weights; the
        loss curve is that of the current weights. ``None`` switches it off;
        must be ``None`` with ``solver="lbfgs"``.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        Class labels; output ``j`` belongs to ``classes_[j]``.
    coefs_ : list of two ndarrays
        ``[W1 (n_features, hidden_units), W2 (hidden_units, n_classes)]``,
        float64.
    intercepts_ : list of two ndarrays
        ``[b1 (hidden_units,), b2 (n_classes,)]``, float64.
    lam_ : float
        The regularisation weight used (``lam`` with ``None`` resolved).
    loss_ : float
        Final value of the training objective (7).
    loss_curve_ : list of float
        Objective after each L-BFGS iteration, or mean mini-batch objective of
        each epoch.
    n_iter_ : int
        L-BFGS iterations or epochs run.
    n_features_in_ : int
        Number of input features.
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Defined only when ``X`` has string feature names.

    Notes
    -----
    Training evaluates the objective in float32 (BLAS single precision, about
    twice as fast; float64 when ``|X|`` exceeds 1e15), with the parameter
    vector, the optimiser state and the fitted weights in float64. On bundled
    MNIST the test errors of float32 and float64 training agree to 0.01
    points. Prediction, input gradients and certificates always use the
    float64 weights.

    The mini-batch loop calls ``self._transform_batch(Xb, yb, rng)`` on every
    batch (identity here) so that subclasses can add data augmentation or
    adversarial examples; during that loop ``coefs_``/``intercepts_`` hold the
    current weights.

    References
    ----------
    M. Hein and M. Andriushchenko. Formal Guarantees on the Robustness of a
    Classifier against Adversarial Manipulation. NIPS 2017.

    Examples
    --------
    >>> from sklearn_crosslip import MLPCrossLipClassifier
    >>> from sklearn_crosslip.datasets import load_digits
    >>> X, y = load_digits()
    >>> clf = MLPCrossLipClassifier(hidden_units=64, max_iter=50, random_state=0)
    >>> clf = clf.fit(X[:500], y[:500])
    >>> clf.predict(X[:3]).shape
    (3,)
    """

    # dtype of the objective evaluations during fit (see Notes).
    _training_dtype = np.float32

    def _fit_dtype(self, X):
        # float32 only where the inputs cannot overflow it in X @ W1
        if np.dtype(self._training_dtype) == np.float32 and np.abs(X).max() > 1e15:
            return np.float64
        return self._training_dtype

    _parameter_constraints = {
        "hidden_units": [Interval(numbers.Integral, 1, None, closed="left")],
        "softplus_alpha": [Interval(numbers.Real, 0, np.inf, closed="neither")],
        "regularizer": [StrOptions(set(_REGULARIZERS))],
        "lam": [None, Interval(numbers.Real, 0, np.inf, closed="left")],
        "dropout_rate": [Interval(numbers.Real, 0, 1, closed="left")],
        "solver": [StrOptions(set(_SOLVERS))],
        "max_iter": [Interval(numbers.Integral, 1, None, closed="left")],
        "tol": [Interval(numbers.Real, 0, np.inf, closed="left")],
        "batch_size": [StrOptions({"auto"}), Interval(numbers.Integral, 1, None, closed="left")],
        "learning_rate_init": [Interval(numbers.Real, 0, np.inf, closed="neither")],
        "learning_rate": [StrOptions({"constant", "step"})],
        "random_state": ["random_state"],
        "warm_start": ["boolean"],
        "verbose": ["verbose"],
        "augmentation": [None, StrOptions({"affine"}), callable],
        "adversarial_fraction": [Interval(numbers.Real, 0, 1, closed="both")],
        "adversarial_attack": [StrOptions({"boundary", "linearized"})],
        "input_box": [None, "array-like"],
        "certified_margin": [Interval(numbers.Real, 0, np.inf, closed="left")],
        "certified_bound": [StrOptions(set(CERTIFIED_BOUNDS))],
        "certified_warmup": [Interval(numbers.Integral, 0, None, closed="left")],
        "ema_decay": [None, Interval(numbers.Real, 0, 1, closed="neither")],
    }

    def __init__(
        self,
        hidden_units=1024,
        softplus_alpha=10.0,
        regularizer="cross_lipschitz",
        lam=None,
        dropout_rate=0.5,
        solver="lbfgs",
        max_iter=200,
        tol=1e-4,
        batch_size="auto",
        learning_rate_init=1e-3,
        learning_rate="constant",
        random_state=None,
        warm_start=False,
        verbose=False,
        augmentation=None,
        adversarial_fraction=0.0,
        adversarial_attack="boundary",
        input_box=None,
        certified_margin=0.0,
        certified_bound="local_fast",
        certified_warmup=0,
        ema_decay=None,
    ):
        self.hidden_units = hidden_units
        self.softplus_alpha = softplus_alpha
        self.regularizer = regularizer
        self.lam = lam
        self.dropout_rate = dropout_rate
        self.solver = solver
        self.max_iter = max_iter
        self.tol = tol
        self.batch_size = batch_size
        self.learning_rate_init = learning_rate_init
        self.learning_rate = learning_rate
        self.random_state = random_state
        self.warm_start = warm_start
        self.verbose = verbose
        self.augmentation = augmentation
        self.adversarial_fraction = adversarial_fraction
        self.adversarial_attack = adversarial_attack
        self.input_box = input_box
        self.certified_margin = certified_margin
        self.certified_bound = certified_bound
        self.certified_warmup = certified_warmup
        self.ema_decay = ema_decay

    # ------------------------------------------------------------------ checks
    def _check_params(self):
        """Validate the hyper-parameters; return the resolved ``lam``.

        Single parameters are checked by ``_validate_params`` against
        ``_parameter_constraints``; this adds the checks that involve several.
        """
        self._validate_params()
        if self.solver == "lbfgs" and (self.augmentation is not None
                                       or self.adversarial_fraction > 0):
            raise ValueError(
                "augmentation and adversarial training generate new inputs for every "
                "mini-batch, which needs a stochastic solver: use solver='adam' or 'sgd'."
            )
        if self.regularizer == "dropout" and self.solver == "lbfgs":
            raise ValueError(
                "regularizer='dropout' needs a stochastic solver: dropout makes the "
                "objective random, which L-BFGS cannot minimise. Use solver='adam' or "
                "solver='sgd', or another regularizer with solver='lbfgs'."
            )
        if self.certified_warmup > 0 and self.solver == "lbfgs":
            raise ValueError(
                "certified_warmup is a schedule over epochs of a stochastic solver; with "
                "solver='lbfgs' use certified_warmup=0 (or solver='adam' / 'sgd')."
            )
        if self.ema_decay is not None and self.solver == "lbfgs":
            raise ValueError(
                "ema_decay averages the weights over the updates of a stochastic solver; "
                "with solver='lbfgs' use ema_decay=None (or solver='adam' / 'sgd')."
            )
        if self.certified_warmup > self.max_iter:
            raise ValueError(
                f"certified_warmup={self.certified_warmup} epochs is longer than training "
                f"(max_iter={self.max_iter}); use certified_warmup <= max_iter."
            )
        return _DEFAULT_LAM[self.regularizer] if self.lam is None else float(self.lam)

    # --------------------------------------------------------------------- fit
    def fit(self, X, y):
        """Fit the network to the training data.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training inputs (finite).
        y : array-like of shape (n_samples,)
            Class labels; at least two classes.

        Returns
        -------
        self : MLPCrossLipClassifier
            The fitted estimator.
        """
        lam = self._check_params()
        warm = self.warm_start and hasattr(self, "coefs_")
        X, y = validate_data(
            self, X, y, dtype=np.float64, order="C", ensure_all_finite=True, reset=True
        )
        check_classification_targets(y)
        classes, y_idx = np.unique(y, return_inverse=True)
        if classes.shape[0] < 2:
            raise ValueError(
                "MLPCrossLipClassifier needs samples of at least 2 classes in the data, "
                f"but the data contains only one class: {classes[0]!r}."
            )
        n, d = X.shape
        K, U = classes.shape[0], self.hidden_units
        if warm:
            if not np.array_equal(classes, self.classes_):
                raise ValueError(
                    "warm_start can only be used where y has the same classes as in the "
                    f"previous call to fit. Previously got {self.classes_}, y has {classes}."
                )
            if self.coefs_[0].shape != (d, U):
                raise ValueError(
                    "warm_start needs the same number of features and hidden_units as the "
                    f"previous fit: coefs_[0] has shape {self.coefs_[0].shape}, "
                    f"now ({d}, {U})."
                )
            W1, W2 = (np.array(w, dtype=np.float64, order="C") for w in self.coefs_)
            b1, b2 = (np.array(b, dtype=np.float64) for b in self.intercepts_)
        else:
            W1, b1, W2, b2 = self._initialize(d, U, K, check_random_state(self.random_state))
        self._prepare_batch_transform(X)
        self.classes_ = classes
        self.lam_ = lam
        if self.solver == "lbfgs":
            self._fit_lbfgs(X, y_idx.astype(np.intp), W1, b1, W2, b2, lam)
        else:
            self._fit_stochastic(X, y_idx.astype(np.intp), W1, b1, W2, b2, lam)
        return self

    @staticmethod
    def _initialize(d, U, K, random_state):
        """Glorot-uniform initialisation as in scikit-learn's MLP."""
        params = []
        for fan_in, fan_out in ((d, U), (U, K)):
            bound = np.sqrt(6.0 / (fan_in + fan_out))
            params.append(random_state.uniform(-bound, bound, (fan_in, fan_out)))
            params.append(random_state.uniform(-bound, bound, fan_out))
        W1, b1, W2, b2 = params
        return W1, b1, W2, b2

    def _set_params_arrays(self, W1, b1, W2, b2):
        self.coefs_ = [W1, W2]
        self.intercepts_ = [b1, b2]

    def _fit_lbfgs(self, X, y, W1, b1, W2, b2, lam):
        dtype = self._fit_dtype(X)
        Xt = np.ascontiguousarray(X, dtype=dtype)
        layout = _Layout(*W1.shape, W2.shape[1])
        a, reg = float(self.softplus_alpha), self.regularizer
        eps = float(self.certified_margin)
        spec = {"q": None}

        def fun(theta):
            p = layout.unpack(theta, dtype)
            cert = None
            if eps > 0:
                # ||W1||_2 by power iteration converged on the float64 W1 (warm start)
                W1_64 = theta[:layout.bounds[1]].reshape(layout.shapes[0])
                _, pv, spec["q"] = power_iteration(W1_64, spec["q"], n_iter=_POWER_ITER_MAX,
                                                   tol=_POWER_TOL, random_state=0)
                cert = (eps, self.certified_bound, pv, spec["q"])
            value, (gW1, gb1, gW2, gb2) = _loss_and_grad(*p, Xt, y, a, reg, lam,
                                                         certified=cert)
            return value, layout.pack(gW1, gb1, gW2, gb2)

        curve = []

        def callback(intermediate_result):
            curve.append(float(intermediate_result.fun))
            if self.verbose:
                print(f"Iteration {len(curve)}, objective = {curve[-1]:.8f}")

        res = scipy.optimize.minimize(
            fun,
            layout.pack(W1, b1, W2, b2),
            method="L-BFGS-B",
            jac=True,
            callback=callback,
            options={
                "maxiter": self.max_iter,
                "maxfun": max(15000, 2 * self.max_iter),
                "gtol": self.tol,
            },
        )
        self._set_params_arrays(*layout.unpack(np.asarray(res.x, dtype=np.float64), np.float64))
        self.n_iter_ = int(res.nit)
        self.loss_ = float(res.fun)
        self.loss_curve_ = curve
        if res.status == 1:
            warnings.warn(
                f"L-BFGS stopped after max_iter={self.max_iter} iterations (or the "
                "function-evaluation limit) without reaching tol; increase max_iter.",
                ConvergenceWarning,
            )
        elif self.verbose and res.status != 0:
            print(f"L-BFGS stopped: {res.message}")

    def _transform_batch(self, Xb, yb, rng):
        """Hook applied to every mini-batch of the stochastic solvers.

        Subclasses override it for data augmentation or adversarial training;
        ``self.coefs_`` and ``self.intercepts_`` hold the current weights.

        Parameters
        ----------
        Xb : ndarray of shape (m, n_features), float64
            Batch inputs (a copy; may be modified).
        yb : ndarray of shape (m,), int
            Class indices into ``classes_``.
        rng : numpy.random.Generator
            The fit's random generator (seeded from ``random_state``).

        Returns
        -------
        Xb : ndarray of shape (m', n_features)
        yb : ndarray of shape (m',), int
            The batch to train on (any size ``m' >= 1``).
        """
        if self.augmentation is not None:
            # Section 5, data augmentation: fresh random distortions per mini-batch
            augment = self._augmenter
            Xb = np.asarray(augment(Xb, rng), dtype=np.float64)
            if Xb.shape[0] != yb.shape[0]:
                raise ValueError("The augmentation callable changed the batch size.")
        frac = float(self.adversarial_fraction)
        if frac > 0:
            # Section 5, adversarial training: replace part of the batch by
            # adversarial examples of the current network (true labels kept)
            k = int(round(frac * Xb.shape[0]))
            if k > 0:
                idx = rng.choice(Xb.shape[0], size=k, replace=False)
                if self.adversarial_attack == "linearized":
                    # the authors' recipe: a random fraction of the linearised margin
                    from .attacks.training import linearized_training_change

                    Xb = np.array(Xb, dtype=np.float64)
                    Xb[idx] += linearized_training_change(self, Xb[idx], rng, self._box_lo,
                                                          self._box_hi)
                    return Xb, yb
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # points without a flip stay clean
                    delta = self.adversarial_perturbation(Xb[idx], norm=2, box=self.input_box)
                found = np.all(np.isfinite(delta), axis=1)
                Xb = Xb.copy()
                Xb[idx[found]] += delta[found]
                if self.input_box is not None:
                    # remove last-bit overshoot of the box
                    Xb[idx[found]] = np.clip(Xb[idx[found]], self._box_lo, self._box_hi)
        return Xb, yb

    def _prepare_batch_transform(self, X):
        """Resolve the augmentation and the adversarial-training box for ``fit``."""
        self._augmenter = None
        if self.augmentation == "affine":
            from .augmentation import AffineAugmenter

            side = int(round(np.sqrt(X.shape[1])))
            if side * side != X.shape[1]:
                raise ValueError(
                    "augmentation='affine' needs square gray-scale images flattened to "
                    f"side*side features; got n_features={X.shape[1]}. Pass a callable instead."
                )
            self._augmenter = AffineAugmenter(image_shape=(side, side))
        elif callable(self.augmentation):
            self._augmenter = self.augmentation
        from ._validation import check_box

        self._box_lo, self._box_hi = check_box(self.input_box, X.shape[1], X, name="input_box")

    def _fit_stochastic(self, X, y, W1, b1, W2, b2, lam):
        dtype = self._fit_dtype(X)
        n = X.shape[0]
        params = [W1, b1, W2, b2]  # float64, updated in place; visible as coefs_
        self._set_params_arrays(*params)
        self.loss_curve_ = []
        rs = check_random_state(self.random_state)
        rng = np.random.default_rng(rs.randint(np.iinfo(np.int32).max))
        bs = min(200, n) if self.batch_size == "auto" else min(int(self.batch_size), n)
        a, reg, lr0 = float(self.softplus_alpha), self.regularizer, float(self.learning_rate_init)
        keep = 1.0 - float(self.dropout_rate)
        first = [np.zeros_like(p) for p in params]
        second = [np.zeros_like(p) for p in params] if self.solver == "adam" else None
        t = 0
        best, no_improve = np.inf, 0
        epoch = 0
        eps_max, warmup = float(self.certified_margin), int(self.certified_warmup)
        n_batches = (n + bs - 1) // bs
        q = None
        if eps_max > 0:
            _, _, q = power_iteration(W1, None, n_iter=_POWER_ITER_START, random_state=rng)
        ema = None if self.ema_decay is None else [p.copy() for p in params]
        for epoch in range(self.max_iter):
            perm = rng.permutation(n)
            total, seen = 0.0, 0
            for b_i, start in enumerate(range(0, n, bs)):
                idx = perm[start:start + bs]
                Xb, yb = self._transform_batch(X[idx], y[idx], rng)
                Xb = np.ascontiguousarray(Xb, dtype=dtype)
                yb = np.asarray(yb, dtype=np.intp)
                pd = [p.astype(dtype) for p in params]
                mask = None
                if reg == "dropout" and keep < 1.0:
                    mask = (rng.random((Xb.shape[0], W1.shape[1]), dtype=np.float32) < keep)
                    mask = mask.astype(dtype) / dtype(keep)
                cert = None
                if eps_max > 0:
                    # radius schedule: linear ramp over the first `warmup` epochs
                    frac = 1.0 if warmup == 0 else min(1.0, (epoch + (b_i + 1) / n_batches)
                                                       / warmup)
                    _, pv, q = power_iteration(pd[0], q, n_iter=1)
                    cert = (eps_max * frac, self.certified_bound, pv, q)
                value, grads = _loss_and_grad(*pd, Xb, yb, a, reg, lam, dropout_mask=mask,
                                              certified=cert)
                total += value * Xb.shape[0]
                seen += Xb.shape[0]
                lr = lr0 * _step_factor(self.learning_rate, t, self.max_iter * n_batches)
                t += 1
                if self.solver == "adam":
                    step = lr * np.sqrt(1.0 - _ADAM_BETA2**t) / (1.0 - _ADAM_BETA1**t)
                    for p, g, m1, m2 in zip(params, grads, first, second):
                        adam_step_inplace(p.ravel(), g.ravel(), m1.ravel(), m2.ravel(), step,
                                          _ADAM_BETA1, _ADAM_BETA2, _ADAM_EPS)
                else:  # SGD with Nesterov momentum, as scikit-learn's
                    for p, g, v in zip(params, grads, first):
                        nesterov_step_inplace(p.ravel(), g.ravel(), v.ravel(), lr, _MOMENTUM)
                if ema is not None:
                    decay = min(float(self.ema_decay), t / (9.0 + t))  # (1 + t') / (10 + t')
                    for e, p in zip(ema, params):
                        ema_update_inplace(e.ravel(), p.ravel(), decay)
            epoch_loss = total / seen
            self.loss_curve_.append(epoch_loss)
            if self.verbose:
                print(f"Epoch {epoch + 1}, objective = {epoch_loss:.8f}")
            if not np.isfinite(epoch_loss):
                raise ValueError(
                    "The training objective became non-finite; lower learning_rate_init."
                )
            if epoch < warmup:
                pass  # the objective changes with the radius: no convergence test yet
            elif epoch_loss > best - self.tol:
                no_improve += 1
            else:
                no_improve = 0
            best = min(best, epoch_loss) if epoch >= warmup else np.inf
            if no_improve > _N_ITER_NO_CHANGE:
                break
        else:
            warnings.warn(
                f"Stochastic solver {self.solver!r} reached max_iter={self.max_iter} "
                "epochs without converging; increase max_iter.",
                ConvergenceWarning,
            )
        if ema is not None:
            for p, e in zip(params, ema):
                p[...] = e  # in place: coefs_ / intercepts_ are views of params
        self.n_iter_ = epoch + 1
        self.loss_ = self.loss_curve_[-1]

    # ----------------------------------------------------------------- predict

    # ---------------------------------------------------------------- protocol
    def _hidden(self, X):
        """Pre-activations (without bias), activations and derivatives, float64."""
        W1, b1 = self.coefs_[0], self.intercepts_[0]
        Z = X @ W1
        H, S = softplus_and_derivative(Z, b1, np.float64(self.softplus_alpha))
        return Z, H, S

    def _logits(self, X):
        """Outputs ``f_j(x)``, shape (m, n_classes), float64 (X validated)."""
        out = np.empty((X.shape[0], self.coefs_[1].shape[1]), dtype=np.float64)
        for s in range(0, X.shape[0], _EVAL_BLOCK):
            _, H, _ = self._hidden(X[s:s + _EVAL_BLOCK])
            out[s:s + _EVAL_BLOCK] = self._output(H)
        return out

    def _output(self, H):
        """Output layer ``H W2 + b2``: the one product behind every logit (bit-identical)."""
        return H @ self.coefs_[1] + self.intercepts_[1]

    def _logits_error(self, X):
        """Upper bound on the absolute floating-point error of every logit, shape (m,).

        See :meth:`_logits_and_error`, which computes it together with the logits.
        """
        return self._logits_and_error(X)[1]

    def _logits_and_error(self, X):
        """Logits and the bound on their floating-point error, in one forward pass.

        Returns ``(F, err)`` with ``F`` as in :meth:`_logits` (shape (m, K)) and
        ``err`` (shape (m,)) an upper bound on ``|fl(f_j(x)) - f_j(x)|`` for all j.

        Standard dot-product error bounds (any summation order), made
        per-row so that they cost one small extra product: with
        ``zmax = ||x||_2 max_r ||u_r||_2 + max_r |b1_r|`` (Cauchy-Schwarz bounds
        every ``|z_r|`` by it), ``|fl(z_r) - z_r| <= e_z = gamma_{d+1} zmax``;
        the softplus is 1-Lipschitz, non-negative, at most ``|z| + log(2)/a`` and
        evaluated to a few ulps, so ``|fl(h_r) - h_r| <= e_h = e_z + 8u (2 zmax
        + log(2)/a + 3 e_z)`` (the computed ``|z|`` and ``|h|`` exceed ``zmax``
        and ``zmax + log(2)/a`` by at most ``e_z``); then ``|fl(f_j) - f_j| <=
        gamma_{U+1} (h^T |w_j| + |b2_j|) + (1 + gamma_{U+1}) e_h ||w_j||_1``
        with ``w_j`` the j-th column of ``W2``. The result is doubled to cover
        the rounding of this computation itself. Its size (about ``1e-12`` on
        MNIST-scale models) is negligible against margins; it only has to be
        valid. ``F`` is computed exactly as in :meth:`_logits`, bit for bit.
        """
        W1, W2 = self.coefs_
        b1, b2 = self.intercepts_
        d, U = W1.shape
        K = W2.shape[1]
        u = np.finfo(np.float64).eps / 2

        def gamma(k):
            return k * u / (1.0 - k * u)

        # 1.01 covers the rounding of the norms and maxima below
        cmax = 1.01 * float(np.sqrt(np.einsum("lr,lr->r", W1, W1).max()))
        bmax = float(np.abs(b1).max())
        aW2 = np.abs(W2)
        w1norm = aW2.sum(axis=0)
        gU = gamma(U + 1)
        F = np.empty((X.shape[0], K), dtype=np.float64)
        err = np.empty(X.shape[0], dtype=np.float64)
        for s in range(0, X.shape[0], _EVAL_BLOCK):
            Xb = X[s:s + _EVAL_BLOCK]
            _, H, _ = self._hidden(Xb)  # H >= 0
            # as in _logits, so that predictions and certificates agree bit for bit
            F[s:s + _EVAL_BLOCK] = self._output(H)
            zmax = 1.01 * np.sqrt(np.einsum("il,il->i", Xb, Xb)) * cmax + bmax
            ez = gamma(d + 1) * zmax
            # computed |z| <= zmax + e_z and |h| <= zmax + e_z + log(2)/a
            eh = ez + 8 * u * (2.0 * zmax + np.log(2.0) / self.softplus_alpha + 3.0 * ez)
            ef = gU * (H @ aW2 + np.abs(b2)) + (1.0 + gU) * eh[:, None] * w1norm
            err[s:s + _EVAL_BLOCK] = 2.0 * ef.max(axis=1)
        return F, err

    def _input_gradients(self, X):
        """Input gradients ``grad f_j(x) = W1 (s'(z) * W2[:, j])``, shape (m, K, d)."""
        W1, W2 = self.coefs_
        b1 = self.intercepts_[0]
        m, d = X.shape
        U, K = W2.shape
        out = np.empty((m, K, d), dtype=np.float64)
        block = max(1, min(_EVAL_BLOCK, 4_000_000 // max(1, K * U)))
        for s in range(0, m, block):
            S = softplus_derivative(X[s:s + block] @ W1, b1, np.float64(self.softplus_alpha))
            T = S[:, None, :] * W2.T[None, :, :]  # (b, K, U)
            out[s:s + block] = (T.reshape(-1, U) @ W1.T).reshape(-1, K, d)
        return out

    def _input_gradient_difference(self, X, c, j):
        """``grad f_j(x_i) - grad f_c(x_i)`` for one class pair per point, shape (m, d).

        ``W1 (s'(z_i) * (W2[:, j_i] - W2[:, c_i]))``: one ``m x U x d`` product
        instead of the ``K`` gradients of :meth:`_input_gradients`.
        """
        W1, W2 = self.coefs_
        S = softplus_derivative(X @ W1, self.intercepts_[0], np.float64(self.softplus_alpha))
        S *= (W2[:, j] - W2[:, c]).T
        return S @ W1.T

    def _local_cross_lipschitz(self, X, c, R, active=None, lo=None, hi=None, method="local",
                               norm=2):
        """Upper bounds on the local cross-Lipschitz constants (Proposition 2.2).

        ``norm`` is the p of the ball ``B_p(x, R)``; the constant bounds the dual
        q-norm of ``grad f_c - grad f_j`` (Theorem 2.1 for general p).
        """
        from .bounds import mlp_bounds

        return mlp_bounds.local_cross_lipschitz(
            self.coefs_[0], self.intercepts_[0], self.coefs_[1], self.softplus_alpha,
            X, c, R, active, lo, hi, method, norm=norm,
        )

    def _global_cross_lipschitz(self, norm=2):
        """R-independent upper bounds on ``||grad f_c - grad f_j||_q``, shape (K, K)."""
        from .bounds import mlp_bounds

        return mlp_bounds.global_cross_lipschitz(self.coefs_[0], self.coefs_[1], norm=norm)
