package restore

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
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
