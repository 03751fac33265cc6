package archsim

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

// An archiver that marks the next file .done itself (as WAL-G's
// concurrent wal-push does) is not called for it, and the run ends with
// every file .done.
func TestRunSkipsFilesMarkedDoneByTheCommand(t *testing.T) {
	data := t.TempDir()
	status := filepath.Join(data, "pg_wal", "archive_status")
	if err := os.MkdirAll(status, 0o700); err != nil {
		t.Fatal(err)
	}
	names := []string{"000000010000000000000001", "000000010000000000000002", "000000010000000000000003"}
	for _, n := range names {
		os.WriteFile(filepath.Join(data, "pg_wal", n), []byte(n), 0o600)
		os.WriteFile(filepath.Join(status, n+".ready"), nil, 0o600)
	}
	log := filepath.Join(t.TempDir(), "calls")
	// Archives %f, and marks the following file done as well (and the
	// file itself, which the server tolerates).
	script := `echo "$2" >> ` + log + `; for f in pg_wal/archive_status/*.ready; do mv "$f" "${f%.ready}.done"; break; done; ` +
		`n=$(ls pg_wal/archive_status/*.ready 2>/dev/null | head -n 1); [ -z "$n" ] || mv "$n" "${n%.ready}.done"`
	st, err := Run(context.Background(), data, Argv("sh", "-c", script, "sh", "%p", "%f"))
	if err != nil {
		t.Fatal(err)
	}
	calls, _ := os.ReadFile(log)
	if want := names[0] + "\n" + names[2] + "\n"; string(calls) != want {
		t.Errorf("calls %q, want %q", calls, want)
	}
	if st.Archived != 2 || st.Skipped != 1 || st.Failures != 0 {
		t.Errorf("stats %+v, want 2 archived, 1 skipped", st)
	}
	for _, n := range names {
		if _, err := os.Stat(filepath.Join(status, n+".done")); err != nil {
			t.Errorf("%s is not done: %v", n, err)
		}
	}
}
