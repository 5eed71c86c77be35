# flux-pam: build the self-contained binary and the PAM wrapper, test, install, package.

BUN       ?= node_modules/.bin/bun
CC        ?= cc
CFLAGS    ?= -O2 -g
PAM_CFLAGS = -std=gnu11 -Wall -Wextra -Werror -fPIC -D_GNU_SOURCE $(CFLAGS)

PREFIX     ?= /usr
LIBEXECDIR ?= $(PREFIX)/libexec
# where pam_flux.so finds the helper: fixed at build time
HELPER     ?= $(LIBEXECDIR)/flux-pam/flux-pam

SRC := $(shell find src -name '*.ts' -o -name '*.cjs') package.json

.PHONY: all build check check-vm fuzz lifecycle test bench demo deps clean compile-flags bytecode-order

all: build
build: build/flux-pam build/pam_flux.so

# What building and testing need, from Debian's apt (as root, only what is missing) and npm.
deps:
	@bash build/setup.sh

node_modules/.bin/bun: package.json package-lock.json
	@bash build/setup.sh
	@touch $@

# build/compile.ts compiles (Bun's bundler API: bytecode, minified, no source map, and none of
# bunfig.toml, .env, tsconfig.json or package.json read at run time from the caller's directory,
# which under su is a user's), with small stand-ins for the node:util and node:assert that
# dbus-native's marshalling loads: measured, paired, both binaries read from disk, 0.86-0.93 of the
# time of every hook path and session-open (90% intervals below 1 on seven of nine) and 3-4 ms less
# CPU each (bench/hooks.ts). COMPILE is what the benchmarks' floor is compiled with too.
#
# Every command is a short process: JavaScriptCore's optimising tiers would compile code that runs a
# few hundred times and is then thrown away. A high tier-up threshold keeps it in the interpreter and
# the baseline JIT: measured, 10 MiB less peak RSS with 1000 running jobs and less CPU, a login as fast.
JIT_POLICY ?= 1000

COMPILE = --jit-policy $(JIT_POLICY)

# The bytecode's layout, profile-guided: what a login and a job's hooks run is placed first, so
# each of these short processes touches fewer pages of it. Measured first at 0.85-0.92 of the time
# of every hook path, against an older binary; with both binaries read from disk (bench/page-cache.ts)
# 0.96-1.03, every interval holding 1: no gain shown on this machine, none lost, and Bun's own
# figures for larger programs are much larger, so it stays. The profiles are recorded on real systemd by
# build/bytecode-order.ts (`make bytecode-order`), the first listed laid out first; one from an
# older build still applies to the functions that did not change. flux-pam's own: not in
# compile-flags, which the floor of the benchmarks is built with.
BYTECODE_ORDER := $(wildcard $(addprefix build/bytecode-order/,$(addsuffix .txt,account session-open prolog housekeeping-last housekeeping-remain account-denied)))
comma := ,
empty :=
space := $(empty) $(empty)
ORDER_FLAG = $(if $(BYTECODE_ORDER),--bytecode-order=$(subst $(space),$(comma),$(strip $(BYTECODE_ORDER))))

build/flux-pam: $(SRC) Makefile node_modules/.bin/bun build/compile.ts $(BYTECODE_ORDER)
	@mkdir -p build
	$(BUN) build/compile.ts $(COMPILE) $(ORDER_FLAG) src/cli.ts $@

# Records the profiles again with the binary of the current code (root: the nspawn container of
# the tests), then builds with them.
bytecode-order: build/flux-pam
	$(BUN) build/bytecode-order.ts
	$(MAKE) build/flux-pam

# How the binary is compiled, for bench/floor.ts: its yardstick program is compiled the same way.
compile-flags:
	@echo $(COMPILE)

build/pam_flux.so: pam/pam_flux.c
	@mkdir -p build
	$(CC) $(PAM_CFLAGS) -shared -DFLUX_PAM_HELPER='"$(HELPER)"' -o $@ $< -lpam

# the test driver for pam_flux.so: real libpam, a private config dir (test/pam/driver.c)
build/test/pam-driver: test/pam/driver.c
	@mkdir -p build/test
	$(CC) -std=gnu11 -Wall -Wextra -Werror -D_GNU_SOURCE $(CFLAGS) -rdynamic -o $@ $< -lpam

check: deps build build/test/pam-driver
	$(BUN) test --timeout 120000

# Optional and slow, not part of check: the kernel enforces the slice's limits, in a QEMU VM
# (test/vm/). Needs root and the VM scripts of shared/ beside the repo; builds the VM image
# into /var/cache/vmref (VMREF_DIR) the first time.
VM_SCRIPTS ?= $(CURDIR)/../shared/vm
check-vm: deps build
	@test -r $(VM_SCRIPTS)/run-in-vm.sh -a -r $(VM_SCRIPTS)/make-image.sh || \
	  { echo "make check-vm: no $(VM_SCRIPTS)/run-in-vm.sh or make-image.sh: the VM test uses shared/vm beside the repo (or VM_SCRIPTS=DIR)" >&2; exit 1; }
	FLUX_PAM_VM_TESTS=1 FLUX_PAM_VM_SCRIPTS=$(VM_SCRIPTS) $(BUN) test --timeout 300000 ./test/vm/

# The wire fuzzer of check, longer and with a fresh seed (test/reliability/fuzz.test.ts); a
# failure names its seed: FUZZ_SEED=N replays it.
FUZZ_SEED   ?= $(shell date +%s)
FUZZ_CASES  ?= 30000
FUZZ_BINARY ?= 1000
fuzz: deps build
	FLUX_PAM_FUZZ_SEED=$(FUZZ_SEED) FLUX_PAM_FUZZ_CASES=$(FUZZ_CASES) FLUX_PAM_FUZZ_BINARY_CASES=$(FUZZ_BINARY) \
	  $(BUN) test --timeout 3600000 ./test/reliability/fuzz.test.ts

# The randomized life cycle of check on real systemd (test/reliability/lifecycle.test.ts), 1000
# events with a fresh seed; LIFECYCLE_SEED=N replays one.
LIFECYCLE_SEED   ?= $(shell date +%s)
LIFECYCLE_EVENTS ?= 1000
lifecycle: deps build
	FLUX_PAM_LIFECYCLE_SEED=$(LIFECYCLE_SEED) FLUX_PAM_LIFECYCLE_EVENTS=$(LIFECYCLE_EVENTS) \
	  $(BUN) test --timeout 3600000 ./test/reliability/lifecycle.test.ts

# The main job without Flux or root: a simulated node, logins granted and denied, check-user, a prolog.
demo: deps build/flux-pam
	@bash build/demo.sh

bench: build build/test/pam-driver
	$(BUN) bench/account.ts
	$(BUN) bench/hooks.ts
	$(BUN) bench/rss.ts
	$(BUN) bench/node.ts
	$(BUN) bench/systemd-calls.ts

test: check

# build/ also holds the tracked build scripts: remove only what is built.
clean:
	rm -rf build/flux-pam build/pam_flux.so build/test build/install build/*.deb build/*.rpm build/deb build/rpm

# install, uninstall, deb, rpm, lint-man
include packaging/packaging.mk
