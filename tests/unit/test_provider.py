"""probes/hakmem.d as hakwatch reads it (hakwatch/contract/provider.py): each probe's argument count is what
dtrace, which libhakmem's build runs on the same file, makes of it; and a library whose flush probe
hands over another number of arguments is refused with the message that says to rebuild it."""

import re
import subprocess

import pytest

from hakwatch.attach.bpf import hakmem_sites
from hakwatch.errors import HakwatchError
from hakwatch.contract.provider import PROVIDER_D, argument_counts


def test_argument_counts_are_dtraces(tmp_path):
    header = tmp_path / "probes.h"
    subprocess.run(["dtrace", "-h", "-s", str(PROVIDER_D), "-o", str(header)], check=True)
    macros = re.findall(r"^#define HAKMEM_(\w+)\(([^)]*)\)", header.read_text(), re.M)
    dtraces = {name.lower(): len(args.split(",")) if args else 0 for name, args in macros if not name.endswith("_ENABLED")}
    assert argument_counts() == dtraces


def test_a_probe_over_two_lines_is_refused(tmp_path):
    d = tmp_path / "split.d"
    d.write_text("provider hakmem {\n\tprobe init(int pid,\n\t\tchar *version);\n\tprobe flush(void *delta, void *totals);\n};\n")
    with pytest.raises(ValueError, match="one `probe"):
        argument_counts(d)


def test_a_flush_probe_of_another_argument_count_is_refused(tmp_path):
    src = tmp_path / "old.c"
    src.write_text("#include <sys/sdt.h>\n"
                   "void hakmem_old(int pid, void *delta) { DTRACE_PROBE2(hakmem, init, pid, delta); "
                   "DTRACE_PROBE1(hakmem, flush, delta); }\n")
    lib = tmp_path / "libold.so"
    subprocess.run(["cc", "-shared", "-fPIC", "-O2", str(src), "-o", str(lib)], check=True)
    assert argument_counts()["flush"] != 1
    with pytest.raises(HakwatchError, match="older than this hakwatch .* rebuild it with `make -C libhakmem`"):
        hakmem_sites(str(lib))
