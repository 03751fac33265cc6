package rewind

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// controlData15 is pg_controldata of a PostgreSQL 15 standby shut down in
// recovery on timeline 3 (edited from a real one: state, positions).
const controlData15 = `pg_control version number:            1300
Catalog version number:               202209061
Database system identifier:           7711306802725513768
Database cluster state:               shut down in recovery
pg_control last modified:             Mon Nov 23 10:08:46 2026
Latest checkpoint location:           0/5000060
Latest checkpoint's REDO location:    0/5000028
Latest checkpoint's REDO WAL file:    000000020000000000000005
Latest checkpoint's TimeLineID:       2
Latest checkpoint's PrevTimeLineID:   2
Latest checkpoint's full_page_writes: on
Latest checkpoint's NextXID:          0:724
Latest checkpoint's oldestCommitTsXid:0
Time of latest checkpoint:            Mon Nov 23 10:08:46 2026
Fake LSN counter for unlogged rels:   0/3E8
Minimum recovery ending location:     0/6001A8
Min recovery ending loc's timeline:   3
wal_level setting:                    replica
wal_log_hints setting:                on
Bytes per WAL segment:                16777216
Data page checksum version:           1
Mock authentication nonce:            4f4fe1d572ebea3533b71dbaa5123001b4f709dc7e3ecceccc64acf67499c192
`

func TestParseControlData(t *testing.T) {
	c, err := ParseControlData(controlData15)
	if err != nil {
		t.Fatal(err)
	}
	want := Control{
		SysID: 7711306802725513768, State: "shut down in recovery",
		Checkpoint: 0x5000060, Redo: 0x5000028, CheckpointTLI: 2,
		MinRecovery: 0x6001A8, MinRecoveryTLI: 3,
		WalLogHints: true, ChecksumVersion: 1, SegSize: 16 << 20, ControlVersion: 1300,
	}
	if c != want {
		t.Errorf("got  %+v\nwant %+v", c, want)
	}
	if c.TLI() != 3 {
		t.Errorf("TLI() = %d, want 3 (the minimum recovery point's timeline is later)", c.TLI())
	}
	if !c.CleanShutdown() {
		t.Error("shut down in recovery is a clean shutdown")
	}
	c.State = "in production"
	if c.CleanShutdown() {
		t.Error("in production is not a clean shutdown")
	}
}

