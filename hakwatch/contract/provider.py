"""The USDT provider, probes/hakmem.d: the home of the probes' names and arguments. libhakmem compiles
it with dtrace; hakwatch reads each probe's argument count from it here (the ARG_<probe>_<n> macros the
BPF program is compiled with, and the check that a library's flush probe is this contract's)."""

import re
from functools import lru_cache
from pathlib import Path

from hakwatch.contract.layout import PROBES_DIR, _strip_comments

PROVIDER_D = PROBES_DIR / "hakmem.d"


@lru_cache(maxsize=None)
def argument_counts(path: Path = PROVIDER_D) -> dict[str, int]:
    """Probe name -> its number of arguments, in the file's order."""
    text = _strip_comments(path.read_text())
    probes = re.findall(r"^[ \t]*probe (\w+)\(([^()\n]*)\);[ \t]*$", text, re.M)
    # hakmem.d keeps one probe a line (Debian's dtrace may read it with a line matcher): a probe spread
    # over lines would be missed here, so it is refused instead.
    if len(probes) != len(re.findall(r"\bprobe\b", text)) or not probes:
        raise ValueError(f"{path}: cannot read its probes (one `probe name(type arg, ...);` a line)")
    return {name: 0 if args.strip() in ("", "void") else len(args.split(",")) for name, args in probes}
