"""The documentation builds without warnings, running the gallery examples (each takes seconds)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_sphinx_build_without_warnings(tmp_path):
    pytest.importorskip("sphinx")
    pytest.importorskip("numpydoc")
    pytest.importorskip("sphinx_gallery")
    pytest.importorskip("myst_parser")
    env = dict(os.environ, SPHINX_GALLERY_PLOT="1", MPLBACKEND="Agg")
    out = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html",
         "-d", str(tmp_path / "doctrees"), str(ROOT / "docs"), str(tmp_path / "html")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-4000:]
    assert (tmp_path / "html" / "user_guide.html").exists()
    assert (tmp_path / "html" / "auto_examples" / "index.html").exists()
    # the examples ran: their figures are in the built pages
    images = list((tmp_path / "html" / "_images").glob("sphx_glr_plot_*_001.png"))
    assert len(images) >= 4, sorted(p.name for p in images)