func TestParseControlDataRejects(t *testing.T) {
	for name, in := range map[string]string{
		"empty":             "",
		"no identifier":     strings.Replace(controlData15, "Database system identifier", "Database system", 1),
		"translated labels": strings.ReplaceAll(controlData15, "Latest checkpoint", "Letzter Checkpoint"),
		"bad LSN":           strings.Replace(controlData15, "0/5000060", "zz", 1),
		"bad identifier":    strings.Replace(controlData15, "7711306802725513768", "-1", 1),
	} {
		if _, err := ParseControlData(in); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestVersions(t *testing.T) {
	for _, tc := range []struct {
		in    string
		text  string
		major int
	}{{"15\n", "15", 15}, {"9.6", "9.6", 9}, {" 12 ", "12", 12}} {
		v, err := ParseVersion(tc.in)
		if err != nil || v.Text != tc.text || v.Major != tc.major {
			t.Errorf("ParseVersion(%q) = %+v, %v", tc.in, v, err)
		}
	}
	for _, bad := range []string{"", "x", "0", "-3"} {
		if _, err := ParseVersion(bad); err == nil {
			t.Errorf("ParseVersion(%q): no error", bad)
		}
	}
	for num, want := range map[int]string{150004: "15", 100023: "10", 90624: "9.6", 90500: "9.5"} {
		if got := VersionFromNum(num).Text; got != want {
			t.Errorf("VersionFromNum(%d) = %s, want %s", num, got, want)
		}
	}
}

func TestToolVersion(t *testing.T) {
	dir := t.TempDir()
	for out, want := range map[string]string{
		"pg_rewind (PostgreSQL) 15.13 (Debian 15.13-0+deb12u1)": "15",
		"pg_rewind (PostgreSQL) 16beta1":                        "16",
		"pg_rewind (PostgreSQL) 9.6.24":                         "9.6",
	} {
		bin := filepath.Join(dir, "pg_rewind")
		if err := os.WriteFile(bin, []byte("#!/bin/sh\necho '"+out+"'\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		v, err := toolVersion(context.Background(), bin)
		if err != nil || v.Text != want {
			t.Errorf("%q: got %v, %v; want %s", out, v, err, want)
		}
	}
}

func TestPostmasterPID(t *testing.T) {
	dir := t.TempDir()
	if pid, alive, err := PostmasterPID(dir); pid != 0 || alive || err != nil {
		t.Errorf("no file: %d %v %v", pid, alive, err)
	}
	write := func(s string) {
		if err := os.WriteFile(filepath.Join(dir, "postmaster.pid"), []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(strconv.Itoa(os.Getpid()) + "\n/data\n1700000000\n5432\n/tmp\n*\n  5432001    32768\nready   \n")
	if pid, alive, err := PostmasterPID(dir); pid != os.Getpid() || !alive || err != nil {
		t.Errorf("live process: %d %v %v", pid, alive, err)
	}
	if host, port, err := pidFileAddress(dir); host != "/tmp" || port != 5432 || err != nil {
		t.Errorf("pidFileAddress = %q %d %v", host, port, err)
	}
	gone := exec.Command("true")
	if err := gone.Run(); err != nil {
		t.Fatal(err)
	}
	write(strconv.Itoa(gone.Process.Pid) + "\n/data\n")
	if pid, alive, err := PostmasterPID(dir); pid != gone.Process.Pid || alive || err != nil {
		t.Errorf("stale file: %d %v %v", pid, alive, err)
	}
	write("garbage\n")
	if _, _, err := PostmasterPID(dir); err == nil {
		t.Error("garbage: no error")
	}
}

func TestDataDirVersion(t *testing.T) {
	dir := t.TempDir()
	if _, err := dataDirVersion(dir); !errors.Is(err, ErrNotDataDir) {
		t.Errorf("empty directory: %v", err)
	}
	os.WriteFile(filepath.Join(dir, "PG_VERSION"), []byte("15\n"), 0o600)
	if _, err := dataDirVersion(dir); !errors.Is(err, ErrNotDataDir) {
		t.Errorf("no pg_control: %v", err)
	}
	os.MkdirAll(filepath.Join(dir, "global"), 0o700)
	os.WriteFile(filepath.Join(dir, "global", "pg_control"), make([]byte, 8192), 0o600)
	if v, err := dataDirVersion(dir); err != nil || v.Major != 15 {
		t.Errorf("data directory: %v %v", v, err)
	}
}

func TestConfigFileFromOpts(t *testing.T) {
	dir := t.TempDir()
	if got := configFileFromOpts(dir); got != "" {
		t.Errorf("no postmaster.opts: %q", got)
	}
	for opts, want := range map[string]string{
		`/usr/lib/postgresql/15/bin/postgres "-D" "/var/lib/postgresql/15/main" "-c" "config_file=/etc/postgresql/15/main/postgresql.conf"` + "\n": "/etc/postgresql/15/main/postgresql.conf",
		`/usr/bin/postgres "-D" "/data" "--config-file=/etc/pg conf/postgresql.conf"` + "\n":                                                       "/etc/pg conf/postgresql.conf",
		`/usr/bin/postgres "-D" "/data" "-c" "port=5433"` + "\n":                                                                                   "",
	} {
		os.WriteFile(filepath.Join(dir, "postmaster.opts"), []byte(opts), 0o600)
		if got := configFileFromOpts(dir); got != want {
			t.Errorf("%s: got %q, want %q", opts, got, want)
		}
	}
}

func TestRedact(t *testing.T) {
	for in, want := range map[string]string{
		"host=a password=secret user=x":         "host=a password=xxxxx user=x",
		"host=a password = 'se cr\\'et' user=x": "host=a password = xxxxx user=x",
		"postgres://u:secret@h/db":              "postgres://u:xxxxx@h/db",
		"postgres://u@h/db?password=secret&x=1": "postgres://u@h/db?password=xxxxx&x=1",
		"host=a user=x":                         "host=a user=x",
	} {
		if got := Redact(in); got != want || strings.Contains(got, "secret") {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestStepError(t *testing.T) {
	err := error(&StepError{Step: StepSource, Err: ErrOtherSystem, Next: "do this"})
	if got, want := err.Error(), "check source: source and target are different database systems; do this"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if !errors.Is(err, ErrOtherSystem) {
		t.Error("StepError does not unwrap to its cause")
	}
}

func TestCheckOwner(t *testing.T) {
	err := checkOwner(t.TempDir())
	if os.Geteuid() == 0 {
		if !errors.Is(err, ErrOwner) {
			t.Errorf("as root: %v, want ErrOwner (pg_rewind must run as the data directory's owner)", err)
		}
		return
	}
	if err != nil {
		t.Errorf("own directory: %v", err)
	}
}
