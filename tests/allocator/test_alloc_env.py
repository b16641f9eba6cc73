"""Environment settings and output hygiene: a malformed HAKMEM_SS_LRU_SIZE (or HAKMEM_PURGE_DELAY_MS, HAKMEM_THP, HAKMEM_HEAP_ERRORS, HAKMEM_SAMPLE_INTERVAL, HAKMEM_SAMPLE_MAX_RATE) gives exactly
one warning line on stderr and the program still runs right; a valid one gives none; nothing libhakmem prints
ever goes to stdout; the exit status is the program's own."""

import pytest

ARGS = ["hello", "two words", "--not-an-option", "üñí"]
EXPECTED_HEAD = "".join(a + "\n" for a in ARGS)


@pytest.fixture(scope="module")
def reference(hak, prog):
    """alloc_echo's stdout without libhakmem."""
    res = hak.run([prog("alloc_echo"), *ARGS], preload=False)
    assert res.stdout.startswith(EXPECTED_HEAD) and "checksum " in res.stdout, res.report()
    assert res.stderr == ""
    return res.stdout


@pytest.mark.parametrize("name,value", [
    *(("HAKMEM_SS_LRU_SIZE", v) for v in ["abc", "-3", "99999999999999999999", "12abc", "1.5", "0x"]),
    *(("HAKMEM_PURGE_DELAY_MS", v) for v in ["", "1s", "-1", "3600001", "0.5"]),
    *(("HAKMEM_THP", v) for v in ["2", "yes", "-1", ""]),
    *(("HAKMEM_HEAP_ERRORS", v) for v in ["", "Abort", "continue", "report "]),
    *(("HAKMEM_SAMPLE_INTERVAL", v) for v in ["", "2M", "-1", "1073741825", "1e6"]),
    *(("HAKMEM_SAMPLE_MAX_RATE", v) for v in ["", "fast", "-5", "1000001"]),
])
def test_malformed_setting_warns_once(hak, prog, reference, name, value):
    res = hak.run([prog("alloc_echo"), *ARGS], env={name: value})
    assert res.stdout == reference, f"stdout changed with {name}={value!r}\n{res.report()}"
    lines = res.stderr.splitlines()
    assert len(lines) == 1 and res.stderr.endswith("\n"), \
        f"{name}={value!r}: expected exactly one warning line on stderr\n{res.report()}"
    assert name in lines[0], f"the warning does not name the variable: {lines[0]!r}"


def test_malformed_lru_size_warns_once_in_a_threaded_program(hak, prog):
    """The setting is read once, not once per thread."""
    res = hak.run([prog("alloc_xthread"), 4, 4, 2, 2000], env={"HAKMEM_SS_LRU_SIZE": "abc"})
    assert "cross-thread ok: 16000 blocks" in res.stdout, res.report()
    assert len(res.stderr.splitlines()) == 1, res.report()


@pytest.mark.parametrize("name,value", [*(("HAKMEM_SS_LRU_SIZE", v) for v in ["0", "1", "8", "64"]),
                                        *(("HAKMEM_PURGE_DELAY_MS", v) for v in ["0", "250", "3600000"]),
                                        *(("HAKMEM_SAMPLE_INTERVAL", v) for v in ["0", "1", "4096", "1073741824"]),
                                        *(("HAKMEM_SAMPLE_MAX_RATE", v) for v in ["0", "1000000"])])
def test_valid_setting_is_silent(hak, prog, reference, name, value):
    res = hak.run([prog("alloc_echo"), *ARGS], env={name: value})
    assert res.stdout == reference, res.report()
    assert res.stderr == "", f"{name}={value} printed something\n{res.report()}"


def test_stdout_untouched(hak, prog, reference, tmp_path):
    """With stats on, a malformed setting and an unwritable stats path all at once, stdout is still
    byte for byte the program's own, and so is the exit status."""
    env = {"HAKMEM_SS_LRU_SIZE": "abc"}
    for stats in (tmp_path / "s.json", tmp_path / "no" / "such" / "dir" / "s.json"):
        res = hak.run([prog("alloc_echo"), "--exit=7", *ARGS], stats=stats, env=env, check=False)
        assert res.returncode == 7, res.report()
        assert res.stdout == reference, f"HAKMEM_STATS={stats}\n{res.report()}"
    assert (tmp_path / "s.json").exists(), "HAKMEM_STATS to a writable path wrote no file"


@pytest.mark.parametrize("argv", [
    ["/bin/echo", "a", "b c", "--", "ä"],
    ["/usr/bin/printf", "%s|%d\\n", "x", "42"],
    ["/bin/cat", "/etc/os-release"],
    ["/usr/bin/env", "-u", "LD_PRELOAD", "-u", "HAKMEM_STATS", "/bin/echo", "child"],
])
def test_system_programs_stdout_identical(hak, argv, tmp_path):
    ref = hak.run(argv, preload=False)
    got = hak.run(argv, stats=tmp_path / "s-%p.json")
    assert got.stdout_bytes == ref.stdout_bytes, got.report()
    assert got.stderr_bytes == ref.stderr_bytes, got.report()


def test_exit_status_preserved(hak, prog):
    for status in (0, 1, 42, 255):
        res = hak.run([prog("alloc_echo"), f"--exit={status}"], check=False)
        assert res.returncode == status, res.report()
