"""Box-constrained minimal adversarial changes (Section 4 of Hein & Andriushchenko, 2017).

- :func:`min_norm_box_halfspace`: exact solver of the linearised problem (8)
  for p in {1, 2, inf}, batched (Proposition 4.1).
- :func:`adversarial_perturbation`: the attack behind
  ``estimator.adversarial_perturbation``.
- :func:`linearized_training_change`: the authors' cheap adversarial-training
  examples (one linearisation toward the runner-up class, a random fraction of
  the margin, no boundary search).
"""

__all__ = ["min_norm_box_halfspace", "adversarial_perturbation", "linearized_training_change"]


def __getattr__(name):
    # Lazy imports: numba is loaded only when an attack is used.
    if name == "min_norm_box_halfspace":
        from .projections import min_norm_box_halfspace

        return min_norm_box_halfspace
    if name == "adversarial_perturbation":
        from .boundary import adversarial_perturbation

        return adversarial_perturbation
    if name == "linearized_training_change":
        from .training import linearized_training_change

        return linearized_training_change
    raise AttributeError(f"module 'sklearn_crosslip.attacks' has no attribute {name!r}")


def __dir__():
    return sorted(__all__)
