# flux-pam: build the self-contained binary and the PAM wrapper, test, install, package.

BUN       ?= node_modules/.bin/bun
CC        ?= cc
CFLAGS    ?= -O2 -g
PAM_CFLAGS = -std=gnu11 -Wall -Wextra -Werror -fPIC -D_GNU_SOURCE $(CFLAGS)

PREFIX     ?= /usr
LIBEXECDIR ?= $(PREFIX)/libexec
# where pam_flux.so finds the helper: fixed at build time
HELPER     ?= $(LIBEXECDIR)/flux-pam/flux-pam

SRC := $(shell find src -name '*.ts') package.json

.PHONY: all build check test clean

all: build
build: build/flux-pam build/pam_flux.so

node_modules/.bin/bun: package.json
	npm ci --no-audit --no-fund
	@touch $@

build/flux-pam: $(SRC) node_modules/.bin/bun
	@mkdir -p build
	$(BUN) build --compile --bytecode --minify --sourcemap=none src/cli.ts --outfile $@

build/pam_flux.so: pam/pam_flux.c
	@mkdir -p build
	$(CC) $(PAM_CFLAGS) -shared -DFLUX_PAM_HELPER='"$(HELPER)"' -o $@ $< -lpam

check: build
	$(BUN) test

test: check

clean:
	rm -rf build
