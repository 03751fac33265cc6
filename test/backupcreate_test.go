package test

import (
	"bytes"
	"encoding/json"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/walship/walship/internal/testenv/pgtest"
	"github.com/walship/walship/repo"
)

// TestBackupCreateConcurrent: two walship backup create runs started
// together against one server (their backups start in the same second)
// both succeed, with distinct IDs, both restorable; no claim object is
// left. On every backend.
func TestBackupCreateConcurrent(t *testing.T) {
	forEachBackend(t, func(t *testing.T, base string, store archiveBackend) {
		p := archivingPrimary(t, store, base, "primary")
		p.Pgbench("-i", "-s", "1", "-q")
		switchAndArchive(t, p)
		var wg sync.WaitGroup
		runs := make([]result, 2)
		for i := range runs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				args := append(append([]string{"backup", "create"}, store.flags()...), "-d", p.ConnString(), "--checkpoint", "fast")
				runs[i] = walship(t, runOpts{env: store.env()}, "walship", args...)
			}()
		}
		wg.Wait()
		ids := map[string]bool{}
		for _, r := range runs {
			m := backupID.FindStringSubmatch(r.stdout)
			if r.code != 0 || m == nil {
				t.Fatalf("concurrent walship backup create: %s", r)
			}
			ids[m[1]] = true
		}
		if len(ids) != 2 {
			t.Errorf("two concurrent backups got the IDs %v, want two distinct", ids)
		}
		restorable := 0
		for _, b := range backupList(t, store) {
			if ids[b.ID] && b.Stored && b.Restorable {
				restorable++
			}
		}
		if restorable != 2 {
			t.Errorf("backup list: %d of the two concurrent backups stored and restorable: %+v", restorable, backupList(t, store))
		}
		for _, k := range backupKeys(t, store) {
			if o, ok := repo.ParseBackupKey(k); ok && o.Part == repo.ClaimPart {
				t.Errorf("a claim is left: %s", k)
			}
		}
	})
}

