# Install and package flux-pam: `make install`, `make uninstall`, `make deb`, `make rpm`.
# Included by the top-level Makefile, which defines PREFIX, LIBEXECDIR, CC, CFLAGS, BUN.
#
# Layout variables (all may be set on the command line; none includes DESTDIR):
#   DESTDIR      staging root prepended to every path (packages, tests); default empty
#   PREFIX       /usr
#   BINDIR       $(PREFIX)/bin: the flux-pam symlink admins run (check-user)
#   LIBEXECDIR   $(PREFIX)/libexec: flux-pam/flux-pam (the binary), flux/prolog.d/, flux/housekeeping.d/
#                (must be the LIBEXECDIR of flux-core, whose flux-run-prolog reads prolog.d there)
#   SECUREDIR    where pam_flux.so goes: make install SECUREDIR=DIR is what the reference's
#                ./configure --enable-securedir=DIR does. Default: the distribution's PAM
#                module directory, /usr/lib/MULTIARCH/security on Debian (from
#                dpkg-architecture, or from `cc -print-multiarch`), /usr/lib64/security where
#                that exists (RHEL family, SUSE), else $(PREFIX)/lib/security.
#   TMPFILESDIR  $(PREFIX)/lib/tmpfiles.d
#   MANDIR       $(PREFIX)/share/man
# pam_flux.so is built for the install as build/install/pam_flux.so with the installed
# binary's path compiled in, and rebuilt whenever that path or the compiler flags change,
# so `make install PREFIX=...` never installs a module that points somewhere else.

BINDIR      ?= $(PREFIX)/bin
TMPFILESDIR ?= $(PREFIX)/lib/tmpfiles.d
MANDIR      ?= $(PREFIX)/share/man
ifeq ($(origin SECUREDIR),undefined)
  MULTIARCH := $(shell dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || \
                 { test -f /etc/debian_version && $(CC) -print-multiarch 2>/dev/null; })
  ifneq ($(MULTIARCH),)
    SECUREDIR := /usr/lib/$(MULTIARCH)/security
  else ifneq ($(wildcard /usr/lib64/security/.),)
    SECUREDIR := /usr/lib64/security
  else
    SECUREDIR := $(PREFIX)/lib/security
  endif
endif

VERSION := $(shell sed -n 's/^ *"version": *"\([^"]*\)".*/\1/p' package.json | head -n 1)
INSTALL ?= install
LDFLAGS ?=
CPPFLAGS ?=
# Ownership is set only when root runs the install: a non-root DESTDIR install still works
# (packages then set root:root themselves, e.g. dpkg-deb --root-owner-group).
ROOT_OWNER := $(if $(filter 0,$(shell id -u)),-o root -g root)

# The installed binary. pam_flux.so runs exactly this path.
INSTALLED_HELPER = $(LIBEXECDIR)/flux-pam/flux-pam
MANPAGES := man/flux-pam.1 man/flux-config-pam.5 man/pam_flux.8

.PHONY: install uninstall deb rpm lint-man FORCE

# A stamp whose content is what build/install/pam_flux.so depends on: rewritten only when it changes.
build/install/pam_flux.so.flags: FORCE
	@mkdir -p $(@D)
	@printf '%s\n' '$(INSTALLED_HELPER)' '$(CC) $(PAM_CFLAGS) $(CPPFLAGS) $(LDFLAGS)' > $@.new
	@if cmp -s $@.new $@; then rm -f $@.new; else mv -f $@.new $@; fi

build/install/pam_flux.so: pam/pam_flux.c build/install/pam_flux.so.flags
	$(CC) $(PAM_CFLAGS) $(CPPFLAGS) -shared -DFLUX_PAM_HELPER='"$(INSTALLED_HELPER)"' $(LDFLAGS) -o $@ $< -lpam

# Symlinks are relative (Debian policy 10.5), computed from the paths without DESTDIR.
relative = $$(realpath -ms --relative-to='$(1)' '$(2)')

