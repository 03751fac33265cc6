package pgdata

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// dataDirWith makes a data directory holding the given files.
func dataDirWith(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	writeFiles(t, dir, files)
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
		// PostgreSQL has no double-quoted values: the server refuses this
		// recovery.conf (syntax error), so it sets nothing.
		{"recovery.conf standby_mode = \"1\"", map[string]string{"recovery.conf": "standby_mode = \"1\"\n"}, false},
		{"recovery.conf standby_mode = '1'", map[string]string{"recovery.conf": "standby_mode = '1'\n"}, true},
		{"recovery.conf standby_mode 1, no equals sign", map[string]string{"recovery.conf": "standby_mode 1\n"}, true},
		{"recovery.conf ON in capitals, tabs, CRLF", map[string]string{"recovery.conf": "\tstandby_mode\t=\t'ON'\r\n"}, true},
		{"recovery.conf standby_mode = 'off'", map[string]string{"recovery.conf": restore + "standby_mode = 'off'\n"}, false},
		{"recovery.conf standby_mode = off, comment says on", map[string]string{"recovery.conf": "standby_mode = off # on one day\n"}, false},
		{"recovery.conf standby_mode = false", map[string]string{"recovery.conf": "standby_mode = false\n"}, false},
		{"recovery.conf standby_mode missing", map[string]string{"recovery.conf": restore + "recovery_target_timeline = 'latest'\n"}, false},
		{"recovery.conf standby_mode commented out", map[string]string{"recovery.conf": "#standby_mode = 'on'\n" + restore}, false},
		{"recovery.conf other setting mentions it", map[string]string{"recovery.conf": "trigger_file = '/tmp/standby_mode = on'\n"}, false},
		{"recovery.conf empty", map[string]string{"recovery.conf": ""}, false},
		{"recovery.conf last one wins", map[string]string{"recovery.conf": "standby_mode = on\nstandby_mode = off\n"}, false},
		{"recovery.conf last one wins, on", map[string]string{"recovery.conf": "standby_mode = off\nstandby_mode = on\n"}, true},
		{"recovery.conf escaped", map[string]string{"recovery.conf": `standby_mode = '\157n'` + "\n"}, true},
		{"recovery.conf prefix t", map[string]string{"recovery.conf": "standby_mode = t\n"}, true},
		{"recovery.conf not a boolean", map[string]string{"recovery.conf": "standby_mode = 'maybe'\n"}, false},
		{"recovery.conf through include", map[string]string{"recovery.conf": "include 'standby.conf'\n", "standby.conf": "standby_mode = on\n"}, true},
		{"recovery.conf, PostgreSQL 11", map[string]string{"recovery.conf": "standby_mode = on\n", "PG_VERSION": "11\n"}, true},
		{"recovery.conf, PostgreSQL 12 does not read it", map[string]string{"recovery.conf": "standby_mode = on\n", "PG_VERSION": "12\n"}, false},
		{"standby.signal, PostgreSQL 15", map[string]string{"standby.signal": "", "PG_VERSION": "15\n"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := dataDirWith(t, tt.files)
			if got := IsStandby(dir); got != tt.want {
				t.Errorf("IsStandby = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestIsStandbyCurrentDirectory(t *testing.T) {
	// restore_command runs in the data directory: "" means ".".
	t.Chdir(dataDirWith(t, map[string]string{"standby.signal": ""}))
	if !IsStandby("") {
		t.Error("IsStandby(\"\") = false in a directory with standby.signal")
	}
	t.Chdir(dataDirWith(t, map[string]string{"recovery.signal": ""}))
	if IsStandby("") {
		t.Error("IsStandby(\"\") = true in a directory without standby.signal")
	}
	t.Chdir(dataDirWith(t, map[string]string{"recovery.conf": "standby_mode = on\n"}))
	if !IsStandby("") {
		t.Error("IsStandby(\"\") = false in a directory whose recovery.conf has standby_mode = on")
	}
}

func TestSignalFiles(t *testing.T) {
	dir := dataDirWith(t, nil)
	if HasStandbySignal(dir) || HasRecoverySignal(dir) || PromoteRequested(dir) {
		t.Error("empty directory has signal files")
	}
	writeFiles(t, dir, map[string]string{"standby.signal": "", "recovery.signal": "", "promote": ""})
	if !HasStandbySignal(dir) || !HasRecoverySignal(dir) || !PromoteRequested(dir) {
		t.Error("signal files not seen")
	}
}

func TestParseBool(t *testing.T) {
	for in, want := range map[string]bool{
		"on": true, "ON": true, "off": false, "Off": false, "of": false, "true": true, "t": true, "TR": true,
		"false": false, "f": false, "fal": false, "yes": true, "y": true, "no": false, "n": false, "1": true, "0": false,
	} {
		if got, ok := ParseBool(in); !ok || got != want {
			t.Errorf("ParseBool(%q) = %v, %v; want %v", in, got, ok, want)
		}
	}
	for _, bad := range []string{"", "o", "onn", "offf", "truex", "2", "01", "10", " on", "on ", "enable", "nope"} {
		if got, ok := ParseBool(bad); ok || got {
			t.Errorf("ParseBool(%q) = %v, %v; want not a boolean", bad, got, ok)
		}
	}
}

func TestReadyFiles(t *testing.T) {
	dir := t.TempDir()
	status := filepath.Join(dir, "pg_wal", "archive_status")
	os.MkdirAll(status, 0o700)
	old := time.Now().Add(-time.Hour).Truncate(time.Second)
	for name, at := range map[string]time.Time{
		"000000010000000000000003.ready": old,
		"000000010000000000000004.ready": old.Add(time.Minute),
		"000000010000000000000002.done":  old.Add(-time.Hour),
		"00000002.history.ready":         old.Add(2 * time.Minute),
	} {
		p := filepath.Join(status, name)
		os.WriteFile(p, nil, 0o600)
		os.Chtimes(p, at, at)
	}
	r, err := ReadyFiles(dir)
	if err != nil || r.Count != 3 || r.Oldest != "000000010000000000000003" || !r.OldestTime.Equal(old) {
		t.Errorf("ReadyFiles = %+v, %v; want 3, the oldest 000000010000000000000003 at %v", r, err, old)
	}
	if _, err := ReadyFiles(t.TempDir()); err == nil {
		t.Error("no pg_wal: no error")
	}
}