// TestBackupCreateSays: walship backup create says at once, on stderr,
// that it waits for the server's checkpoint (spread by default, and how
// to hurry), then that the backup started; stdout is the summary alone.
// The backup's ID is when the server started it (its label's START TIME),
// and backup list shows its label.
func TestBackupCreateSays(t *testing.T) {
	pgtest.Require(t)
	base := pgtest.Dir(t)
	store := localBackend{dir: filepath.Join(base, "repo")}
	p := archivingPrimary(t, store, base, "primary")
	switchAndArchive(t, p)
	cmd := walshipCmd(t, runOpts{}, "walship", "backup", "create", "--repo", store.dir, "-d", p.ConnString(), "--label", "nightly run")
	var stdout, stderr syncBuffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pgtest.Eventually(t, 30*time.Second, "the line that says it waits for the checkpoint", func() bool {
		return strings.Contains(stderr.String(), "waiting for the server's checkpoint")
	})
	if err := cmd.Wait(); err != nil {
		t.Fatalf("walship backup create: %v\n%s", err, stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], "spread") || !strings.Contains(lines[0], "--checkpoint fast") ||
		!strings.Contains(lines[1], "started at") {
		t.Errorf("stderr %q: want the checkpoint's wait (spread, --checkpoint fast to hurry), then the start", stderr.String())
	}
	m := backupID.FindStringSubmatch(stdout.String())
	if m == nil || strings.Count(stdout.String(), "\n") != 1 {
		t.Fatalf("stdout %q: want the summary alone", stdout.String())
	}
	r := walship(t, runOpts{}, "walship", "backup", "list", "--repo", store.dir, "--json")
	var list []struct {
		ID        string `json:"id"`
		StartTime string `json:"start_time"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil || len(list) != 1 || list[0].ID != m[1] {
		t.Fatalf("walship backup list --json: %s (%v)", r, err)
	}
	st := list[0]
	id, _ := repo.ParseBackupID(m[1])
	started, err := time.Parse(time.RFC3339, st.StartTime)
	if err != nil || id.Time().Sub(started).Abs() > time.Second {
		t.Errorf("backup %s started at %q (its label's START TIME): the ID is not when it started (%v)", m[1], st.StartTime, err)
	}
	r = walship(t, runOpts{}, "walship", "backup", "list", "--repo", store.dir)
	if !strings.Contains(r.stdout, "nightly run") || !strings.Contains(r.stdout, "LABEL") {
		t.Errorf("walship backup list does not show the label:\n%s", r.stdout)
	}
}

// syncBuffer is a buffer a process writes to while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestBackupCreateFailsAfterTheServer: a backup refused after the server
// ended it (the server archives elsewhere, so the repository holds none of
// its WAL) removes what it stored: no object is left under backups/.
func TestBackupCreateFailsAfterTheServer(t *testing.T) {
	pgtest.Require(t)
	base := pgtest.Dir(t)
	store := localBackend{dir: filepath.Join(base, "repo")}
	p := newCluster(t, store, base, "primary")
	p.Conf("archive_mode = on", "archive_command = 'true'")
	p.Start()
	r := walship(t, runOpts{}, "walship", "backup", "create", "--repo", store.dir, "-d", p.ConnString(), "--checkpoint", "fast")
	lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
	if r.code != 1 || !strings.Contains(lines[len(lines)-1], "holds no WAL of this cluster") || !strings.Contains(r.stderr, "started at") {
		t.Errorf("a backup into a repository the server does not archive into: %s, want exit 1 once the server ended it", r)
	}
	if keys := backupKeys(t, store); len(keys) != 0 {
		t.Errorf("the refused backup left %v", keys)
	}
}

// TestBackupCreateWaitsForItsLastSegment: a primary that archives into the
// repository ends its backup at once and walship waits for the backup's
// last segment in the repository itself; while archive_command fails
// (the repository's WAL directories not writable), create does not end,
// says after 10 s what it waits for, and ends with a restorable backup
// once archiving works again; one killed while it waits leaves nothing
// listed as a backup. In a clear repository and in an encrypted one
// (where the planted segment is told apart by its digest).
func TestBackupCreateWaitsForItsLastSegment(t *testing.T) {
	pgtest.Require(t)
	for _, encrypted := range []bool{false, true} {
		t.Run(map[bool]string{false: "clear", true: "encrypted"}[encrypted], func(t *testing.T) { waitsForItsLastSegment(t, encrypted) })
	}
}

func waitsForItsLastSegment(t *testing.T, encrypted bool) {
	base := pgtest.Dir(t)
	store := localBackend{dir: filepath.Join(base, "repo")}
	var key []string // the recipient, in an encrypted repository
	if encrypted {
		rcpt, _, _ := ageKey(t, base, "k")
		key = []string{"--recipient", rcpt}
	}
	p := archivingPrimary(t, store, base, "primary", key...)
	switchAndArchive(t, p)
	walDirs := func(mode os.FileMode) {
		t.Helper()
		err := filepath.WalkDir(filepath.Join(store.dir, "wal"), func(path string, d fs.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				err = os.Chmod(path, mode)
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	walDirs(0o500)
	defer walDirs(0o700)
	// start runs walship backup create until it says it waits for the
	// backup's last segment.
	start := func() (cmd *exec.Cmd, stdout, stderr *syncBuffer, done chan error) {
		t.Helper()
		cmd = walshipCmd(t, runOpts{}, "walship", append([]string{"backup", "create", "--repo", store.dir, "-d", p.ConnString(), "--checkpoint", "fast"}, key...)...)
		stdout, stderr = &syncBuffer{}, &syncBuffer{}
		cmd.Stdout, cmd.Stderr = stdout, stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done = make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		pgtest.Eventually(t, time.Minute, "the line that says it waits for the backup's last segment", func() bool {
			return strings.Contains(stderr.String(), "still waiting for the server to archive")
		})
		select {
		case err := <-done:
			t.Fatalf("walship backup create ended while archive_command failed: %v\n%s%s", err, stdout.String(), stderr.String())
		default:
		}
		return cmd, stdout, stderr, done
	}
	// Killed with SIGKILL while it waits: nothing counts as a backup.
	cmd, _, _, done := start()
	cmd.Process.Kill()
	<-done
	if list := backupList(t, store); len(list) != 0 {
		t.Errorf("after a create killed while it waited for its last segment, backup list shows %+v", list)
	}
	// An object planted under the awaited segment's name (another
	// segment's, copied by someone who can write to the storage) does not
	// end the wait as if the segment were archived: create fails, saying
	// so, and nothing counts as a backup.
	_, _, stderr, done := start()
	m := regexp.MustCompile(`archive ([0-9A-F]{24}), the backup's last segment`).FindStringSubmatch(stderr.String())
	if m == nil {
		t.Fatalf("no segment named in %q", stderr.String())
	}
	dir := filepath.Join(store.dir, "wal", m[1][:16])
	ents, err := os.ReadDir(dir)
	if err != nil || len(ents) == 0 {
		t.Fatalf("no stored segment to copy in %s: %v", dir, err)
	}
	ext := filepath.Ext(ents[0].Name())
	planted := filepath.Join(dir, m[1]+ext)
	if data, err := os.ReadFile(filepath.Join(dir, ents[0].Name())); err != nil || os.WriteFile(planted, data, 0o600) != nil {
		t.Fatalf("planting %s: %v", planted, err)
	}
	chownTree(t, planted) // written by the repository's own user
	select {
	case err := <-done:
		if err == nil || !strings.Contains(stderr.String(), "with other content than the server's pg_wal") {
			t.Errorf("create with a planted last segment: %v, stderr %q; want a failure saying the content differs", err, stderr.String())
		}
	case <-time.After(time.Minute):
		t.Fatalf("walship backup create did not end once its last segment's name was taken:\n%s", stderr.String())
	}
	if list := backupList(t, store); len(list) != 0 {
		t.Errorf("after a create that found a planted last segment, backup list shows %+v", list)
	}
	if err := os.Remove(planted); err != nil {
		t.Fatal(err)
	}
	cmd, stdout, stderr, done := start()
	walDirs(0o700)
	// A new ready file wakes the archiver from its wait after failures.
	p.Query("CREATE TABLE wake ()")
	p.Query("SELECT pg_switch_wal()")
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("walship backup create: %v\n%s", err, stderr.String())
		}
	case <-time.After(2 * time.Minute):
		cmd.Process.Kill()
		t.Fatalf("walship backup create did not end once archiving worked again:\n%s", stderr.String())
	}
	if !strings.HasSuffix(strings.TrimSpace(stdout.String()), "; restorable") {
		t.Errorf("stdout %q: want a restorable backup", stdout.String())
	}
}
