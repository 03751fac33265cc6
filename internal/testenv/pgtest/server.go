package pgtest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// Server is one PostgreSQL installation whose initdb, pg_ctl and postgres
// run a test's clusters. The client programs (psql, pgbench,
// pg_basebackup, pg_rewind) always come from the default installation
// (Require), which talks to servers of other majors too.
type Server struct {
	Bin     string // directory of initdb, pg_ctl and postgres
	Major   int    // 13, ..., 18
	Version string // as postgres --version reports it: "17.10"
}

// Name is how tests name the server in subtests: "pg17".
func (s Server) Name() string { return fmt.Sprintf("pg%d", s.Major) }

func (s Server) String() string { return fmt.Sprintf("PostgreSQL %s (%s)", s.Version, s.Bin) }

// Tool is the path of one of the server's programs.
func (s Server) Tool(name string) string { return filepath.Join(s.Bin, name) }

var (
	serversMu sync.Mutex
	servers   = map[string]Server{}
)

// versionRE finds the version in "postgres (PostgreSQL) 15.18 (Debian ...)".
var versionRE = regexp.MustCompile(`\(PostgreSQL\) (\d+)(\.\d+)?`)

// ServerAt describes the installation in bin (postgres --version), once
// per test process.
func ServerAt(bin string) (Server, error) {
	serversMu.Lock()
	defer serversMu.Unlock()
	if s, ok := servers[bin]; ok {
		return s, nil
	}
	out, err := exec.Command(filepath.Join(bin, "postgres"), "--version").CombinedOutput()
	if err != nil {
		return Server{}, fmt.Errorf("%s/postgres --version: %v: %s", bin, err, strings.TrimSpace(string(out)))
	}
	m := versionRE.FindStringSubmatch(string(out))
	if m == nil {
		return Server{}, fmt.Errorf("%s/postgres --version: no version in %q", bin, out)
	}
	major, _ := strconv.Atoi(m[1])
	s := Server{Bin: bin, Major: major, Version: m[1] + m[2]}
	servers[bin] = s
	return s, nil
}

// Default is the installation Require finds, as a Server.
func Default(t testing.TB) Server {
	t.Helper()
	s, err := ServerAt(Require(t))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// DefaultCache is where scripts/install-pg-versions.sh unpacks the servers
// of each major ($WALSHIP_PG_CACHE overrides it): DefaultCache/<major>/bin.
const DefaultCache = "/var/cache/walship/pg"

// Servers are the installations a version matrix runs on: those that
// $WALSHIP_PG_VERSIONS lists (majors such as "13 14 15", each found in the
// cache of scripts/install-pg-versions.sh or in /usr/lib/postgresql, or
// bin directories), or the default installation alone when it is unset.
// A listed server that cannot be found fails the test: it was asked for.
func Servers(t testing.TB) []Server {
	t.Helper()
	list := strings.Fields(strings.ReplaceAll(os.Getenv("WALSHIP_PG_VERSIONS"), ",", " "))
	if len(list) == 0 {
		return []Server{Default(t)}
	}
	var out []Server
	for _, v := range list {
		bin, err := findServer(v)
		if err != nil {
			t.Fatalf("WALSHIP_PG_VERSIONS: %v (scripts/install-pg-versions.sh installs them)", err)
		}
		s, err := ServerAt(bin)
		if err != nil {
			t.Fatalf("WALSHIP_PG_VERSIONS: %v", err)
		}
		if m, err := strconv.Atoi(v); err == nil && s.Major != m {
			t.Fatalf("WALSHIP_PG_VERSIONS: %s is PostgreSQL %s, not %d", bin, s.Version, m)
		}
		out = append(out, s)
	}
	return out
}

// findServer resolves one entry of WALSHIP_PG_VERSIONS to a bin directory.
func findServer(v string) (string, error) {
	if _, err := strconv.Atoi(v); err != nil {
		if _, err := os.Stat(filepath.Join(v, "postgres")); err != nil {
			return "", fmt.Errorf("%q is neither a major version nor a directory with postgres in it", v)
		}
		return v, nil
	}
	cache := os.Getenv("WALSHIP_PG_CACHE")
	if cache == "" {
		cache = DefaultCache
	}
	for _, d := range []string{filepath.Join(cache, v, "bin"), filepath.Join("/usr/lib/postgresql", v, "bin")} {
		if _, err := os.Stat(filepath.Join(d, "postgres")); err == nil {
			return d, nil
		}
	}
	return "", fmt.Errorf("no PostgreSQL %s in %s/%s/bin or /usr/lib/postgresql/%s/bin", v, cache, v, v)
}

// Major is the installation of PostgreSQL major (the cache of
// scripts/install-pg-versions.sh, or /usr/lib/postgresql), for a test
// that needs that major whatever the default is: without it the test
// skips, or fails under CI=true.
func Major(t testing.TB, major int) Server {
	t.Helper()
	bin, err := findServer(strconv.Itoa(major))
	if err == nil {
		var s Server
		if s, err = ServerAt(bin); err == nil {
			return s
		}
	}
	if InCI() {
		t.Fatalf("PostgreSQL %d is required in CI: %v (make pg-versions installs it)", major, err)
	}
	t.Skipf("no PostgreSQL %d: %v (make pg-versions installs it)", major, err)
	return Server{}
}
