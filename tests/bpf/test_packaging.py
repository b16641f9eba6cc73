"""Packaging: `make deb` builds the Debian packages (libhakmem1, hakwatch) with no lintian error, and
the packaged hakwatch, unpacked away from any checkout, compiles and loads its BPF program; `pip
install .` (not editable) makes a hakwatch that does the same: the BPF program, the probe headers and
the USDT provider (hakmem.d: the probes' arguments) travel as package data."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_debian_packages_build_pass_lintian_and_work_unpacked(tmp_path):
    res = subprocess.run([str(ROOT / "scripts" / "deb.sh")], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    debs = {p.name.split("_")[0]: p for p in (ROOT / "dist").glob("*.deb")}
    assert {"libhakmem1", "hakwatch"} <= set(debs), sorted(debs)
    root = tmp_path / "root"
    for name in ("libhakmem1", "hakwatch"):
        subprocess.run(["dpkg-deb", "-x", str(debs[name]), str(root)], check=True)
    lib = root / "usr" / "lib" / "x86_64-linux-gnu" / "libhakmem.so.1"
    soname = subprocess.run(["readelf", "-d", str(lib)], capture_output=True, text=True, check=True).stdout
    assert "Library soname: [libhakmem.so.1]" in soname
    for shipped in ("lib/systemd/system/hakwatch.service", "etc/default/hakwatch", "usr/share/hakwatch/alerts/hakwatch.rules.yml",
                    "usr/share/hakwatch/dashboards/overview.json", "usr/lib/python3/dist-packages/hakwatch/probes/hakwatch.bpf.c",
                    "usr/lib/python3/dist-packages/hakwatch/probes/hakmem.d"):
        assert (root / shipped).is_file(), shipped
    env = dict(os.environ, PYTHONPATH=str(root / "usr" / "lib" / "python3" / "dist-packages"))
    check = subprocess.run(["/usr/bin/python3", str(root / "usr" / "bin" / "hakwatch"), "--check"], cwd=tmp_path, env=env,
                           capture_output=True, text=True, timeout=120)
    assert check.returncode == 0 and "compiled and loaded" in check.stderr + check.stdout, check.stderr
    preloaded = subprocess.run(["/bin/sh", "-c", "echo ok"], env=dict(os.environ, LD_PRELOAD=str(lib)),
                               capture_output=True, text=True, check=True)
    assert preloaded.stdout == "ok\n" and not preloaded.stderr


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
    assert (site / "hakwatch" / "probes" / "hakmem.d").is_file()
    env = dict(os.environ, PYTHONPATH=str(site))
    where = subprocess.run([sys.executable, "-c", "from hakwatch.contract.layout import PROBES_DIR; print(PROBES_DIR)"],
                           cwd=tmp_path, env=env, capture_output=True, text=True, check=True)
    assert where.stdout.strip() == str(site / "hakwatch" / "probes")
    check = subprocess.run([str(site / "bin" / "hakwatch"), "--check"], cwd=tmp_path, env=env,
                           capture_output=True, text=True, timeout=120)
    assert check.returncode == 0 and "compiled and loaded" in check.stderr + check.stdout, check.stderr
