package backup

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/walship/walship/pgdata"
)

// settingsOf reads the settings a file holds, as the server would.
func settingsOf(t *testing.T, path string) map[string]string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, line := range strings.Split(string(data), "\n") {
		s, err := pgdata.ParseLine(line)
		if err != nil {
			t.Fatalf("%s: %q: %v", path, line, err)
		}
		if s.Name != "" {
			out[s.Name] = s.Value
		}
	}
	return out
}

func exists(dir, name string) bool { _, err := os.Stat(filepath.Join(dir, name)); return err == nil }

const cmd = "/usr/local/bin/walship-restore --repo=/var/lib/walship %f %p"

func TestRecoveryPITR(t *testing.T) {
	dir := t.TempDir()
	// What pg_basebackup copied from the primary stays, but what walship sets.
	os.WriteFile(filepath.Join(dir, pgdata.AutoConfFile), []byte("work_mem = '64MB'\nrestore_command = 'cp /old/%f %p'\n"), 0o600)
	at := time.Date(2024, 1, 2, 3, 4, 5, 678000000, time.FixedZone("CET", 3600))
	rc := recovery{version: pgdata.Version{Text: "15", Major: 15}, restoreCommand: cmd,
		target: Target{Kind: TargetTime, Time: at}, action: "pause",
		extra: []pgdata.Setting{{Name: "port", Value: "5433"}}}
	if _, err := rc.write(rootOf(t, dir)); err != nil {
		t.Fatal(err)
	}
	got := settingsOf(t, filepath.Join(dir, pgdata.AutoConfFile))
	want := map[string]string{"work_mem": "64MB", "restore_command": cmd, "recovery_target_time": "2024-01-02 02:04:05.678+00",
		"recovery_target_action": "pause", "recovery_target_timeline": "latest", "archive_mode": "off", "port": "5433"}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	if !exists(dir, "recovery.signal") || exists(dir, "standby.signal") {
		t.Error("want recovery.signal alone")
	}
	// Kept archiving: archive_mode is left as the backup has it.
	dir = t.TempDir()
	rc.keepArchiving = true
	rc.write(rootOf(t, dir))
	if _, ok := settingsOf(t, filepath.Join(dir, pgdata.AutoConfFile))["archive_mode"]; ok {
		t.Error("archive_mode set although the copy keeps archiving")
	}
}

// A backup of a copy that was itself restored to a target carries that
// target in its postgresql.auto.conf: a restore to the latest, or as a
// standby, takes it out (it would stop the recovery before the backup is
// even consistent).
func TestRecoveryDropsAnOldTarget(t *testing.T) {
	for _, rc := range []recovery{
		{version: pgdata.Version{Text: "17", Major: 17}, restoreCommand: cmd},
		{version: pgdata.Version{Text: "17", Major: 17}, restoreCommand: cmd, standby: true},
	} {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, pgdata.AutoConfFile), []byte("work_mem = '64MB'\nrecovery_target_lsn = '0/50000F8'\nrecovery_target_action = 'promote'\n"), 0o600)
		if _, err := rc.write(rootOf(t, dir)); err != nil {
			t.Fatal(err)
		}
		got := settingsOf(t, filepath.Join(dir, pgdata.AutoConfFile))
		if _, ok := got["recovery_target_lsn"]; ok || got["recovery_target_action"] != "" || got["work_mem"] != "64MB" {
			t.Errorf("standby %v: %v, want the old target gone and the rest kept", rc.standby, got)
		}
	}
}

func TestRecoveryStandbys(t *testing.T) {
	v15 := pgdata.Version{Text: "15", Major: 15}
	// Streaming.
	dir := t.TempDir()
	rc := recovery{version: v15, restoreCommand: cmd, standby: true, primaryConnInfo: "host=new port=5432", slot: "a"}
	rc.write(rootOf(t, dir))
	got := settingsOf(t, filepath.Join(dir, pgdata.AutoConfFile))
	if got["primary_conninfo"] != "host=new port=5432" || got["primary_slot_name"] != "a" || got["restore_command"] != cmd ||
		got["recovery_target_timeline"] != "latest" || got["archive_mode"] != "" || !exists(dir, "standby.signal") || exists(dir, "recovery.signal") {
		t.Errorf("streaming standby: %v, standby.signal %v", got, exists(dir, "standby.signal"))
	}
	// Archive only, with a trigger file: archive recovery.
	dir = t.TempDir()
	rc = recovery{version: v15, restoreCommand: cmd + " --standby", standby: true, trigger: "/run/promote"}
	rc.write(rootOf(t, dir))
	got = settingsOf(t, filepath.Join(dir, pgdata.AutoConfFile))
	if got["recovery_prefetch"] != "off" || got["primary_conninfo"] != "" || !exists(dir, "recovery.signal") || exists(dir, "standby.signal") {
		t.Errorf("archive-only standby with a trigger: %v", got)
	}
	// Archive only, promoted by pg_ctl promote: standby mode.
	dir = t.TempDir()
	rc.trigger = ""
	rc.write(rootOf(t, dir))
	if !exists(dir, "standby.signal") {
		t.Error("archive-only standby without a trigger: no standby.signal")
	}
}

// Before 12 the settings go into recovery.conf.
func TestRecoveryBefore12(t *testing.T) {
	v11 := pgdata.Version{Text: "11", Major: 11}
	dir := t.TempDir()
	rc := recovery{version: v11, restoreCommand: cmd, target: Target{Kind: TargetName, Name: "before"}, action: "promote"}
	rc.write(rootOf(t, dir))
	got := settingsOf(t, filepath.Join(dir, "recovery.conf"))
	if got["restore_command"] != cmd || got["recovery_target_name"] != "before" || got["recovery_target_action"] != "promote" || got["standby_mode"] != "" {
		t.Errorf("recovery.conf: %v", got)
	}
	if exists(dir, "recovery.signal") || settingsOf(t, filepath.Join(dir, pgdata.AutoConfFile))["archive_mode"] != "off" {
		t.Error("before 12: want no signal file and archive_mode = off in postgresql.auto.conf")
	}
	dir = t.TempDir()
	rc = recovery{version: v11, restoreCommand: cmd, standby: true, primaryConnInfo: "host=new"}
	rc.write(rootOf(t, dir))
	got = settingsOf(t, filepath.Join(dir, "recovery.conf"))
	if got["standby_mode"] != "on" || got["primary_conninfo"] != "host=new" {
		t.Errorf("recovery.conf of a standby: %v", got)
	}
}

func TestParseTime(t *testing.T) {
	want := time.Date(2024, 1, 2, 2, 4, 5, 0, time.UTC)
	for _, s := range []string{"2024-01-02T03:04:05+01:00", "2024-01-02T02:04:05Z", "2024-01-02 03:04:05+01", "2024-01-02 02:04:05 UTC", "2024-01-02 03:04:05+01:00"} {
		got, err := ParseTime(s)
		if err != nil || !got.Equal(want) {
			t.Errorf("ParseTime(%q) = %v, %v; want %v", s, got, err, want)
		}
	}
	if _, err := ParseTime("yesterday"); err == nil {
		t.Error("ParseTime(yesterday) succeeded")
	}
}

// rootOf opens dir as a root for the test.
func rootOf(t *testing.T, dir string) *os.Root {
	t.Helper()
	r, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}
