package rewind

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/walship/walship/pgdata"
)

func writeFiles(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

func TestFindConf(t *testing.T) {
	root := t.TempDir()
	data := filepath.Join(root, "data")
	etc := filepath.Join(root, "etc")
	writeFiles(t, root, map[string]string{
		"data/postgresql.conf": "port = 5432\ninclude 'extra.conf'\ninclude_if_exists 'missing.conf'\ninclude_dir 'conf.d'\n" +
			"include '" + etc + "/outside.conf'\nident_file = 'idents/my_ident.conf'\n",
		"data/extra.conf":            "include 'nested/deeper.conf'\n",
		"data/nested/deeper.conf":    "work_mem = 4MB\n",
		"data/conf.d/01-a.conf":      "a = 1\n",
		"data/conf.d/02-b.conf":      "b = 2\n",
		"data/conf.d/.hidden.conf":   "c = 3\n",
		"data/conf.d/notes.txt":      "not read\n",
		"data/postgresql.auto.conf":  "",
		"data/pg_hba.conf":           "local all all trust\n",
		"data/idents/my_ident.conf":  "",
		"etc/outside.conf":           "d = 4\n",
		"etc/postgresql.conf":        "hba_file = '" + etc + "/pg_hba.conf'\n",
		"data/pg_ident.conf":         "not read: ident_file points elsewhere\n",
		"data/conf.d/sub/x.conf.bak": "",
	})
	set, err := FindConf(data, "")
	if err != nil {
		t.Fatal(err)
	}
	var rel []string
	for _, f := range set.Files {
		r, _ := filepath.Rel(data, f)
		rel = append(rel, r)
	}
	want := []string{"conf.d/01-a.conf", "conf.d/02-b.conf", "extra.conf", "idents/my_ident.conf", "missing.conf",
		"nested/deeper.conf", "pg_hba.conf", "postgresql.auto.conf", "postgresql.conf", "recovery.conf"}
	if !reflect.DeepEqual(rel, want) {
		t.Errorf("files\n got %v\nwant %v", rel, want)
	}
	if !reflect.DeepEqual(set.Dirs, []string{filepath.Join(data, "conf.d")}) {
		t.Errorf("dirs %v", set.Dirs)
	}

	// Debian's layout: the main file in /etc, only the auto file inside.
	set, err = FindConf(data, filepath.Join(etc, "postgresql.conf"))
	if err != nil {
		t.Fatal(err)
	}
	want = []string{filepath.Join(data, "postgresql.auto.conf"), filepath.Join(data, "recovery.conf")}
	if !reflect.DeepEqual(set.Files, want) {
		t.Errorf("Debian layout: %v, want %v", set.Files, want)
	}

	if _, err := FindConf(filepath.Join(root, "nowhere"), ""); err == nil {
		t.Error("no postgresql.conf: no error")
	}
	// The server refuses to start with these (and so would pg_rewind's
	// postgres -C): walship stops before anything changes.
	writeFiles(t, root, map[string]string{"loop/postgresql.conf": "include 'postgresql.conf'\n"})
	if _, err := FindConf(filepath.Join(root, "loop"), ""); !errors.Is(err, pgdata.ErrRecursion) {
		t.Errorf("a file that includes itself: %v", err)
	}
	writeFiles(t, root, map[string]string{"loop2/postgresql.conf": "include 'a.conf'\n", "loop2/a.conf": "include 'postgresql.conf'\n"})
	if _, err := FindConf(filepath.Join(root, "loop2"), ""); !errors.Is(err, pgdata.ErrNesting) {
		t.Errorf("two files that include each other: %v", err)
	}
	writeFiles(t, root, map[string]string{"missing/postgresql.conf": "include 'gone.conf'\n"})
	if _, err := FindConf(filepath.Join(root, "missing"), ""); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a missing include: %v", err)
	}
}

// TestSnapshotRestore plays pg_rewind: the source's files replace the
// target's, new ones appear; Restore puts back exactly the target's.
func TestSnapshotRestore(t *testing.T) {
	root := t.TempDir()
	data := filepath.Join(root, "data")
	writeFiles(t, root, map[string]string{
		"data/postgresql.conf":      "port = 5433\ninclude_dir 'conf.d'\ninclude_if_exists 'standby.conf'\ninclude 'linked.conf'\n",
		"data/postgresql.auto.conf": "# auto\n",
		"data/pg_hba.conf":          "local all all trust\n",
		"data/conf.d/a.conf":        "a = 1\n",
		"real/linked.conf":          "e = 5\n",
		"data/base/1/1234":          "table data",
	})
	os.Chmod(filepath.Join(data, "pg_hba.conf"), 0o640)
	if err := os.Symlink(filepath.Join(root, "real/linked.conf"), filepath.Join(data, "linked.conf")); err != nil {
		t.Fatal(err)
	}
	set, err := FindConf(data, "")
	if err != nil {
		t.Fatal(err)
	}
	snap, err := TakeSnapshot(set)
	if err != nil {
		t.Fatal(err)
	}
	before := readTree(t, root)

	if changed, err := snap.Restore(); err != nil || len(changed) != 0 {
		t.Errorf("Restore of an untouched directory changed %v (%v)", changed, err)
	}

	// What pg_rewind does to the target's configuration.
	writeFiles(t, root, map[string]string{
		"data/postgresql.conf":      "port = 5432\n",
		"data/postgresql.auto.conf": "primary_conninfo = 'host=a'\n",
		"data/conf.d/a.conf":        "a = 2\n",
		"data/conf.d/b.conf":        "b = 2\n",
		"data/standby.conf":         "primary_conninfo = 'x'\n",
		"real/linked.conf":          "e = 6\n", // written through the link
		"data/base/1/1234":          "source data",
	})
	os.Chmod(filepath.Join(data, "pg_hba.conf"), 0o600)
	changed, err := snap.Restore()
	if err != nil {
		t.Fatal(err)
	}
	var rel []string
	for _, p := range changed {
		r, _ := filepath.Rel(root, p)
		rel = append(rel, r)
	}
	wantChanged := []string{"data/conf.d/a.conf", "data/conf.d/b.conf", "data/pg_hba.conf", "data/postgresql.auto.conf",
		"data/postgresql.conf", "data/standby.conf", "real/linked.conf"}
	if !reflect.DeepEqual(rel, wantChanged) {
		t.Errorf("changed\n got %v\nwant %v", rel, wantChanged)
	}
	after := readTree(t, root)
	after["data/base/1/1234"] = before["data/base/1/1234"] // data files are pg_rewind's business
	if !reflect.DeepEqual(after, before) {
		t.Errorf("after Restore\n%v\nwant\n%v", after, before)
	}

	// A link pg_rewind replaced by a file becomes the link again.
	os.Remove(filepath.Join(data, "linked.conf"))
	writeFiles(t, root, map[string]string{"data/linked.conf": "e = 7\n"})
	if _, err := snap.Restore(); err != nil {
		t.Fatal(err)
	}
	if l, err := os.Readlink(filepath.Join(data, "linked.conf")); err != nil || l != filepath.Join(root, "real/linked.conf") {
		t.Errorf("link not restored: %q %v", l, err)
	}
}

// readTree maps every path under root to its mode and content.
func readTree(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() {
			return err
		}
		r, _ := filepath.Rel(root, p)
		if fi.Mode()&os.ModeSymlink != 0 {
			l, _ := os.Readlink(p)
			out[r] = "link " + l
			return nil
		}
		data, _ := os.ReadFile(p)
		out[r] = fi.Mode().String() + " " + string(data)
		return nil
	})
	return out
}
