"""`pip install .` (not editable) makes a hakwatch that works with no checkout: the BPF program and
the probe headers travel as package data, and `hakwatch --check` compiles and loads them from there."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_installed_package_loads_its_bpf_program(tmp_path):
    src, site = tmp_path / "src", tmp_path / "site"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    for name in ("hakwatch", "probes"):
        shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
    res = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                          "--target", str(site), str(src)], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert (site / "hakwatch" / "probes" / "hakwatch.bpf.c").is_file()
    env = dict(os.environ, PYTHONPATH=str(site))
    where = subprocess.run([sys.executable, "-c", "from hakwatch.layout import PROBES_DIR; print(PROBES_DIR)"],
                           cwd=tmp_path, env=env, capture_output=True, text=True, check=True)
    assert where.stdout.strip() == str(site / "hakwatch" / "probes")
    check = subprocess.run([str(site / "bin" / "hakwatch"), "--check"], cwd=tmp_path, env=env,
                           capture_output=True, text=True, timeout=120)
    assert check.returncode == 0 and "compiled and loaded" in check.stderr + check.stdout, check.stderr
