package restore

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestPromotionWarning: a server in archive recovery whose configuration
// (as pg_basebackup copied it) archives into the repository it restores
// from is warned; one that does not archive, archives elsewhere, or is a
// standby is not.
func TestPromotionWarning(t *testing.T) {
	root := archived(t, "", "", map[string][]byte{"000000010000000000000001": fakeSegment(t, "000000010000000000000001", sysID, 1)})
	r := openRepo(t, root, "")
	conf := filepath.Join(t.TempDir(), "walship.toml")
	os.WriteFile(conf, []byte("repo = '"+root+"'\n"), 0o600)
	line := func(repoFlags string) string {
		return "archive_command = '/usr/local/bin/walship-archive " + repoFlags + " %p %f'\n"
	}
	for _, tc := range []struct {
		what  string
		files map[string]string
		warn  bool
	}{
		{"a PITR copy with the primary's settings", map[string]string{"recovery.signal": "", "PG_VERSION": "15\n",
			"postgresql.conf": "archive_mode = on\n" + line("--repo "+root)}, true},
		{"archive_mode = always, the repository from a config file", map[string]string{"recovery.signal": "", "PG_VERSION": "15\n",
			"postgresql.conf": "archive_mode = 'always'\n" + line("--config "+conf)}, true},
		{"ALTER SYSTEM turned archiving on", map[string]string{"recovery.signal": "", "PG_VERSION": "15\n",
			"postgresql.conf": line("--repo=file://" + root), "postgresql.auto.conf": "archive_mode = 'on'\n"}, true},
		{"archive_mode = off", map[string]string{"recovery.signal": "", "PG_VERSION": "15\n",
			"postgresql.conf": "archive_mode = on\n" + line("--repo "+root) + "archive_mode = off\n"}, false},
		{"another repository", map[string]string{"recovery.signal": "", "PG_VERSION": "15\n",
			"postgresql.conf": "archive_mode = on\n" + line("--repo "+root+"-copy")}, false},
		{"a standby", map[string]string{"standby.signal": "", "recovery.signal": "", "PG_VERSION": "15\n",
			"postgresql.conf": "archive_mode = on\n" + line("--repo "+root)}, false},
		{"no recovery at all (pg_rewind's working directory)", map[string]string{"PG_VERSION": "15\n",
			"postgresql.conf": "archive_mode = on\n" + line("--repo "+root)}, false},
		{"archive_command without walship-archive", map[string]string{"recovery.signal": "", "PG_VERSION": "15\n",
			"postgresql.conf": "archive_mode = on\narchive_command = 'cp %p " + root + "/%f'\n"}, false},
	} {
		msg := PromotionWarning(dataDirWith(t, tc.files), r)
		if (msg != "") != tc.warn {
			t.Errorf("%s: warning %q, want one: %v", tc.what, msg, tc.warn)
		}
		if msg != "" && (!strings.Contains(msg, "archive_mode = off") || !strings.Contains(msg, root)) {
			t.Errorf("%s: warning %q does not name the repository and archive_mode = off", tc.what, msg)
		}
	}
}

// TestRunWarnsAtRecoveryStart: Run logs the warning for the calls that
// start a recovery (a history file, or while backup_label is there), not
// for every segment.
func TestRunWarnsAtRecoveryStart(t *testing.T) {
	seg := "000000010000000000000001"
	root := archived(t, "", "", map[string][]byte{seg: fakeSegment(t, seg, sysID, 1)})
	data := dataDirWith(t, map[string]string{"recovery.signal": "", "PG_VERSION": "15\n",
		"postgresql.conf": "archive_mode = on\narchive_command = 'walship-archive --repo " + root + " %p %f'\n"})
	os.Mkdir(filepath.Join(data, "pg_wal"), 0o700)
	var log bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&log, &slog.HandlerOptions{Level: slog.LevelWarn}))
	call := func(name string) string {
		t.Helper()
		log.Reset()
		Run(context.Background(), openRepo(t, root, ""), Request{Name: parseName(t, name), Dest: filepath.Join(data, "pg_wal", "RECOVERYXLOG"), DataDir: data, Log: logger})
		return log.String()
	}
	if got := call("00000002.history"); !strings.Contains(got, "archive_mode = off") {
		t.Errorf("history probe at the start: log %q, want the warning", got)
	}
	if got := call(seg); got != "" {
		t.Errorf("a segment later on: log %q, want nothing", got)
	}
	os.WriteFile(filepath.Join(data, "backup_label"), []byte("START WAL LOCATION: 0/1000028 (file "+seg+")\n"), 0o600)
	if got := call(seg); !strings.Contains(got, "archive_mode = off") {
		t.Errorf("first segment with backup_label: log %q, want the warning", got)
	}
}
