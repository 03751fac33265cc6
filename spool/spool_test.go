package spool

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

func TestCheck(t *testing.T) {
	if err := Check(""); !errors.Is(err, ErrNone) {
		t.Errorf("Check(\"\") = %v, want ErrNone", err)
	}
	if err := Check("/var/lib/postgresql/15/main/pg_wal/spool"); err == nil {
		t.Error("a spool inside pg_wal was accepted")
	}
	if err := Check(filepath.Join(t.TempDir(), "walship-spool")); err != nil {
		t.Errorf("Check of a spool outside the data directory: %v", err)
	}
}

// What is spooled for one repository is invisible to another.
func TestDirPerRepository(t *testing.T) {
	root := t.TempDir()
	a, _ := Open(root, "/archive/a")
	b, _ := Open(root, "s3://bucket/a")
	if err := a.WriteFile("000000010000000000000001", []byte("x")); err != nil {
		t.Fatal(err)
	}
	if !a.Has("000000010000000000000001") || b.Has("000000010000000000000001") {
		t.Errorf("a has it: %v, b has it: %v; want only a", a.Has("000000010000000000000001"), b.Has("000000010000000000000001"))
	}
	if a2, _ := Open(root, "/archive/a"); a2.Path("x") != a.Path("x") {
		t.Error("the same repository got another directory")
	}
}

func TestTake(t *testing.T) {
	d, _ := Open(t.TempDir(), "r")
	dest := filepath.Join(t.TempDir(), "RECOVERYXLOG")
	if ok, err := d.Take("000000010000000000000002", dest); ok || err != nil {
		t.Errorf("Take of a file not spooled = %v, %v; want false, nil", ok, err)
	}
	d.WriteFile("000000010000000000000002", []byte("seg"))
	os.WriteFile(dest, []byte("old"), 0o600)
	if ok, err := d.Take("000000010000000000000002", dest); !ok || err != nil {
		t.Fatalf("Take = %v, %v", ok, err)
	}
	if got, _ := os.ReadFile(dest); string(got) != "seg" {
		t.Errorf("dest holds %q, want the spooled file", got)
	}
	if d.Has("000000010000000000000002") {
		t.Error("the spooled file is still there after Take")
	}
}

func TestClaim(t *testing.T) {
	d, _ := Open(t.TempDir(), "r")
	release, ok := d.Claim("f")
	if !ok {
		t.Fatal("first claim refused")
	}
	if _, ok := d.Claim("f"); ok {
		t.Error("a second claim of the same file was granted")
	}
	if !d.Busy() {
		t.Error("Busy = false while a claim is held")
	}
	if slices.Contains(d.Names(), ".f.claim") || len(d.Names()) != 0 {
		t.Errorf("Names lists %v, want no claims", d.Names())
	}
	if !d.Claimed("f") || d.Claimed("g") {
		t.Errorf("Claimed(f) = %v, Claimed(g) = %v; want true, false", d.Claimed("f"), d.Claimed("g"))
	}
	release()
	if d.Busy() || d.Claimed("f") {
		t.Error("Busy or Claimed after the claim was released")
	}
	// A claim file left by a killed process is held by no one.
	os.WriteFile(d.Path(".h.claim"), nil, 0o600)
	if d.Busy() || d.Claimed("h") {
		t.Error("a claim file no one holds counts as held")
	}
	if release, ok := d.Claim("h"); !ok {
		t.Error("a claim file no one holds cannot be claimed")
	} else {
		release()
	}
	lr, ok := d.Lock("worker")
	if !ok {
		t.Fatal("Lock refused")
	}
	if _, ok := d.Lock("worker"); ok {
		t.Error("a second Lock was granted")
	}
	lr()
	if _, ok := d.Claim("f"); !ok {
		t.Error("claim refused after release")
	}
}

// Clean drops what keep rejects, and leftovers only once they are stale.
func TestClean(t *testing.T) {
	d, _ := Open(t.TempDir(), "r")
	d.WriteFile("keep", nil)
	d.WriteFile("drop", nil)
	fresh, stale := d.Path(".x.tmp-1"), d.Path(".y.tmp-2")
	os.WriteFile(fresh, nil, 0o600)
	os.WriteFile(stale, nil, 0o600)
	old := time.Now().Add(-2 * StaleAfter)
	os.Chtimes(stale, old, old)
	d.Clean(func(name string) bool { return name == "keep" })
	if got := d.Names(); !slices.Equal(got, []string{"keep"}) {
		t.Errorf("after Clean: %v, want [keep]", got)
	}
	if _, err := os.Stat(fresh); err != nil {
		t.Errorf("a fresh temporary file was removed: %v", err)
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Errorf("a stale temporary file was kept: %v", err)
	}
}

