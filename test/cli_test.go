package test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/walship/walship/internal/testenv/pgtest"
	"github.com/walship/walship/repo"
	"github.com/walship/walship/wal"
)

// later is the name of a segment n segments after name.
func later(t *testing.T, name string, n int) string {
	t.Helper()
	w, err := wal.ParseName(name)
	if err != nil {
		t.Fatal(err)
	}
	for range n {
		w = w.Next(segSize)
	}
	return w.String()
}

// TestArchiveBadInput calls walship-archive the ways a wrong
// archive_command would: each call fails with one clear line and a status
// that makes PostgreSQL keep the file and retry (1 or 2, never above 125),
// and nothing is written, neither in a new repository nor in one in use.
func TestArchiveBadInput(t *testing.T) {
	a := startArchiving(t)
	name, orig := a.switchSegment(t)
	a.pg.Stop("fast")
	next := later(t, name, 1)
	// A data directory look-alike, the working directory of archive_command.
	work := pgtest.Dir(t)
	writeSegment(t, filepath.Join(work, "pg_wal"), name, orig)
	writeSegment(t, filepath.Join(work, "pg_wal"), next, orig) // another segment's content under next
	missing := later(t, name, 5)

	cases := []struct {
		what  string
		args  []string // after --repo
		wants []string
	}{
		{"swapped arguments (%f %p)", []string{name, "pg_wal/" + name}, []string{"pg_wal/" + name, "not a WAL file name"}},
		{"../x as %f", []string{"pg_wal/" + name, "../x"}, []string{`"../x"`, "not a WAL file name"}},
		{"missing %p file", []string{"pg_wal/" + missing, missing}, []string{"pg_wal/" + missing, "does not exist"}},
		{"unknown --compress", []string{"--compress", "zstd", "pg_wal/" + name, name}, []string{"zstd"}},
		{"unknown flag", []string{"--compres", "none", "pg_wal/" + name, name}, []string{"-compres"}},
		{"one argument", []string{"pg_wal/" + name}, []string{"expected 2 arguments"}},
		{"three arguments", []string{"pg_wal/" + name, name, name}, []string{"expected 2 arguments"}},
		{"no arguments", nil, []string{"expected 2 arguments"}},
		{"content of another segment", []string{"pg_wal/" + next, next}, []string{next}},
	}
	beforeWork := snapshot(t, work)
	beforeRepo := snapshot(t, a.repo)
	for i, c := range cases {
		fresh := filepath.Join(work, fmt.Sprintf("repo%d", i))
		for _, r := range []string{fresh, a.repo} {
			res := walship(t, runOpts{dir: work}, "walship-archive", append([]string{"--repo", r}, c.args...)...)
			wantOneLine(t, c.what, res, []int{1, 2}, "walship-archive", c.wants...)
		}
		if _, err := os.Stat(fresh); !os.IsNotExist(err) {
			t.Errorf("%s: the new repository %s was created (%v)", c.what, fresh, err)
		}
	}
	res := walship(t, runOpts{dir: work}, "walship-archive", "pg_wal/"+name, name)
	wantOneLine(t, "no --repo", res, []int{2}, "walship-archive", "no repository", "--repo", "WALSHIP_REPO")
	sameSnapshot(t, "the working directory", beforeWork, snapshot(t, work))
	sameSnapshot(t, "the repository in use", beforeRepo, snapshot(t, a.repo))

	// The same call done right works: the cases failed for their reason.
	fresh := filepath.Join(work, "repo-ok")
	wantOK(t, "archive_command done right", walship(t, runOpts{dir: work}, "walship-archive", "--repo", fresh, "pg_wal/"+name, name))
	if got := restored(t, fresh, name); !bytes.Equal(got, orig) {
		t.Errorf("restored %s differs from the original", name)
	}
}

