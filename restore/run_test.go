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

func TestIsStandby(t *testing.T) {
	const restore = "restore_command = 'walship-restore --repo /archive %f %p'\n"
	tests := []struct {
		name  string
		files map[string]string
		want  bool
	}{
		{"nothing", nil, false},
		{"standby.signal", map[string]string{"standby.signal": ""}, true},
		{"standby.signal beside recovery.signal", map[string]string{"standby.signal": "", "recovery.signal": ""}, true},
		{"recovery.signal: archive recovery", map[string]string{"recovery.signal": ""}, false},
		{"recovery.conf standby_mode = 'on'", map[string]string{"recovery.conf": restore + "standby_mode = 'on'\n"}, true},
		{"recovery.conf standby_mode = on", map[string]string{"recovery.conf": "standby_mode = on\n" + restore}, true},
		{"recovery.conf standby_mode=true", map[string]string{"recovery.conf": "standby_mode=true"}, true},
		{"recovery.conf standby_mode = 'yes', comment", map[string]string{"recovery.conf": "standby_mode = 'yes' # a standby\n"}, true},
		{"recovery.conf standby_mode = \"1\"", map[string]string{"recovery.conf": "standby_mode = \"1\"\n"}, true},
		{"recovery.conf ON in capitals, tabs, CRLF", map[string]string{"recovery.conf": "\tstandby_mode\t=\t'ON'\r\n"}, true},
		{"recovery.conf standby_mode = 'off'", map[string]string{"recovery.conf": restore + "standby_mode = 'off'\n"}, false},
		{"recovery.conf standby_mode = off, comment says on", map[string]string{"recovery.conf": "standby_mode = off # on one day\n"}, false},
		{"recovery.conf standby_mode = false", map[string]string{"recovery.conf": "standby_mode = false\n"}, false},
		{"recovery.conf standby_mode missing", map[string]string{"recovery.conf": restore + "recovery_target_timeline = 'latest'\n"}, false},
		{"recovery.conf standby_mode commented out", map[string]string{"recovery.conf": "#standby_mode = 'on'\n" + restore}, false},
		{"recovery.conf other setting mentions it", map[string]string{"recovery.conf": "trigger_file = '/tmp/standby_mode = on'\n"}, false},
		{"recovery.conf empty", map[string]string{"recovery.conf": ""}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := dataDirWith(t, tt.files)
			if got := isStandby(dir); got != tt.want {
				t.Errorf("isStandby = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestIsStandbyCurrentDirectory(t *testing.T) {
	// restore_command runs in the data directory: "" means ".".
	t.Chdir(dataDirWith(t, map[string]string{"standby.signal": ""}))
	if !isStandby("") {
		t.Error("isStandby(\"\") = false in a directory with standby.signal")
	}
	t.Chdir(dataDirWith(t, map[string]string{"recovery.signal": ""}))
	if isStandby("") {
		t.Error("isStandby(\"\") = true in a directory without standby.signal")
	}
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
