# walship: `make demo` runs a real primary and a restored copy on a local
# archive; `make test` runs every test (real PostgreSQL, and a real S3
# server for the S3 backend).
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

# Unit tests first (fast), then the end-to-end tests against real servers.
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

fuzz:
	$(GO) test -run '^$$' -fuzz FuzzParseName -fuzztime 30s ./wal/
	$(GO) test -run '^$$' -fuzz FuzzParseLongHeader -fuzztime 30s ./wal/

# Each script writes its own section of docs/BENCHMARKS.md; the scripts
# whose part is not built yet are skipped.
bench: build
	bash scripts/bench.sh
	bash scripts/bench-archiver.sh
	for s in standby s3 rewind throughput; do [ ! -f scripts/bench-$$s.sh ] || bash scripts/bench-$$s.sh || exit 1; done

demo: build
	bash scripts/demo.sh
	bash scripts/demo-failback.sh

clean:
	rm -rf $(BIN)
