package backup

import (
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/walship/walship/internal/testenv/fakerepo"
	"github.com/walship/walship/pgdata"
	"github.com/walship/walship/pgserver"
)

// The server compresses a backup where it can, unless told not to; told
// to where it cannot, the backup is refused.
func TestCompressAtServer(t *testing.T) {
	for _, c := range []struct {
		major int
		lz4   bool
		at    string
		want  bool
		err   string
	}{
		{15, true, "", true, ""},
		{18, true, CompressServer, true, ""},
		{15, true, CompressClient, false, ""},
		{15, false, "", false, ""},
		{14, true, "", false, ""},
		{13, false, CompressClient, false, ""},
		{14, true, CompressServer, false, "servers compress backups from 15 on"},
		{16, false, CompressServer, false, "built without lz4"},
	} {
		srv := &server{Info: &pgserver.Info{Version: pgdata.Version{Major: c.major, Text: strconv.Itoa(c.major)}, VersionStr: strconv.Itoa(c.major) + ".1"}, lz4: c.lz4}
		got, err := compressAtServer(srv, c.at)
		if got != c.want || (err == nil) != (c.err == "") || (err != nil && (!strings.Contains(err.Error(), c.err) || !errors.Is(err, pgserver.ErrVersion))) {
			t.Errorf("PostgreSQL %d, lz4 %v, at %q: %v, %v; want %v, %q", c.major, c.lz4, c.at, got, err, c.want, c.err)
		}
	}
}

// Create waits for the backup's last segment in the repository itself (the
// server's own wait looks at its archiver once a second) only where that
// is the same wait: a primary on this machine whose archive_command runs
// walship-archive into this very repository. Anywhere else the server
// waits as it always did, so a backup never waits for a segment that goes
// elsewhere.
func TestArchivesInto(t *testing.T) {
	f := fakerepo.New(t)
	dataDir := t.TempDir()
	os.MkdirAll(filepath.Join(dataDir, "global"), 0o700)
	var ctl [12]byte
	binary.NativeEndian.PutUint64(ctl[0:], 42)
	binary.NativeEndian.PutUint32(ctl[8:], 1300)
	if err := os.WriteFile(filepath.Join(dataDir, pgdata.ControlFile), ctl[:], 0o600); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(t.TempDir(), "walship.toml")
	os.WriteFile(conf, []byte("repo = '"+f.Dir+"'\n"), 0o600)
	here := "walship-archive --repo " + f.Dir + " %p %f"
	for _, c := range []struct {
		name               string
		standby            bool
		sysID              uint64
		mode, command, dir string
		want               bool
	}{
		{"a primary archiving here", false, 42, "on", here, dataDir, true},
		{"archive_mode = always", false, 42, "always", here, dataDir, true},
		{"through a config file", false, 42, "on", "/usr/bin/walship-archive --config " + conf + " %p %f", dataDir, true},
		{"a standby", true, 42, "always", here, dataDir, false},
		{"archive_mode off", false, 42, "off", here, dataDir, false},
		{"another repository", false, 42, "on", "walship-archive --repo " + t.TempDir() + " %p %f", dataDir, false},
		{"not walship-archive", false, 42, "on", "cp %p " + f.Dir + "/%f", dataDir, false},
		{"archive_command hidden from the role", false, 42, "on", "", "", false},
		{"a server on another machine (its data directory is not here)", false, 42, "on", here, "/nonexistent/data", false},
		{"another system's data directory at that path", false, 43, "on", here, dataDir, false},
	} {
		s := &server{Info: &pgserver.Info{SystemID: c.sysID, InRecovery: c.standby}, archiving: map[string]pgserver.Setting{
			"archive_mode": {Value: c.mode}}}
		if c.command != "" {
			s.archiving["archive_command"] = pgserver.Setting{Value: c.command}
			s.archiving["data_directory"] = pgserver.Setting{Value: c.dir}
		}
		if got := s.archivesInto(f.R); got != c.want {
			t.Errorf("%s: archivesInto = %v, want %v", c.name, got, c.want)
		}
	}
}
