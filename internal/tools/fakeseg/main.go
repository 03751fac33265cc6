// Command fakeseg writes a WAL segment whose long page header is valid for
// its name (wal/waltest.FakeSegment, PostgreSQL 15's magic), for checks
// of installed binaries that have no server at hand, such as
// scripts/check-deb.sh:
//
//	go run ./internal/tools/fakeseg [-sysid N] [-size BYTES] DIR NAME
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/walship/walship/wal"
	"github.com/walship/walship/wal/waltest"
)

func main() {
	sysID := flag.Uint64("sysid", 7300000000000000001, "system identifier in the header")
	size := flag.Uint("size", 16<<20, "segment size in bytes (a power of two, 1 MiB to 1 GiB)")
	flag.Parse()
	if flag.NArg() != 2 {
		fmt.Fprintln(os.Stderr, "usage: fakeseg [-sysid N] [-size BYTES] DIR NAME")
		os.Exit(2)
	}
	dir, name := flag.Arg(0), flag.Arg(1)
	n, err := wal.ParseName(name)
	if err != nil {
		fmt.Fprintln(os.Stderr, "fakeseg:", err)
		os.Exit(2)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, "fakeseg:", err)
		os.Exit(1)
	}
	if err := os.WriteFile(filepath.Join(dir, name), waltest.Seeded(n, *sysID, uint32(*size), 1), 0o600); err != nil {
		fmt.Fprintln(os.Stderr, "fakeseg:", err)
		os.Exit(1)
	}
}
