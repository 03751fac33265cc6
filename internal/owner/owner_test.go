package owner

import (
	"os"
	"os/user"
	"path/filepath"
	"testing"
)

func TestOther(t *testing.T) {
	dir := t.TempDir()
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, other := Other(fi); other {
		t.Errorf("a directory this process made counts as another user's")
	}
	if os.Geteuid() != 0 {
		return // only root can give a file away
	}
	f := filepath.Join(dir, "theirs")
	if err := os.WriteFile(f, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(f, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	fi, err = os.Stat(f)
	if err != nil {
		t.Fatal(err)
	}
	owner, me, other := Other(fi)
	want := "65534"
	if u, err := user.LookupId(want); err == nil {
		want = u.Username
	}
	if !other || owner != want || me != "root" {
		t.Errorf("a file of uid 65534, seen by root: owner %q, me %q, other %v; want %q, root, true", owner, me, other, want)
	}
}