install: build/flux-pam build/install/pam_flux.so $(MANPAGES)
	$(INSTALL) -d -m 0755 $(ROOT_OWNER) '$(DESTDIR)$(LIBEXECDIR)/flux-pam' '$(DESTDIR)$(BINDIR)' \
		'$(DESTDIR)$(LIBEXECDIR)/flux/prolog.d' '$(DESTDIR)$(LIBEXECDIR)/flux/housekeeping.d' \
		'$(DESTDIR)$(SECUREDIR)' '$(DESTDIR)$(TMPFILESDIR)' \
		'$(DESTDIR)$(MANDIR)/man1' '$(DESTDIR)$(MANDIR)/man5' '$(DESTDIR)$(MANDIR)/man8'
	$(INSTALL) -m 0755 $(ROOT_OWNER) build/flux-pam '$(DESTDIR)$(INSTALLED_HELPER)'
	ln -sfn "$(call relative,$(BINDIR),$(INSTALLED_HELPER))" '$(DESTDIR)$(BINDIR)/flux-pam'
	ln -sfn "$(call relative,$(LIBEXECDIR)/flux/prolog.d,$(INSTALLED_HELPER))" \
		'$(DESTDIR)$(LIBEXECDIR)/flux/prolog.d/flux-pam-prolog'
	ln -sfn "$(call relative,$(LIBEXECDIR)/flux/housekeeping.d,$(INSTALLED_HELPER))" \
		'$(DESTDIR)$(LIBEXECDIR)/flux/housekeeping.d/flux-pam-housekeeping'
	$(INSTALL) -m 0644 $(ROOT_OWNER) build/install/pam_flux.so '$(DESTDIR)$(SECUREDIR)/pam_flux.so'
	$(INSTALL) -m 0644 $(ROOT_OWNER) packaging/tmpfiles.d/flux-pam.conf '$(DESTDIR)$(TMPFILESDIR)/flux-pam.conf'
	$(INSTALL) -m 0644 $(ROOT_OWNER) man/flux-pam.1 '$(DESTDIR)$(MANDIR)/man1/flux-pam.1'
	$(INSTALL) -m 0644 $(ROOT_OWNER) man/flux-config-pam.5 '$(DESTDIR)$(MANDIR)/man5/flux-config-pam.5'
	$(INSTALL) -m 0644 $(ROOT_OWNER) man/pam_flux.8 '$(DESTDIR)$(MANDIR)/man8/pam_flux.8'

# Removes what install put there (not the directories, which other packages may share).
uninstall:
	rm -f '$(DESTDIR)$(INSTALLED_HELPER)' '$(DESTDIR)$(BINDIR)/flux-pam' \
		'$(DESTDIR)$(LIBEXECDIR)/flux/prolog.d/flux-pam-prolog' \
		'$(DESTDIR)$(LIBEXECDIR)/flux/housekeeping.d/flux-pam-housekeeping' \
		'$(DESTDIR)$(SECUREDIR)/pam_flux.so' '$(DESTDIR)$(TMPFILESDIR)/flux-pam.conf' \
		'$(DESTDIR)$(MANDIR)/man1/flux-pam.1' '$(DESTDIR)$(MANDIR)/man5/flux-config-pam.5' \
		'$(DESTDIR)$(MANDIR)/man8/pam_flux.8'
	-rmdir '$(DESTDIR)$(LIBEXECDIR)/flux-pam'

# build/flux-pam_VERSION_ARCH.deb from a staged install (packaging/debian/build-deb.sh).
deb: build/flux-pam
	packaging/debian/build-deb.sh

# build/rpm/RPMS/ARCH/flux-pam-VERSION-1.ARCH.rpm with rpmbuild, from the binary built here.
rpm: build/flux-pam
	packaging/rpm/build-rpm.sh

# The man pages must be clean under mandoc's linter (warnings included).
lint-man:
	mandoc -Tlint -W warning $(MANPAGES)
