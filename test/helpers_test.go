package test

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/walship/walship/internal/testenv/pgtest"
	"github.com/walship/walship/repo"
	"github.com/walship/walship/wal"
)

// segSize is the segment size of the clusters these tests create.
const segSize = 16 << 20

// result is how one run of a walship binary ended.
type result struct {
	stdout, stderr string
	code           int // exit status; -1 when a signal ended the process
}

// runOpts say where and with which environment a binary runs.
type runOpts struct {
	dir string   // working directory; "/" when empty
	env []string // extra KEY=value settings
}

// walship runs one walship binary as the server's user. The WALSHIP_*
// variables of the test process are dropped, so only o.env sets them.
func walship(t *testing.T, o runOpts, prog string, args ...string) result {
	t.Helper()
	cmd := walshipCmd(t, o, prog, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := result{stdout: stdout.String(), stderr: stderr.String()}
	var exitErr *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exitErr):
		r.code = exitErr.ExitCode()
	default:
		t.Fatalf("running %s: %v", prog, err)
	}
	return r
}

func walshipCmd(t *testing.T, o runOpts, prog string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := pgtest.Command(t, pgtest.Bin(t, prog), args...)
	env := cmd.Env[:0:0]
	for _, kv := range cmd.Env {
		if !strings.HasPrefix(kv, "WALSHIP_") {
			env = append(env, kv)
		}
	}
	cmd.Env = append(env, o.env...)
	if o.dir != "" {
		cmd.Dir = o.dir
	}
	return cmd
}

