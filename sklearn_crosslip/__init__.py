"""sklearn-crosslip: classifiers with formal robustness guarantees.

Implements Hein & Andriushchenko (NIPS 2017), "Formal Guarantees on the
Robustness of a Classifier against Adversarial Manipulation": Cross-Lipschitz
regularised kernel and one-hidden-layer softplus classifiers, instance-specific
certified radii (Theorem 2.1) and box-constrained minimal adversarial changes
(Section 4).
"""

__version__ = "0.1.0"

__all__ = [
    "KernelCrossLipClassifier",
    "MLPCrossLipClassifier",
    "certified_accuracy",
    "__version__",
]


def __getattr__(name):
    # Lazy imports keep `import sklearn_crosslip` cheap (numba compiles on demand).
    if name == "KernelCrossLipClassifier":
        from .kernel import KernelCrossLipClassifier

        return KernelCrossLipClassifier
    if name == "MLPCrossLipClassifier":
        from .mlp import MLPCrossLipClassifier

        return MLPCrossLipClassifier
    if name == "certified_accuracy":
        from ._robustness import certified_accuracy

        return certified_accuracy
    raise AttributeError(f"module 'sklearn_crosslip' has no attribute {name!r}")


def __dir__():
    return sorted(__all__)
