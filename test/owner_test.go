package test

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/walship/walship/internal/testenv/pgtest"
	"github.com/walship/walship/wal/waltest"
)

// asRunner runs a walship binary as the user running the tests (root in
// CI), not as the server's user.
func asRunner(t *testing.T, prog string, args ...string) result {
	t.Helper()
	cmd := exec.Command(pgtest.Bin(t, prog), args...)
	cmd.Env = []string{"PATH=/usr/bin:/bin", "LC_ALL=C"}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := result{stdout: stdout.String(), stderr: stderr.String()}
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) {
		r.code = exitErr.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestWritersRefuseAnotherUsersRepository: a walship program that would
// write into (or remove from) a local repository of another user (here
// root, into the server user's repository) refuses before it writes
// anything, in one line naming the user to run as: what it wrote would
// be root's, mode 0700, and the server's user could no longer read the
// repository. Readers are not refused.
func TestWritersRefuseAnotherUsersRepository(t *testing.T) {
	pgtest.Require(t)
	if os.Geteuid() != 0 || pgtest.Credential(t) == nil {
		t.Skip("needs root and a server user to tell apart")
	}
	base := pgtest.Dir(t)
	repoDir := filepath.Join(base, "repo")
	src := filepath.Join(base, "wal")
	names := []string{"000000010000000000000001", "000000010000000000000002"}
	var paths []string
	for _, n := range names {
		seg := waltest.FakeSegment(mustName(t, n), 7000000000000000077, segSize, nil)
		paths = append(paths, writeSegment(t, src, n, seg))
	}
	wantOK(t, "archive as the server's user", walship(t, runOpts{}, "walship-archive", "--repo", repoDir, paths[0], names[0]))
	before := snapshot(t, repoDir)

	r := asRunner(t, "walship-archive", "--repo", repoDir, paths[1], names[1])
	wantOneLine(t, "walship-archive as root", r, []int{2}, "walship-archive", "run it as postgres", "belongs to postgres")
	r = asRunner(t, "walship-prune", "--repo", repoDir, "--before", names[1])
	wantOneLine(t, "walship-prune as root", r, []int{2}, "walship-prune", "run it as postgres")
	sameSnapshot(t, "after root's refused writes", before, snapshot(t, repoDir))

	// Reading is anyone's business.
	if r := asRunner(t, "walship", "verify", "--repo", repoDir); r.code != 0 {
		t.Errorf("walship verify as root: %v", r)
	}
}
