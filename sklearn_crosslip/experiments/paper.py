"""Published figures that the reproduction is compared with.

Kept in a module of their own so that the reproduction (:mod:`.reproduce`) and
the report (:mod:`.report`) both read them and depend on each other one way only
(``reproduce`` imports ``report``).

Sources
-------
* Hein & Andriushchenko, "Formal guarantees on the robustness of a classifier
  against adversarial manipulation", NIPS 2017, Section 5: the kernel table
  (MNIST, 60000 training images) and Table 1 (mean ratio of the global to the
  local certified radius, plain networks).
* Croce, Andriushchenko & Hein, "Provable robustness of ReLU networks via
  maximization of linear regions", AISTATS 2019, main table: certified (robust)
  accuracy of a one-hidden-layer network of 1024 ReLU units on MNIST, for plain
  training, MMR, MMR with adversarial training and Wong & Kolter's method.
"""

__all__ = [
    "KERNEL_REGULARIZERS",
    "MLP_REGULARIZERS",
    "MLP_SETTINGS",
    "NETWORK_GROUPS",
    "PAPER_KERNEL_TABLE",
    "PAPER_TABLE1_MNIST",
    "PAPER_CLAIMS",
    "PUBLISHED_CERTIFIED_ACCURACY",
    "PUBLISHED_SOURCE",
]

# The paper's experimental design (Section 5): kernel regularisers, network
# regularisers and training settings, in the order of its tables.
KERNEL_REGULARIZERS = ("none", "rkhs", "cross_lipschitz")
MLP_REGULARIZERS = ("none", "weight_decay", "dropout", "cross_lipschitz")
MLP_SETTINGS = ("plain", "augmentation", "adversarial")
# The rows of the network tables: the paper's regularisers plus this library's
# certified training (training on the Theorem 2.1 guarantee itself; not in the paper).
NETWORK_GROUPS = MLP_REGULARIZERS + ("certified",)

# Hein & Andriushchenko (2017), Section 5: test error, mean L2 norm of the
# adversarial samples (upper) and mean robustness guarantee (lower).
PAPER_KERNEL_TABLE = {
    "none": {"test_error": 2.23, "upper": 2.39, "lower": 0.037, "label": "No Reg. (lambda = 0)"},
    "rkhs": {"test_error": 1.48, "upper": 1.91, "lower": 0.058, "label": "K-SVM"},
    "cross_lipschitz": {"test_error": 1.44, "upper": 3.12, "lower": 0.045, "label": "K-CL"},
}

# Table 1, MNIST (plain): mean alpha_global / alpha_local.
PAPER_TABLE1_MNIST = {"none": 0.69, "dropout": 0.48, "weight_decay": 0.68, "cross_lipschitz": 0.21}

# The paper's qualitative claims that the report checks (key -> wording).
PAPER_CLAIMS = {
    "kernel_cl_error": "Kernel methods: K-CL has the best test error.",
    "kernel_cl_upper": "Kernel methods: K-CL has the largest upper bounds (adversarial changes).",
    "nets_cl_robust": "Networks: Cross-Lipschitz gives the best robustness (upper and lower "
                      "bounds) at similar or better test error (plain setting).",
    "augmentation_not_robust": "Networks: data augmentation does not make the models more robust.",
    "adversarial_improves": "Networks: adversarial training improves both the upper and the lower "
                            "bounds.",
    "local_better": "Local bounds are always better than global ones, by a factor of up to 8 "
                    "(Table 1: up to 4.8 on MNIST, 1 / 0.21; 8 on CIFAR10).",
}

PUBLISHED_SOURCE = ("Croce, Andriushchenko & Hein, Provable robustness of ReLU networks via "
                    "maximization of linear regions, AISTATS 2019, main table (MNIST, one hidden "
                    "layer of 1024 ReLU units)")

# Certified accuracy (%) of a one-hidden-layer network of 1024 ReLU units on MNIST
# (PUBLISHED_SOURCE): norm -> radius -> method -> percent.
PUBLISHED_CERTIFIED_ACCURACY = {
    2: {0.3: {"plain": 33.7, "MMR": 91.2, "MMR + adversarial training": 93.6,
              "Wong & Kolter": 94.8}},
    "inf": {0.1: {"plain": 0.0, "MMR": 75.1, "Wong & Kolter": 89.1}},
}
