package test

import (
	"archive/tar"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/walship/walship/internal/testenv/fakerepo"
	"github.com/walship/walship/internal/testenv/pgtest"
)

// TestRestoreStaysInside: whatever the stored tars hold, walship backup
// restore writes only inside NEWDIR. Someone with write access to the
// storage crafts base.tar: a symbolic link pointing out followed by a
// directory entry of the same name (whose mode would be applied through
// it) or by a file under it, symbolic links named as the files restore
// writes itself (recovery.signal, postgresql.auto.conf, backup_label),
// names with "..", absolute names, a hard link. Each backup is refused
// with one line and NEWDIR as it was, or restored with those files
// regular; the files and directories outside are untouched, and nothing
// of them is read into the restored directory.
func TestRestoreStaysInside(t *testing.T) {
	pgtest.Require(t)
	base := pgtest.Dir(t)
	outside := pgtest.Mkdir(t, filepath.Join(base, "outside"))
	secret := writeSegment(t, outside, "secret.conf", []byte("shared_preload_libraries = 'evil'\n"))
	victimDir := pgtest.Mkdir(t, filepath.Join(outside, "dir"))
	os.Chmod(victimDir, 0o700)
	before := snapshot(t, outside)

	// Made as the test's user, then given to the server's.
	repoDir := filepath.Join(base, "repo")
	if err := os.Mkdir(repoDir, 0o755); err != nil {
		t.Fatal(err)
	}
	f := fakerepo.NewAt(t, repoDir)
	f.Segments(1, 1, 40)
	ok := []fakerepo.TarFile{
		{Header: tar.Header{Name: "global/", Typeflag: tar.TypeDir, Mode: 0o700}},
		{Header: tar.Header{Name: "backup_label", Typeflag: tar.TypeReg, Mode: 0o600}, Content: fakerepo.BackupFiles["backup_label"]},
		{Header: tar.Header{Name: "PG_VERSION", Typeflag: tar.TypeReg, Mode: 0o600}, Content: "15\n"},
		{Header: tar.Header{Name: "global/pg_control", Typeflag: tar.TypeReg, Mode: 0o600}, Content: fakerepo.BackupFiles["global/pg_control"]},
	}
	link := func(name, to string) fakerepo.TarFile {
		return fakerepo.TarFile{Header: tar.Header{Name: name, Typeflag: tar.TypeSymlink, Linkname: to, Mode: 0o777}}
	}
	file := func(name, content string) fakerepo.TarFile {
		return fakerepo.TarFile{Header: tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o666}, Content: content}
	}
	cases := []struct {
		name    string
		entries []fakerepo.TarFile
	}{
		{"a link, then a directory of its name", []fakerepo.TarFile{link("pg_tblspc/16400", victimDir),
			{Header: tar.Header{Name: "pg_tblspc/16400/", Typeflag: tar.TypeDir, Mode: 0o777}}}},
		{"a link, then a file under it", []fakerepo.TarFile{link("base", victimDir), file("base/planted", "x")}},
		{"a link, then a file of its name", []fakerepo.TarFile{link("pg_hba.conf", secret), file("pg_hba.conf", "x")}},
		{"recovery.signal as a link", []fakerepo.TarFile{link("recovery.signal", secret)}},
		{"postgresql.auto.conf as a link", []fakerepo.TarFile{link("postgresql.auto.conf", secret)}},
		{"standby.signal as a link", []fakerepo.TarFile{link("standby.signal", secret)}},
		{"dot-dot", []fakerepo.TarFile{file("../../outside/planted", "x")}},
		{"dot-dot inside", []fakerepo.TarFile{file("global/../../planted", "x")}},
		{"absolute", []fakerepo.TarFile{file(filepath.Join(outside, "planted"), "x")}},
		{"a hard link", []fakerepo.TarFile{{Header: tar.Header{Name: "hard", Typeflag: tar.TypeLink, Linkname: secret}}}},
	}
	at := time.Date(2024, 5, 1, 2, 0, 0, 0, time.UTC)
	ids := map[string]string{}
	for i, c := range cases {
		entries := append(append([]fakerepo.TarFile{}, ok...), c.entries...)
		if c.name == "a link, then a file of its name" {
			entries[len(entries)-1].Unlisted = true // listed once, for the link's name
		}
		ids[c.name] = string(f.StoredBackupTar(1, uint64(2+i), uint64(3+i), at.Add(time.Duration(i)*time.Hour), "standby", entries, ""))
	}
	chownTree(t, repoDir)

	for i, c := range cases {
		t.Run(strings.ReplaceAll(c.name, " ", "_"), func(t *testing.T) {
			dir := filepath.Join(base, "new"+string(rune('a'+i)))
			r := walship(t, runOpts{}, "walship", "backup", "restore", "--repo", repoDir, "-D", dir, "--backup", ids[c.name], "--no-sync")
			switch r.code {
			case 1:
				wantOneLine(t, c.name, r, []int{1}, "walship", "damaged backup")
				if _, err := os.Lstat(dir); !os.IsNotExist(err) {
					t.Errorf("%s: refused, but %s is there (%v)", c.name, dir, err)
				}
			case 0:
				for _, n := range []string{"recovery.signal", "postgresql.auto.conf"} {
					fi, err := os.Lstat(filepath.Join(dir, n))
					if err != nil || !fi.Mode().IsRegular() {
						t.Errorf("%s: the restored %s is %v (%v), want a regular file", c.name, n, fi, err)
					}
				}
				if b, _ := os.ReadFile(filepath.Join(dir, "postgresql.auto.conf")); strings.Contains(string(b), "evil") {
					t.Errorf("%s: the restored postgresql.auto.conf holds what the file outside holds:\n%s", c.name, b)
				}
			default:
				t.Errorf("%s: %s, want exit 1 (refused) or 0", c.name, r)
			}
			sameSnapshot(t, c.name+": outside NEWDIR", before, snapshot(t, outside))
			if _, err := os.Lstat(filepath.Join(base, "planted")); err == nil {
				t.Errorf("%s: planted a file in %s", c.name, base)
			}
		})
	}
}

// chownTree gives every file under dir to the server's user.
func chownTree(t *testing.T, dir string) {
	t.Helper()
	uid, gid := serverUser(t)
	filepath.WalkDir(dir, func(p string, _ os.DirEntry, err error) error {
		if err == nil {
			os.Lchown(p, int(uid), int(gid))
		}
		return err
	})
}
