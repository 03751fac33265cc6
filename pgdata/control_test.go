package pgdata

import (
	"errors"
	"os"
	"path/filepath"
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

func TestDataDirVersion(t *testing.T) {
	dir := t.TempDir()
	if _, err := DataDirVersion(dir); !errors.Is(err, ErrNotDataDir) {
		t.Errorf("empty directory: %v", err)
	}
	os.WriteFile(filepath.Join(dir, "PG_VERSION"), []byte("15\n"), 0o600)
	if _, err := DataDirVersion(dir); !errors.Is(err, ErrNotDataDir) {
		t.Errorf("no pg_control: %v", err)
	}
	os.MkdirAll(filepath.Join(dir, "global"), 0o700)
	os.WriteFile(filepath.Join(dir, "global", "pg_control"), make([]byte, 8192), 0o600)
	if v, err := DataDirVersion(dir); err != nil || v.Major != 15 {
		t.Errorf("data directory: %v %v", v, err)
	}
}

func TestSystemID(t *testing.T) {
	dir := t.TempDir()
	if _, err := SystemID(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("no pg_control: %v, want not-exist", err)
	}
	os.Mkdir(filepath.Join(dir, "global"), 0o700)
	ctl := make([]byte, 8192)
	// A PostgreSQL 15 pg_control: system identifier, then version 1300.
	copy(ctl, []byte{0xd5, 0x36, 0x1a, 0xd2, 0x3b, 0x0f, 0x53, 0x64, 0x14, 0x05, 0, 0})
	os.WriteFile(filepath.Join(dir, ControlFile), ctl, 0o600)
	id, err := SystemID(dir)
	if err != nil || id != 0x64530f3bd21a36d5 {
		t.Errorf("SystemID = %d, %v; want %d", id, err, uint64(0x64530f3bd21a36d5))
	}
	os.WriteFile(filepath.Join(dir, ControlFile), []byte("not a control file"), 0o600)
	if id, err := SystemID(dir); err == nil {
		t.Errorf("text file taken for pg_control: %d", id)
	}
}

func TestReadVersion(t *testing.T) {
	dir := t.TempDir()
	if _, err := ReadVersion(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("no PG_VERSION: %v", err)
	}
	os.WriteFile(filepath.Join(dir, "PG_VERSION"), []byte("9.6\n"), 0o600)
	if v, err := ReadVersion(dir); err != nil || v.Major != 9 || v.Text != "9.6" {
		t.Errorf("ReadVersion = %v, %v", v, err)
	}
	os.WriteFile(filepath.Join(dir, "PG_VERSION"), []byte("x\n"), 0o600)
	if _, err := ReadVersion(dir); err == nil {
		t.Error("PG_VERSION x: no error")
	}
}
