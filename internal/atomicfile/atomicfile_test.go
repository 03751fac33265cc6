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
