"""
Grid search over gamma and lambda
=================================

The estimators are ordinary scikit-learn classifiers: they work in pipelines
and with :class:`~sklearn.model_selection.GridSearchCV`. Here we tune the
bandwidth multiplier ``gamma_scale`` (gamma = gamma_scale / rho^2 with rho the
mean distance to the 40 nearest neighbours, the paper's KNN40 rule) and the
Cross-Lipschitz weight ``lam``.
"""

import matplotlib.pyplot as plt
import numpy as np
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

from sklearn_crosslip import KernelCrossLipClassifier
from sklearn_crosslip.datasets import load_digits

X, y = load_digits()
X_train, y_train, X_test, y_test = X[:1200], y[:1200], X[1200:], y[1200:]

pipe = make_pipeline(
    FunctionTransformer(np.clip, kw_args={"a_min": 0.0, "a_max": 1.0}),  # inputs stay in [0, 1]
    KernelCrossLipClassifier(max_iter=200),
)
grid = {
    "kernelcrosslipclassifier__gamma_scale": [0.5, 1.0, 2.0, 4.0],
    "kernelcrosslipclassifier__lam": [1.0, 1e-1, 1e-2, 1e-3],
}
search = GridSearchCV(pipe, grid, cv=3, n_jobs=2).fit(X_train, y_train)
print("best parameters:", search.best_params_)
print(f"test error of the refit model: {100 * (1 - search.score(X_test, y_test)):.2f} %")

# %%
# Cross-validated error for every (gamma_scale, lam).
scores = search.cv_results_["mean_test_score"].reshape(4, 4)
fig, ax = plt.subplots(figsize=(5, 4))
im = ax.imshow(100 * (1 - scores), cmap="viridis")
ax.set_xticks(range(4), [f"{v:g}" for v in grid["kernelcrosslipclassifier__lam"]])
ax.set_yticks(range(4), [f"{v:g}" for v in grid["kernelcrosslipclassifier__gamma_scale"]])
ax.set_xlabel("lam")
ax.set_ylabel("gamma_scale")
fig.colorbar(im, label="CV error (%)")
fig.tight_layout()

# %%
# The best model certifies like any other fitted estimator.
best = search.best_estimator_[-1]
radius = best.certified_radius(X_test[:50], y_test[:50], bound="local_fast")
print(f"mean certified radius on 50 test digits: {radius.mean():.3f}")
