#!/usr/bin/env bash
# Set up this machine (Debian 12, as root) for building, running and testing hakwatch and libhakmem.
# Idempotent: a second run installs nothing and takes a second or two.
#   1. Debian packages: compiler, systemtap-sdt-dev (sys/sdt.h, dtrace), bcc, kernel headers,
#      bpftrace, the peer allocators the benchmarks compare against, Prometheus, strace, valgrind.
#   2. Kernel headers for bcc when the running kernel has none of its own (a custom kernel):
#      /lib/modules/$(uname -r)/build and source point at Debian's newest headers.
#   3. tracefs mounted at /sys/kernel/tracing.
#   4. A virtual environment in .venv from Debian's python3 with --system-site-packages (bcc's
#      Python module comes only from Debian's python3-bpfcc), holding hakwatch and its test tools.
#   5. hakwatch/profile/profile_pb2.py generated (scripts/profile-proto.sh); libhakmem built.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf 'setup: %s\n' "$*" >&2; }

[ "$(id -u)" = 0 ] || { say "run as root (it installs Debian packages and mounts tracefs)"; exit 1; }

packages=(
	build-essential make git pkg-config
	systemtap-sdt-dev python3-pyparsing
	python3 python3-venv python3-pip python3-bpfcc bpfcc-tools linux-headers-amd64 bpftrace
	libmimalloc2.0 libjemalloc2 libtcmalloc-minimal4
	prometheus strace valgrind procps sqlite3 curl
	# CPython's own test suite, run under libhakmem by tests/allocator
	libpython3.11-testsuite
	# hakwatch's Python dependencies as Debian packages (pyproject.toml admits their versions)
	python3-setuptools python3-click python3-prometheus-client python3-pyelftools python3-pytest python3-matplotlib
	python3-numpy
	# --web.config.file: its YAML and the bcrypt hashes of its users; openssl makes the tests' certificates
	python3-yaml python3-bcrypt openssl
	# make deb (debian/): the packages' build and lintian, which make test runs
	debhelper dh-python pybuild-plugin-pyproject python3-all lintian
	# pprof profiles: protoc makes hakwatch/profile/profile_pb2.py from pprof's own profile.proto (Debian's
	# copy); the tests read what hakwatch writes with go tool pprof
	protobuf-compiler python3-protobuf golang-github-google-pprof-dev golang-go
)
missing=()
for p in "${packages[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	say "installing Debian packages: ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# Debian's prometheus package starts a server on :9090 where an init system runs; the tests start
# their own on a throwaway port, so the packaged one is left as the machine's admin set it.

kver=$(uname -r)
moddir=/lib/modules/$kver
if [ ! -e "$moddir/build/include/generated/autoconf.h" ] || [ ! -e "$moddir/source/include/linux/kconfig.h" ]; then
	hdr=$(ls -d /usr/src/linux-headers-*-amd64 2>/dev/null | sort -V | tail -n 1)
	common=$(ls -d /usr/src/linux-headers-*-common 2>/dev/null | sort -V | tail -n 1)
	[ -n "$hdr" ] && [ -n "$common" ] || { say "no kernel headers under /usr/src after installing linux-headers-amd64"; exit 1; }
	say "kernel $kver has no headers of its own: linking $moddir/build -> $hdr, source -> $common"
	mkdir -p "$moddir"
	ln -sfn "$hdr" "$moddir/build"
	ln -sfn "$common" "$moddir/source"
fi

if [ ! -e /sys/kernel/tracing/trace ]; then
	say "mounting tracefs at /sys/kernel/tracing"
	mount -t tracefs nodev /sys/kernel/tracing
fi

if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c 'import bcc' 2>/dev/null; then
	say "creating .venv from /usr/bin/python3 (--system-site-packages, for bcc)"
	rm -rf .venv
	/usr/bin/python3 -m venv --system-site-packages .venv
fi
stamp=.venv/.installed-$(sha1sum pyproject.toml | cut -c1-12)
if [ ! -e "$stamp" ]; then
	say "installing hakwatch and its test tools into .venv"
	# No build isolation: Debian's setuptools builds the package, so pip fetches only what Debian lacks.
	.venv/bin/python -m pip install -q --disable-pip-version-check --no-build-isolation -e '.[test,bench]'
	rm -f .venv/.installed-*
	touch "$stamp"
fi

./scripts/profile-proto.sh
make -s -C libhakmem
