package atomicfile

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestWrite(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	if err := WriteFile(p, []byte("one"), Options{Sync: true, SyncDir: true, Mode: 0o640}); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(p)
	if err != nil || fi.Mode().Perm() != 0o640 {
		t.Fatalf("stat = %v, %v; want mode 0640", fi, err)
	}
	// A failing fill leaves the old content and no temporary file.
	boom := errors.New("boom")
	err = Write(p, Options{}, func(f *os.File) error {
		f.Write([]byte("half"))
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Write = %v, want the fill's error", err)
	}
	if got, _ := os.ReadFile(p); string(got) != "one" {
		t.Errorf("content %q after a failed write, want the old one", got)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("%d entries after a failed write, want the file alone", len(entries))
	}
}

func TestIsTemp(t *testing.T) {
	f, err := Create(t.TempDir(), "000000010000000000000001")
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	for name, want := range map[string]bool{filepath.Base(f.Name()): true, "000000010000000000000001": false, ".hidden": false} {
		if IsTemp(name) != want {
			t.Errorf("IsTemp(%q) = %v, want %v", name, !want, want)
		}
	}
}

// ReplaceIn replaces a file in a root, keeping a regular file's mode, and
// replaces a symbolic link planted under the name instead of writing
// through it.
func TestReplaceIn(t *testing.T) {
	dir, outside := t.TempDir(), filepath.Join(t.TempDir(), "victim")
	os.WriteFile(outside, []byte("keep"), 0o644)
	os.WriteFile(filepath.Join(dir, "conf"), []byte("old"), 0o640)
	os.Symlink(outside, filepath.Join(dir, "signal"))
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	for _, name := range []string{"conf", "signal", "new"} {
		if err := ReplaceIn(root, name, []byte("x = 1\n")); err != nil {
			t.Fatalf("ReplaceIn(%s): %v", name, err)
		}
		fi, err := os.Lstat(filepath.Join(dir, name))
		if err != nil || !fi.Mode().IsRegular() {
			t.Fatalf("%s after ReplaceIn: %v, %v; want a regular file", name, fi, err)
		}
		want := map[string]os.FileMode{"conf": 0o640}[name]
		if want == 0 {
			want = 0o600
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s: mode %v, want %v", name, fi.Mode().Perm(), want)
		}
		if b, _ := os.ReadFile(filepath.Join(dir, name)); string(b) != "x = 1\n" {
			t.Errorf("%s holds %q", name, b)
		}
	}
	if b, _ := os.ReadFile(outside); string(b) != "keep" {
		t.Errorf("the file a planted link pointed to was written: %q", b)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 3 {
		t.Errorf("%d entries left, want 3 (no temporary file)", len(ents))
	}
}
