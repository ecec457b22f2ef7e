"""
Fit a kernel model and certify it
=================================

Fit a Gaussian-kernel classifier with Cross-Lipschitz regularisation on a
subset of the bundled MNIST data, then bracket the distance of each test point
to the decision boundary: the certified radius of Theorem 2.1 is a lower bound,
the norm of a Section 4 adversarial change an upper bound.
"""

import matplotlib.pyplot as plt
import numpy as np

from sklearn_crosslip import KernelCrossLipClassifier
from sklearn_crosslip.datasets import load_mnist

X_train, y_train, X_test, y_test = load_mnist(subset="5k")
X_train, y_train = X_train[:1500], y_train[:1500]
X_eval, y_eval = X_test[:100], y_test[:100]

clf = KernelCrossLipClassifier(lam=1e-2).fit(X_train, y_train)
print(f"test error: {100 * (1 - clf.score(X_test, y_test)):.2f} %   gamma_ = {clf.gamma_:.4f}")

# %%
# Lower bounds (certified radii, misclassified points get 0) and upper bounds
# (adversarial changes kept inside the image domain [0, 1]^d).
radius = clf.certified_radius(X_eval, y_eval, bound="local_fast")
delta = clf.adversarial_perturbation(X_eval, box=(0, 1))
upper = np.linalg.norm(delta, axis=1)
correct = clf.predict(X_eval) == y_eval
assert np.all(radius[correct] <= upper[correct] + 1e-12)  # a certificate never overclaims
print(f"mean certified radius {radius[correct].mean():.3f}, "
      f"mean adversarial norm {np.nanmean(upper[correct]):.3f}")

fig, ax = plt.subplots(figsize=(5, 4))
ax.scatter(upper[correct], radius[correct], s=12)
lim = np.nanmax(upper[correct])
ax.plot([0, lim], [0, lim], "k--", lw=1, label="lower = upper")
ax.set_xlabel("upper bound: ||delta||_2 of an adversarial change")
ax.set_ylabel("lower bound: certified radius")
ax.legend()
ax.set_title("Distance to the decision boundary, bracketed")
fig.tight_layout()