// A spool inside a data directory (anywhere under it) is refused: the
// server's tools would copy it.
func TestCheckRefusesDataDirectory(t *testing.T) {
	data := t.TempDir()
	os.MkdirAll(filepath.Join(data, "global"), 0o700)
	os.WriteFile(filepath.Join(data, "PG_VERSION"), []byte("15\n"), 0o600)
	os.WriteFile(filepath.Join(data, "global", "pg_control"), make([]byte, 8192), 0o600)
	for _, p := range []string{filepath.Join(data, "spool"), filepath.Join(data, "base", "x", "spool")} {
		if err := Check(p); err == nil {
			t.Errorf("Check(%s) accepted a spool inside the data directory", p)
		}
	}
	t.Chdir(data) // restore_command runs in the data directory
	if err := Check("spool"); err == nil {
		t.Error("a relative spool path inside the data directory was accepted")
	}
	if err := Check(t.TempDir()); err != nil {
		t.Errorf("a spool beside the data directory: %v", err)
	}
}

// The identity cache answers for what it was given, and only for
// IdentityTTL, which is 10 s: a repository replaced at the same location
// must not go unnoticed for longer (records are bound to the identity the
// cache gives).
func TestIdentityCacheExpires(t *testing.T) {
	root := t.TempDir()
	c := NewIdentityCache(root, "s3://bucket/a")
	if _, ok := c.Load(); ok {
		t.Fatal("an empty cache answered")
	}
	c.Store([]byte(`{"format":2}`))
	if data, ok := c.Load(); !ok || string(data) != `{"format":2}` {
		t.Fatalf("Load after Store = %q, %v", data, ok)
	}
	if _, ok := NewIdentityCache(root, "s3://bucket/b").Load(); ok {
		t.Error("another location's cache answered")
	}
	for _, age := range []time.Duration{-2 * time.Minute, 11 * time.Second, time.Hour} {
		at := time.Now().Add(-age)
		if err := os.Chtimes(filepath.Join(c.root, c.name), at, at); err != nil {
			t.Fatal(err)
		}
		if _, ok := c.Load(); ok {
			t.Errorf("a cache stored %v ago answered", age)
		}
	}
	at := time.Now().Add(-5 * time.Second)
	os.Chtimes(filepath.Join(c.root, c.name), at, at)
	if _, ok := c.Load(); !ok {
		t.Error("a cache stored 5s ago did not answer")
	}
}

// A spool another user could change is refused: one that belongs to
// someone else (a directory squatted under /tmp), one others may write
// into, a repository's subdirectory swapped for a symbolic link; and a
// file planted by someone else, or a link, is never read or handed out.
func TestUntrustedSpoolRefused(t *testing.T) {
	root := filepath.Join(t.TempDir(), "spool")
	os.Mkdir(root, 0o777)
	os.Chmod(root, 0o777)
	if _, err := Open(root, "r"); !errors.Is(err, ErrUntrusted) {
		t.Errorf("a spool others may write into: %v, want ErrUntrusted", err)
	}
	if _, ok := NewIdentityCache(root, "r").Load(); ok {
		t.Error("the identity cache of such a spool answered")
	}
	os.Chmod(root, 0o700)
	d, err := Open(root, "r")
	if err != nil {
		t.Fatal(err)
	}

	// The subdirectory swapped for a link to a data directory: refused,
	// and nothing there is touched.
	victim := t.TempDir()
	os.WriteFile(filepath.Join(victim, "PG_VERSION"), []byte("15\n"), 0o600)
	os.RemoveAll(d.path)
	if err := os.Symlink(victim, d.path); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(root, "r"); !errors.Is(err, ErrUntrusted) {
		t.Errorf("a subdirectory that is a link: %v, want ErrUntrusted", err)
	}
	if _, err := os.Stat(filepath.Join(victim, "PG_VERSION")); err != nil {
		t.Errorf("the data directory behind the link lost PG_VERSION: %v", err)
	}
	os.Remove(d.path)
	d, err = Open(root, "r")
	if err != nil {
		t.Fatal(err)
	}

	// A link planted as a file: not there, not read, not taken.
	os.Symlink(filepath.Join(victim, "PG_VERSION"), d.Path("000000010000000000000001"))
	if d.Has("000000010000000000000001") {
		t.Error("a link counts as a spooled file")
	}
	if _, err := d.Read("000000010000000000000001"); err == nil {
		t.Error("a link was read")
	}
	if ok, _ := d.Take("000000010000000000000001", filepath.Join(t.TempDir(), "dest")); ok {
		t.Error("a link was handed out")
	}

	if os.Geteuid() != 0 {
		t.Skip("another user's spool and files need root to make")
	}
	d.WriteFile("000000010000000000000002", []byte("planted"))
	os.Chown(d.Path("000000010000000000000002"), 65534, 65534)
	if _, err := d.Read("000000010000000000000002"); !errors.Is(err, ErrUntrusted) {
		t.Errorf("a file of another user: %v, want ErrUntrusted", err)
	}
	other := filepath.Join(t.TempDir(), "squatted")
	os.Mkdir(other, 0o700)
	os.Chown(other, 65534, 65534)
	if _, err := Open(other, "r"); !errors.Is(err, ErrUntrusted) {
		t.Errorf("a spool of another user: %v, want ErrUntrusted", err)
	}
	if _, ok := NewIdentityCache(other, "r").Load(); ok {
		t.Error("the identity cache in another user's spool answered")
	}
}
