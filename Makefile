# walship: `make demo` runs a real primary and a restored copy on a local
# archive; `make test` builds, lints and runs every test (real PostgreSQL,
# and a real S3 server for the S3 backend).
GO      ?= go
# urfave_cli_no_docs drops the man-page generator: faster process start.
export GOFLAGS += -tags=urfave_cli_no_docs
BIN     := bin
CMDS    := $(notdir $(wildcard cmd/*))

.PHONY: all build test unit e2e bench demo lint fuzz clean

all: build

# Static and stripped: no dynamic loader at start, fewer pages to map, and
# a binary that runs on any Linux of the same architecture.
build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags='-s -w' -o $(BIN)/ ./cmd/...

# Builds bin/ (build), checks gofmt and go vet (lint), then runs the unit
# tests of every package and the end-to-end tests of test/ (real PostgreSQL
# and a real S3 server; under CI=true a missing one fails, elsewhere its
# tests skip) in one go test, which runs the packages side by side.
test: build lint
	$(GO) test -count=1 -timeout 20m ./...

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
	for s in standby s3 rewind throughput backup; do [ ! -f scripts/bench-$$s.sh ] || bash scripts/bench-$$s.sh || exit 1; done

demo: build
	bash scripts/demo.sh
	bash scripts/demo-failback.sh

clean:
	rm -rf $(BIN)
