"""
Adversarial images for p = 1, 2 and infinity
============================================

Section 4 of the paper: the linearised minimal-change problem (8) with box
constraints is solved exactly in O(d log d) for p in {1, 2, inf}; a search
along the linearised target value puts the image just past the decision
boundary. The images stay in [0, 1].
"""

import warnings

import matplotlib.pyplot as plt
import numpy as np
from sklearn.exceptions import ConvergenceWarning

from sklearn_crosslip import MLPCrossLipClassifier
from sklearn_crosslip.datasets import load_mnist

warnings.filterwarnings("ignore", category=ConvergenceWarning)  # short fixed budget

X_train, y_train, X_test, y_test = load_mnist(subset="5k")
clf = MLPCrossLipClassifier(hidden_units=128, regularizer="cross_lipschitz", lam=1e-2,
                            max_iter=60, random_state=0).fit(X_train[:1500], y_train[:1500])
print(f"test error: {100 * (1 - clf.score(X_test, y_test)):.2f} %")

x = X_test[:1]
fig, axes = plt.subplots(1, 4, figsize=(9, 2.8))
axes[0].imshow(x.reshape(28, 28), cmap="gray", vmin=0, vmax=1)
axes[0].set_title(f"original: {clf.predict(x)[0]}")
for ax, p in zip(axes[1:], [1, 2, np.inf]):
    delta = clf.adversarial_perturbation(x, norm=p, box=(0, 1), refine_steps=3)
    adv = x + delta
    ax.imshow(adv.reshape(28, 28), cmap="gray", vmin=0, vmax=1)
    ax.set_title(f"p={p:g}: pred {clf.predict(adv)[0]}\n"
                 f"||d||_{p:g} = {np.linalg.norm(delta.ravel(), ord=p):.2f}", fontsize=9)
for ax in axes:
    ax.axis("off")
fig.tight_layout()
