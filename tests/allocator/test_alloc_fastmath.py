"""libhakmem does not link libm (src/fastmath.c has the two functions sampling needs): the library
needs no libm, and its ln and 1 - exp(-y) agree with libm's to 1e-11 over the ranges sampling uses."""

import subprocess

from hakmem_testlib import PROGRAMS, ROOT


def test_library_does_not_need_libm(libhakmem):
    needed = subprocess.run(["objdump", "-p", str(libhakmem)], capture_output=True, text=True, check=True).stdout
    assert "libm.so" not in needed, [line for line in needed.splitlines() if "NEEDED" in line]


def test_ln_and_one_minus_exp_agree_with_libm(libhakmem, tmp_path):
    src = ROOT / "libhakmem" / "src"
    binary = tmp_path / "fastmath_check"
    subprocess.run(["gcc", "-O2", "-Wall", "-Werror", f"-I{src}", f"-I{ROOT / 'probes'}",
                    f"-I{ROOT / 'libhakmem' / 'build'}", "-o", str(binary), str(PROGRAMS / "fastmath_check.c"),
                    str(src / "fastmath.c"), "-lm"], check=True)
    res = subprocess.run([str(binary)], capture_output=True, text=True)
    assert res.returncode == 0, f"worst relative errors above 1e-11:\n{res.stdout}{res.stderr}"