func (r result) String() string {
	return fmt.Sprintf("exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
}

// wantOK checks that a run succeeded quietly.
func wantOK(t *testing.T, what string, r result) {
	t.Helper()
	if r.code != 0 || r.stdout != "" || r.stderr != "" {
		t.Errorf("%s: %s, want exit 0 and no output", what, r)
	}
}

// linePrefixRE is how a walship line on stderr begins when stderr is not a
// terminal, as under the server: the time with its zone, and the pid.
var linePrefixRE = regexp.MustCompile(`^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} [A-Z][A-Za-z0-9+-]* \[(\d+)\] `)

// wantOneLine checks that a run failed with exit status code (one of codes)
// and exactly one line on stderr that begins with the time and pid, names
// the program and contains every one of wants.
func wantOneLine(t *testing.T, what string, r result, codes []int, prog string, wants ...string) {
	t.Helper()
	okCode := false
	for _, c := range codes {
		okCode = okCode || r.code == c
	}
	if !okCode {
		t.Errorf("%s: %s, want exit status in %v", what, r, codes)
	}
	if r.stdout != "" {
		t.Errorf("%s: stdout %q, want none", what, r.stdout)
	}
	line, rest, _ := strings.Cut(r.stderr, "\n")
	if rest != "" || !strings.HasSuffix(r.stderr, "\n") || !linePrefixRE.MatchString(line) ||
		!strings.HasPrefix(linePrefixRE.ReplaceAllString(line, ""), prog+": ") {
		t.Errorf("%s: stderr %q, want one line starting with the time, the pid in brackets and %q", what, r.stderr, prog+": ")
	}
	for _, w := range wants {
		if !strings.Contains(line, w) {
			t.Errorf("%s: stderr %q does not contain %q", what, line, w)
		}
	}
}

// archiving is a running cluster whose archive_command is walship-archive.
type archiving struct {
	base string // directory for the test, owned by the server's user
	repo string // the repository directory (not created in advance)
	pg   *pgtest.Cluster
}

// startArchiving starts a fresh cluster archiving into base/repo (or, when
// archiveCmd is given, with that archive_command line).
func startArchiving(t *testing.T, archiveCmd ...string) *archiving {
	t.Helper()
	pgtest.Require(t)
	a := &archiving{base: pgtest.Dir(t)}
	a.repo = filepath.Join(a.base, "repo")
	a.pg = pgtest.NewCluster(t, a.base, "primary", pgtest.InitOptions{})
	line := pgtest.ArchiveCommand(t, a.repo)
	if len(archiveCmd) > 0 {
		line = archiveCmd[0]
	}
	a.pg.Conf("archive_mode = on", line)
	a.pg.Start()
	return a
}

// switchSegment writes a little WAL, ends the segment with pg_switch_wal and
// waits until the server reports it archived. It returns the segment's name
// and its bytes as the server wrote them in pg_wal.
func (a *archiving) switchSegment(t *testing.T) (string, []byte) {
	t.Helper()
	a.pg.Query("CREATE TABLE IF NOT EXISTS filler (i int, s text); INSERT INTO filler SELECT i, md5(i::text) FROM generate_series(1, 2000) i")
	name := a.pg.Query("SELECT pg_walfile_name(pg_current_wal_lsn())")
	a.pg.Query("SELECT pg_switch_wal()")
	data, err := os.ReadFile(filepath.Join(a.pg.Data, "pg_wal", name))
	if err != nil {
		t.Fatal(err)
	}
	if len(data) != segSize {
		t.Fatalf("%s is %d bytes, want %d", name, len(data), segSize)
	}
	a.pg.WaitQuery("SELECT last_archived_wal >= '"+name+"' FROM pg_stat_archiver", "t", 60*time.Second)
	return name, data
}

// sysID is the cluster's database system identifier.
func sysID(t *testing.T, c *pgtest.Cluster) uint64 {
	t.Helper()
	v, err := strconv.ParseUint(c.Query("SELECT system_identifier FROM pg_control_system()"), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// objectPath is where a local repository in the walship layout stores name.
func objectPath(t *testing.T, repoDir, name string, c repo.Codec) string {
	t.Helper()
	n, err := wal.ParseName(name)
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(repoDir, filepath.FromSlash(repo.Key(repo.LayoutWalship, n, c)))
}

// decodeObject reads name from a local repository in-process (decoded and
// checksummed by the repo package).
func decodeObject(t *testing.T, repoDir, name string) ([]byte, error) {
	t.Helper()
	return readWAL(t, localBackend{repoDir}, mustName(t, name))
}

// restored runs walship-restore for name from repoDir into a fresh pg_wal
// directory and returns the restored bytes.
func restored(t *testing.T, repoDir, name string, flags ...string) []byte {
	t.Helper()
	dir := pgtest.Mkdir(t, filepath.Join(pgtest.Dir(t), "pg_wal"))
	args := append(append([]string{"--repo", repoDir}, flags...), name, filepath.Join(dir, name))
	r := walship(t, runOpts{}, "walship-restore", args...)
	wantOK(t, "walship-restore "+name, r)
	data, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatalf("walship-restore %s: %v", name, err)
	}
	return data
}

// writeSegment writes data as dir/name, owned by the server's user.
func writeSegment(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	pgtest.Mkdir(t, dir)
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	pgtest.Chown(t, path)
	return path
}

// fileState is what a test remembers of a file to tell it was not touched.
type fileState struct {
	size  int64
	mtime time.Time
	mode  fs.FileMode
}

// snapshot lists every file and directory under root (dot-files included).
func snapshot(t testing.TB, root string) map[string]fileState {
	t.Helper()
	got := map[string]fileState{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && path == root {
				return nil
			}
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		got[rel] = fileState{size: fi.Size(), mtime: fi.ModTime(), mode: fi.Mode()}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func sameSnapshot(t *testing.T, what string, before, after map[string]fileState) {
	t.Helper()
	for p, b := range before {
		if a, ok := after[p]; !ok {
			t.Errorf("%s: %s disappeared", what, p)
		} else if a != b {
			t.Errorf("%s: %s changed: %+v, was %+v", what, p, a, b)
		}
	}
	for p := range after {
		if _, ok := before[p]; !ok {
			t.Errorf("%s: %s appeared", what, p)
		}
	}
}

// serverUser is the uid and gid the server (and so archive_command) runs as.
func serverUser(t *testing.T) (uint32, uint32) {
	if c := pgtest.Credential(t); c != nil {
		return c.Uid, c.Gid
	}
	return uint32(os.Getuid()), uint32(os.Getgid())
}

// walshipBounded is walship with a deadline: a run that has not returned
// after a minute (far beyond the short timeouts the tests configure) is
// killed and fails the test.
func walshipBounded(t *testing.T, o runOpts, prog string, args ...string) result {
	t.Helper()
	cmd := walshipCmd(t, o, prog, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("running %s: %v", prog, err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Fatalf("%s %s still runs after 60s", prog, strings.Join(args, " "))
	}
	r := result{stdout: stdout.String(), stderr: stderr.String()}
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) {
		r.code = exitErr.ExitCode()
	} else if err != nil {
		t.Fatalf("running %s: %v", prog, err)
	}
	return r
}

// restoreInto runs walship-restore for name as the server would, in a data
// directory (with standby.signal when standby), and returns the result, the
// restored bytes and whether the destination file exists afterwards.
func restoreInto(t *testing.T, env []string, standby bool, name string, flags ...string) (r result, restored []byte, wrote bool) {
	t.Helper()
	data := pgtest.Dir(t)
	pgtest.Mkdir(t, filepath.Join(data, "pg_wal"))
	if standby {
		writeSegment(t, data, "standby.signal", nil)
	}
	r = walshipBounded(t, runOpts{dir: data, env: env}, "walship-restore", append(flags, name, "pg_wal/RECOVERYXLOG")...)
	restored, err := os.ReadFile(filepath.Join(data, "pg_wal", "RECOVERYXLOG"))
	return r, restored, err == nil
}

// noSecret fails the test when text contains one of the secrets.
func noSecret(t *testing.T, what, text string, secrets ...string) {
	t.Helper()
	for _, s := range secrets {
		if strings.Contains(text, s) {
			t.Errorf("%s shows a secret access key: %q", what, text)
		}
	}
}

// pgStat reads one column of pg_stat_archiver as an integer.
func pgStat(c *pgtest.Cluster, column string) int64 {
	return c.Int("SELECT " + column + " FROM pg_stat_archiver")
}

func mustName(t *testing.T, s string) wal.Name {
	t.Helper()
	n, err := wal.ParseName(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}