// TestRestoreBadInput calls walship-restore the ways the server does and
// the ways a wrong restore_command would: a file that is not archived is a
// quiet exit 1; a bad name or an unreadable repository is exit 255 with one
// line, so that recovery stops instead of ending early, except under
// --on-error missing or in a standby, where it is exit 1; and %p given as
// pg_rewind gives it (an absolute final path) works.
func TestRestoreBadInput(t *testing.T) {
	a := startArchiving(t)
	name, orig := a.switchSegment(t)
	a.pg.Stop("fast")
	missing := later(t, name, 20)
	nowhere := filepath.Join(a.base, "no-such-repo")

	// Data directory look-alikes: the server runs restore_command in its
	// data directory with %p = pg_wal/RECOVERYXLOG.
	data := pgtest.Dir(t)
	pgtest.Mkdir(t, filepath.Join(data, "pg_wal"))
	standby := pgtest.Dir(t)
	pgtest.Mkdir(t, filepath.Join(standby, "pg_wal"))
	writeSegment(t, standby, "standby.signal", nil)

	const xlog = "pg_wal/RECOVERYXLOG"
	cases := []struct {
		what  string
		dir   string
		args  []string
		code  int
		wants []string // the one stderr line; nil: no output at all
	}{
		{"segment not archived", data, []string{"--repo", a.repo, missing, xlog}, 1, nil},
		{"history file not archived", data, []string{"--repo", a.repo, "00000002.history", "pg_wal/RECOVERYHISTORY"}, 1, nil},
		{"../x as %f", data, []string{"--repo", a.repo, "../x", xlog}, 255, []string{`"../x"`, "not a WAL file name"}},
		{"swapped arguments (%p %f)", data, []string{"--repo", a.repo, xlog, name}, 255, []string{"not a WAL file name"}},
		{"one argument", data, []string{"--repo", a.repo, name}, 255, []string{"expected 2 arguments"}},
		{"no --repo", data, []string{name, xlog}, 255, []string{"no repository"}},
		{"unknown flag", data, []string{"--repo", a.repo, "--on-eror", "missing", name, xlog}, 255, []string{"-on-eror"}},
		{"unknown --on-error", data, []string{"--repo", a.repo, "--on-error", "ignore", name, xlog}, 255, []string{"ignore"}},
		{"repository does not exist", data, []string{"--repo", nowhere, name, xlog}, 255, []string{nowhere, "aborting recovery"}},
		{"repository does not exist, --on-error missing", data, []string{"--repo", nowhere, "--on-error", "missing", name, xlog}, 1, []string{nowhere}},
		{"repository does not exist, standby.signal", standby, []string{"--repo", nowhere, name, xlog}, 1, []string{nowhere}},
		{"repository does not exist, --data-dir with standby.signal", data, []string{"--repo", nowhere, "--data-dir", standby, name, xlog}, 1, []string{nowhere}},
		{"segment not archived, standby.signal", standby, []string{"--repo", a.repo, missing, xlog}, 1, nil},
	}
	for _, c := range cases {
		res := walship(t, runOpts{dir: c.dir}, "walship-restore", c.args...)
		if c.wants == nil {
			if res.code != c.code || res.stdout != "" || res.stderr != "" {
				t.Errorf("%s: %s, want exit %d and no output", c.what, res, c.code)
			}
		} else {
			wantOneLine(t, c.what, res, []int{c.code}, "walship-restore", c.wants...)
		}
		for _, d := range []string{data, standby} {
			if left, _ := os.ReadDir(filepath.Join(d, "pg_wal")); len(left) != 0 {
				t.Errorf("%s: %s/pg_wal holds %v after a failed restore, want nothing", c.what, d, left)
			}
		}
	}

	// As the server calls it.
	wantOK(t, "restore into pg_wal/RECOVERYXLOG", walship(t, runOpts{dir: data}, "walship-restore", "--repo", a.repo, name, xlog))
	if got, _ := os.ReadFile(filepath.Join(data, xlog)); !bytes.Equal(got, orig) {
		t.Errorf("RECOVERYXLOG differs from the archived segment")
	}

	// As pg_rewind -c calls it: cwd elsewhere, %p the absolute final path.
	target := pgtest.Dir(t)
	pgWal := pgtest.Mkdir(t, filepath.Join(target, "pg_wal"))
	dest := filepath.Join(pgWal, name)
	wantOK(t, "restore to an absolute pg_wal/<name>", walship(t, runOpts{dir: a.base}, "walship-restore", "--repo", a.repo, name, dest))
	if got, _ := os.ReadFile(dest); !bytes.Equal(got, orig) {
		t.Errorf("%s differs from the archived segment", dest)
	}
	entries, _ := os.ReadDir(pgWal)
	if len(entries) != 1 || entries[0].Name() != name {
		t.Errorf("%s holds %v, want only %s (no temporary files)", pgWal, entries, name)
	}
}

