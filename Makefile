# The two commands a new Debian 12 machine needs (as root); both set up everything first.
#   make demo   a real workload under libhakmem, watched by hakwatch, its metrics shown
#   make test   the whole test suite (CI runs this through .ci/run)
.PHONY: setup demo test bench lib deb
setup:
	./scripts/setup.sh
demo: setup
	./scripts/demo.sh
test: setup
	./scripts/test.sh
bench: setup
	./bench/run.sh
lib:
	$(MAKE) -C libhakmem
deb: setup
	./scripts/deb.sh
