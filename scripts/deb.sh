#!/usr/bin/env bash
# make deb: the Debian packages (libhakmem1, hakwatch) into dist/, built from a copy of this tree
# (dpkg-buildpackage writes beside the source), then checked with lintian, which must report no error.
set -euo pipefail
cd "$(dirname "$0")/.."
say() { printf 'deb: %s\n' "$*" >&2; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir "$work/hakmem"
# The tracked files and the new ones not ignored: what a commit of this tree would hold.
git ls-files -z --cached --others --exclude-standard | tar --null -T - -cf - | tar -xf - -C "$work/hakmem"
say "building in $work"
# Debian's own tools and Python only (a pyenv or a venv first on PATH would build against another Python)
(cd "$work/hakmem" && PATH=/usr/sbin:/usr/bin:/sbin:/bin dpkg-buildpackage -b -us -uc >"$work/build.log" 2>&1) || {
	tail -40 "$work/build.log" >&2
	say "dpkg-buildpackage failed (the log's end is above)"
	exit 1
}
mkdir -p dist
rm -f dist/*.deb
cp "$work"/*.deb dist/
say "lintian"
lintian --fail-on error "$work"/*.changes
ls -1 dist/*.deb
