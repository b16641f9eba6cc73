"""hakwatch doctor's checks against fake machine roots: each failure names what is missing and the fix
that set-up applies (the headers link, the tracefs mount)."""

from hakwatch.commands import doctor


def test_root():
    assert doctor.check_root(0).ok
    bad = doctor.check_root(1000)
    assert not bad.ok and "sudo" in bad.fix


def test_tracefs(tmp_path):
    bad = doctor.check_tracefs(tmp_path)
    assert not bad.ok and bad.fix == f"mount -t tracefs nodev {tmp_path}"
    (tmp_path / "events").mkdir()
    assert doctor.check_tracefs(tmp_path).ok


def test_headers_missing_offers_debians(tmp_path):
    modules, src = tmp_path / "modules", tmp_path / "src"
    (modules / "6.18.0-custom").mkdir(parents=True)
    for d in ("linux-headers-6.1.0-9-amd64", "linux-headers-6.1.0-10-amd64", "linux-headers-6.1.0-10-common"):
        (src / d).mkdir(parents=True)
    bad = doctor.check_headers("6.18.0-custom", modules, src)
    assert not bad.ok
    # the newest of each kind, by version (-10 after -9), as set-up's `sort -V` picks them
    assert f"ln -sfn {src}/linux-headers-6.1.0-10-amd64 {modules}/6.18.0-custom/build" in bad.fix
    assert f"ln -sfn {src}/linux-headers-6.1.0-10-common {modules}/6.18.0-custom/source" in bad.fix


def test_headers_missing_and_none_installed(tmp_path):
    (tmp_path / "modules" / "6.18.0-custom").mkdir(parents=True)
    bad = doctor.check_headers("6.18.0-custom", tmp_path / "modules", tmp_path / "src")
    assert not bad.ok and "apt install linux-headers-amd64" in bad.fix


def test_headers_present(tmp_path):
    rel = tmp_path / "modules" / "6.1.0-10-amd64"
    (rel / "build" / "include" / "generated").mkdir(parents=True)
    (rel / "build" / "include" / "generated" / "autoconf.h").touch()
    (rel / "source" / "include" / "linux").mkdir(parents=True)
    (rel / "source" / "include" / "linux" / "kconfig.h").touch()
    assert doctor.check_headers("6.1.0-10-amd64", tmp_path / "modules", tmp_path / "src").ok


def test_uprobe_semaphores(tmp_path):
    assert not doctor.check_uprobe_ref_ctr(tmp_path).ok
    (tmp_path / "format").mkdir()
    (tmp_path / "format" / "ref_ctr_offset").touch()
    assert doctor.check_uprobe_ref_ctr(tmp_path).ok
