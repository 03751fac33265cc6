// Package buildinfo says which walship a binary is: its version and the
// commit it was built from. The Makefile sets both at build time:
//
//	go build -ldflags "-X github.com/walship/walship/internal/buildinfo.version=1.2.0 \
//	  -X github.com/walship/walship/internal/buildinfo.commit=0123abcd" ./cmd/...
//
// A binary built without them reports what the Go toolchain recorded: the
// module version of `go install ...@v1.2.0`, the revision of the git
// clone it was built in, else "devel" and "unknown".
package buildinfo

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"
)

// Set with -ldflags -X.
var version, commit string

// Version is walship's version: "1.2.0", "v1.2.0-3-g0123abc-dirty" (git
// describe), a Go pseudo-version, or "devel".
func Version() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "devel"
}

// Commit is the git commit walship was built from, "-dirty" when the work
// tree had changes, or "unknown".
func Commit() string {
	if commit != "" {
		return commit
	}
	var rev, dirty string
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			switch {
			case s.Key == "vcs.revision":
				rev = s.Value
			case s.Key == "vcs.modified" && s.Value == "true":
				dirty = "-dirty"
			}
		}
	}
	if rev == "" {
		return "unknown"
	}
	return rev[:min(12, len(rev))] + dirty
}

// String is the line -V prints: "walship-archive 1.2.0 (commit 0123abcd,
// go1.26.0 linux/amd64)".
func String(prog string) string {
	return fmt.Sprintf("%s %s (commit %s, %s %s/%s)", prog, strings.TrimSpace(Version()), strings.TrimSpace(Commit()),
		runtime.Version(), runtime.GOOS, runtime.GOARCH)
}
