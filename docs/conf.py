"""Sphinx configuration of the sklearn-crosslip documentation."""

import os
import sys

sys.path.insert(0, os.path.abspath(".."))

import sklearn_crosslip  # noqa: E402

project = "sklearn-crosslip"
author = "sklearn-crosslip developers"
copyright = "2026, sklearn-crosslip developers"
release = sklearn_crosslip.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "sphinx.ext.intersphinx",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
    "myst_parser",
]

autosummary_generate = True
autodoc_default_options = {"members": True, "inherited-members": False}
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
templates_path = ["_templates"]
default_role = "literal"
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store", "**/*.ipynb", "**/*.py.md5", "reproduction/report.md",
                    "auto_examples/*.py", "auto_examples/*.zip"]
suppress_warnings = ["config.cache"]

intersphinx_mapping = {}

# SPHINX_GALLERY_PLOT=0 ("fast mode") builds the gallery pages without running the examples;
# by default (and in the test suite) they run, a few seconds each on bundled MNIST.
_run_examples = os.environ.get("SPHINX_GALLERY_PLOT", "1") != "0"
sphinx_gallery_conf = {
    "examples_dirs": "../examples",
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",
    "plot_gallery": _run_examples,
    "download_all_examples": False,
    "within_subsection_order": "FileNameSortKey",
    "remove_config_comments": True,
}

try:
    import pydata_sphinx_theme  # noqa: F401

    html_theme = "pydata_sphinx_theme"
except ImportError:  # optional
    html_theme = "alabaster"
html_static_path = ["_static"]
html_title = "sklearn-crosslip"
