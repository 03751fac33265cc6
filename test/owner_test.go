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

// TestSquattedSpoolRefused: a spool directory another user made first (a
// path under /tmp squatted by someone else) or may write into is refused
// in one line by walship-archive --parallel and walship-restore --prefetch,
// instead of being used: its owner could plant the segment the server
// gets, or a link the spool's cleanup would follow.
func TestSquattedSpoolRefused(t *testing.T) {
	pgtest.Require(t)
	if os.Geteuid() != 0 || pgtest.Credential(t) == nil {
		t.Skip("needs root and a server user to tell apart")
	}
	base := pgtest.Dir(t)
	repoDir := filepath.Join(base, "repo")
	name := "000000010000000000000001"
	path := writeSegment(t, filepath.Join(base, "wal"), name, waltest.FakeSegment(mustName(t, name), 7000000000000000078, segSize, nil))
	squatted := filepath.Join(base, "squatted")
	if err := os.Mkdir(squatted, 0o777); err != nil {
		t.Fatal(err)
	}
	os.Chmod(squatted, 0o777) // root's, open to all: the server's user did not make it

	r := walship(t, runOpts{}, "walship-archive", "--repo", repoDir, "--parallel", "4", "--spool", squatted, path, name)
	wantOneLine(t, "walship-archive with a squatted spool", r, []int{2}, "walship-archive", "spool directory not safe")
	if _, err := os.Stat(repoDir); err == nil {
		t.Error("walship-archive archived with a squatted spool")
	}
	wantOK(t, "archive", walship(t, runOpts{}, "walship-archive", "--repo", repoDir, path, name))
	r, _, wrote := restoreInto(t, nil, false, name, "--repo", repoDir, "--prefetch", "2", "--spool", squatted)
	wantOneLine(t, "walship-restore with a squatted spool", r, []int{255}, "walship-restore", "spool directory not safe")
	if wrote {
		t.Error("walship-restore restored with a squatted spool")
	}
}
