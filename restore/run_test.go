package restore

import (
	"context"
	"encoding/binary"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/walship/walship/repo"
	"github.com/walship/walship/storage"
	"github.com/walship/walship/storage/local"
	"github.com/walship/walship/storage/storagetest"
	"github.com/walship/walship/wal"
)

// dataDirWith makes a data directory holding the given files.
func dataDirWith(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestPolicy(t *testing.T) {
	standby := dataDirWith(t, map[string]string{"standby.signal": ""})
	recovery := dataDirWith(t, map[string]string{"recovery.signal": ""})
	oldStandby := dataDirWith(t, map[string]string{"recovery.conf": "standby_mode = 'on'\n"})
	tests := []struct {
		policy, dataDir string
		want            bool
	}{
		{"abort", standby, true},
		{"abort", recovery, true},
		{"missing", standby, false},
		{"missing", recovery, false},
		{"auto", standby, false}, // the server retries: "not found" is right
		{"auto", oldStandby, false},
		{"auto", recovery, true}, // archive recovery would end early and lose the tail
		{"", standby, false},
		{"", recovery, true},
	}
	cause := errors.New("connection refused")
	for _, tt := range tests {
		p, err := ParsePolicy(tt.policy)
		if err != nil {
			t.Fatalf("ParsePolicy(%q): %v", tt.policy, err)
		}
		var re *ReadError
		err = Request{OnError: p, DataDir: tt.dataDir}.Fail(cause)
		if !errors.As(err, &re) || re.Abort != tt.want || !errors.Is(err, cause) {
			t.Errorf("policy %q in %s: Fail = %#v; want a ReadError with Abort %v", tt.policy, filepath.Base(tt.dataDir), err, tt.want)
		}
	}
	for _, bad := range []string{"fail", "Abort", "ignore", "1"} {
		if _, err := ParsePolicy(bad); err == nil {
			t.Errorf("ParsePolicy(%q) = nil error", bad)
		}
	}
}

func TestReadErrorMessage(t *testing.T) {
	cause := errors.New("connection refused")
	for abort, want := range map[bool]string{true: "aborting recovery", false: "not found"} {
		e := &ReadError{Err: cause, Abort: abort}
		if msg := e.Error(); !strings.Contains(msg, cause.Error()) || !strings.Contains(msg, want) {
			t.Errorf("ReadError{Abort: %v} = %q, want the cause and %q", abort, msg, want)
		}
		if !errors.Is(e, cause) {
			t.Errorf("ReadError{Abort: %v} does not unwrap to its cause", abort)
		}
	}
}

// The server's probes for history files during a recovery with a spool
// read the repository's identity from the spool's cache, as its segment
// requests do: on an object store each probe then costs one request, not
// two. pg_rewind's requests (named files) never use it.
func TestHistoryProbesUseTheIdentityCache(t *testing.T) {
	files, _ := segments(t, 1, 1)
	root := archived(t, repo.LayoutWalship, repo.CodecLZ4, files)
	b, err := local.New(root)
	if err != nil {
		t.Fatal(err)
	}
	var reads []string
	f := &storagetest.Faulty{Backend: b, Before: func(op, key string) {
		if op == "open" || op == "stat" {
			reads = append(reads, key)
		}
	}}
	p := Prefetch{N: 4, Spool: t.TempDir()}
	pgWal := dataDir(t)
	probe := func(dest string) []string {
		reads = nil
		req := Request{Name: parseName(t, "00000002.history"), Dest: filepath.Join(pgWal, dest), DataDir: filepath.Dir(pgWal), Prefetch: p}
		// As walship-restore opens it for the request.
		_, err := Run(context.Background(), repo.New(f, repo.Options{Layout: repo.LayoutAuto, Cache: req.IdentityCache(f.String())}), req)
		if !storage.IsNotExist(err) {
			t.Fatalf("probe into %s: %v, want not found", dest, err)
		}
		return reads
	}
	probe("RECOVERYHISTORY") // reads the identity and caches it
	if got := probe("RECOVERYHISTORY"); slices.Contains(got, repo.IdentityKey) {
		t.Errorf("a second history probe read %s from the store (%v); want it from the spool's cache", repo.IdentityKey, got)
	}
	if got := probe("00000002.history"); !slices.Contains(got, repo.IdentityKey) {
		t.Errorf("a request naming its file (pg_rewind) did not read %s from the store (%v)", repo.IdentityKey, got)
	}
}

// pgControl is the start of a pg_control file of the cluster sysid.
func pgControl(sysid uint64) string {
	b := binary.NativeEndian.AppendUint64(nil, sysid)
	return string(binary.NativeEndian.AppendUint32(b, 1300)) + strings.Repeat("\x00", 500)
}

// The server never gets another cluster's WAL, whatever the cache beside
// it says: a repository replaced at the same location by another
// cluster's, while the identity cache and the prefetch spool still hold
// the first one's (here the first cluster's spooled segment and cached
// walship.json, served to the second cluster's server). The call checks
// the repository's cluster against the server's pg_control and refuses,
// writing nothing.
func TestServerGetsOnlyItsClusterWAL(t *testing.T) {
	ctx := context.Background()
	files, names := segments(t, 1, 3)
	root := archived(t, repo.LayoutWalship, repo.CodecLZ4, files)
	spool := t.TempDir()
	data := dataDirWith(t, map[string]string{"recovery.signal": "", "PG_VERSION": "15\n"})
	os.MkdirAll(filepath.Join(data, "global"), 0o700)
	os.Mkdir(filepath.Join(data, "pg_wal"), 0o700)
	call := func(name string) (Result, error) {
		req := Request{Name: parseName(t, name), Dest: filepath.Join(data, "pg_wal", "RECOVERYXLOG"), DataDir: data,
			Prefetch: Prefetch{N: 2, Spool: spool}}
		b, err := local.New(root)
		if err != nil {
			t.Fatal(err)
		}
		return Run(ctx, repo.New(b, repo.Options{Cache: req.IdentityCache(b.String())}), req)
	}
	// The first cluster's server restores a segment: the identity is
	// cached, the next ones are spooled.
	os.WriteFile(filepath.Join(data, "global", "pg_control"), []byte(pgControl(sysID)), 0o600)
	if _, err := call(names[0]); err != nil {
		t.Fatal(err)
	}
	p := Prefetch{N: 2, Spool: spool}
	if err := p.Fill(ctx, openRepo(t, root, repo.LayoutAuto), parseName(t, names[0]), segSize); err != nil {
		t.Fatal(err)
	}
	// Now the data directory is another cluster's (the repository it
	// reads was replaced): the cached identity and the spool still say
	// the first.
	os.WriteFile(filepath.Join(data, "global", "pg_control"), []byte(pgControl(sysID+1)), 0o600)
	os.Remove(filepath.Join(data, "pg_wal", "RECOVERYXLOG"))
	_, err := call(names[1])
	var re *ReadError
	if !errors.As(err, &re) || !re.Abort || !errors.Is(err, wal.ErrOtherCluster) {
		t.Fatalf("a segment for another cluster's server: %v, want an aborting ReadError of another cluster", err)
	}
	if _, err := os.Stat(filepath.Join(data, "pg_wal", "RECOVERYXLOG")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("%%p was written: %v", err)
	}
}