// confFile writes a config file owned by the server's user.
func confFile(t testing.TB, dir, body string) string {
	t.Helper()
	f, err := os.CreateTemp(dir, "walship-*.toml")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(body); err != nil {
		t.Fatal(err)
	}
	os.Chmod(f.Name(), 0o644)
	pgtest.Chown(t, f.Name())
	return f.Name()
}

// TestConfigSources runs archive and restore with their settings from a
// --config file, from WALSHIP_CONFIG and from WALSHIP_* variables: the
// command line wins over the environment, which wins over the file; a
// config file that cannot be read or parsed is one clear line.
func TestConfigSources(t *testing.T) {
	pgtest.Require(t)
	cfg := pgtest.Dir(t)
	repoFile := filepath.Join(cfg, "repo")
	conf := confFile(t, cfg, fmt.Sprintf("# where the WAL goes\nrepo = '%s'\n", repoFile))
	// The server archives with nothing but --config on its command line.
	a := startArchiving(t, fmt.Sprintf("archive_command = '%s --config %s %%p %%f'", pgtest.Bin(t, "walship-archive"), conf))
	name, orig := a.switchSegment(t)
	if _, err := os.Stat(objectPath(t, repoFile, name, repo.CodecLZ4)); err != nil {
		t.Fatalf("the server's archive_command with --config did not archive into %s: %v", repoFile, err)
	}
	a.pg.Stop("fast")
	src := writeSegment(t, filepath.Join(cfg, "src"), name, orig)

	// Restore with the repository from each source.
	restoreWith := func(what string, env []string, args ...string) result {
		t.Helper()
		dest := filepath.Join(pgtest.Dir(t), name)
		res := walship(t, runOpts{env: env}, "walship-restore", append(args, name, dest)...)
		if res.code == 0 {
			if got, err := os.ReadFile(dest); err != nil || !bytes.Equal(got, orig) {
				t.Errorf("%s: restored file differs from the segment (%v)", what, err)
			}
		}
		return res
	}
	wantOK(t, "restore --config", restoreWith("--config", nil, "--config", conf))
	wantOK(t, "restore WALSHIP_CONFIG", restoreWith("WALSHIP_CONFIG", []string{"WALSHIP_CONFIG=" + conf}))
	wantOK(t, "restore WALSHIP_REPO", restoreWith("WALSHIP_REPO", []string{"WALSHIP_REPO=" + repoFile}))
	// Precedence when reading: the file names a repository that does not
	// exist, the environment the real one, or the other way round.
	bogus := confFile(t, cfg, "repo = '/nonexistent/walship'\n")
	wantOK(t, "restore: WALSHIP_REPO over the file", restoreWith("env over file", []string{"WALSHIP_REPO=" + repoFile}, "--config", bogus))
	wantOK(t, "restore: --repo over WALSHIP_REPO", restoreWith("flag over env", []string{"WALSHIP_REPO=/nonexistent/walship", "WALSHIP_CONFIG=" + bogus}, "--repo", repoFile))
	if res := restoreWith("the file alone", nil, "--config", bogus); res.code != 255 {
		t.Errorf("restore from the bogus file's repository: %s, want exit 255 (the control for the two above)", res)
	}

	// Precedence when writing: exactly the winning repository gets the object.
	cases := []struct {
		what   string
		file   string // the config file's body; {dir} is the case's directory
		env    []string
		args   []string
		winner string // the repository that must get the object
		codec  repo.Codec
	}{
		{"--config file", "repo = '{dir}/file'\n", nil, []string{"--config", "{file}"}, "file", repo.CodecLZ4},
		{"WALSHIP_CONFIG", "repo = '{dir}/file'\ncompress = 'none'\n", []string{"WALSHIP_CONFIG={file}"}, nil, "file", repo.CodecNone},
		{"WALSHIP_REPO over the file", "repo = '{dir}/file'\n", []string{"WALSHIP_REPO={dir}/env"}, []string{"--config", "{file}"}, "env", repo.CodecLZ4},
		{"WALSHIP_COMPRESS over the file", "repo = '{dir}/file'\ncompress = 'none'\n", []string{"WALSHIP_COMPRESS=lz4", "WALSHIP_CONFIG={file}"}, nil, "file", repo.CodecLZ4},
		{"--repo over WALSHIP_REPO and the file", "repo = '{dir}/file'\n", []string{"WALSHIP_REPO={dir}/env", "WALSHIP_CONFIG={file}"}, []string{"--repo", "{dir}/flag"}, "flag", repo.CodecLZ4},
		{"--compress over WALSHIP_COMPRESS and the file", "repo = '{dir}/file'\ncompress = 'lz4'\n", []string{"WALSHIP_COMPRESS=lz4"}, []string{"--config", "{file}", "--compress", "none"}, "file", repo.CodecNone},
		{"--config over WALSHIP_CONFIG", "repo = '{dir}/file'\n", []string{"WALSHIP_CONFIG=" + bogus}, []string{"--config", "{file}"}, "file", repo.CodecLZ4},
	}
	for i, c := range cases {
		dir := pgtest.Mkdir(t, filepath.Join(cfg, fmt.Sprintf("case%d", i)))
		file := confFile(t, dir, strings.ReplaceAll(c.file, "{dir}", dir))
		expand := func(in []string) []string {
			var out []string
			for _, s := range in {
				out = append(out, strings.NewReplacer("{dir}", dir, "{file}", file).Replace(s))
			}
			return out
		}
		args := append(expand(c.args), src, name)
		wantOK(t, c.what, walship(t, runOpts{env: expand(c.env)}, "walship-archive", args...))
		for _, r := range []string{"file", "env", "flag"} {
			_, err := os.Stat(filepath.Join(dir, r))
			if got, want := err == nil, r == c.winner; got != want {
				t.Errorf("%s: repository %s exists: %v, want %v", c.what, r, got, want)
			}
		}
		if _, err := os.Stat(objectPath(t, filepath.Join(dir, c.winner), name, c.codec)); err != nil {
			t.Errorf("%s: object not stored with codec %s: %v", c.what, c.codec, err)
		}
	}

	// Config files that cannot be used.
	unreadable := confFile(t, cfg, fmt.Sprintf("repo = '%s'\n", repoFile))
	os.Chown(unreadable, 0, 0)
	os.Chmod(unreadable, 0)
	bad := []struct{ what, path string }{
		{"unreadable", unreadable},
		{"missing", filepath.Join(cfg, "no-such.toml")},
		{"value missing", confFile(t, cfg, "repo = \n")},
		{"unterminated string", confFile(t, cfg, "repo = '/var/lib/walship\n")},
		{"not TOML", confFile(t, cfg, "--repo /var/lib/walship\n")},
		{"wrong type", confFile(t, cfg, fmt.Sprintf("repo = '%s'\nop-timeout = 'soon'\n", repoFile))},
	}
	dest := filepath.Join(pgtest.Dir(t), name)
	for _, b := range bad {
		res := walship(t, runOpts{}, "walship-archive", "--config", b.path, src, name)
		wantOneLine(t, "archive with a config file "+b.what, res, []int{2}, "walship-archive", b.path)
		res = walship(t, runOpts{env: []string{"WALSHIP_CONFIG=" + b.path}}, "walship-restore", name, dest)
		wantOneLine(t, "restore with a config file "+b.what, res, []int{255}, "walship-restore", b.path)
	}
	if _, err := os.Stat(dest); err == nil {
		t.Errorf("a restore with a bad config file wrote %s", dest)
	}
}
