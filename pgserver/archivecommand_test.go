package pgserver

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseCommand(t *testing.T) {
	for _, tc := range []struct {
		line          string
		ok            bool
		prog, r, conf string
	}{
		{"walship-archive --repo /var/lib/walship %p %f", true, "walship-archive", "/var/lib/walship", ""},
		{"/usr/local/bin/walship-archive --repo=/x %p %f", true, "/usr/local/bin/walship-archive", "/x", ""},
		{"walship-archive --config /etc/walship.toml %p %f", true, "walship-archive", "", "/etc/walship.toml"},
		{`'/opt/my tools/walship-archive' -v --repo '/srv/wal archive' %p %f`, true, "/opt/my tools/walship-archive", "/srv/wal archive", ""},
		{`"walship-archive" --repo "s3://b/p" %p %f`, true, "walship-archive", "s3://b/p", ""},
		{"test ! -f /tmp/stop && walship-archive --repo /r %p %f", true, "walship-archive", "/r", ""},
		{"sleep 1; walship-archive --repo /r %p %f", true, "walship-archive", "/r", ""},
		{"WALSHIP_REPO=/e walship-archive %p %f", true, "walship-archive", "", ""},
		{"cp %p /archive/%f", false, "", "", ""},
		{"echo walship-archive --repo /r", false, "", "", ""},
		{"", false, "", "", ""},
		{"walship-archive-old --repo /r %p %f", false, "", "", ""},
	} {
		c, ok := ParseArchiveCommand(tc.line)
		if ok != tc.ok || c.Program != tc.prog || c.Repo != tc.r || c.Config != tc.conf {
			t.Errorf("ParseArchiveCommand(%q) = %+v, %v; want program %q repo %q config %q, %v", tc.line, c, ok, tc.prog, tc.r, tc.conf, tc.ok)
		}
	}
}

func TestCommandRepository(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "walship.toml")
	os.WriteFile(conf, []byte("repo = 's3://bucket/pg'\ns3-region = 'x'\n"), 0o600)
	env := map[string]string{}
	getenv := func(k string) string { return env[k] }
	repoOf := func(line string) (string, error) {
		t.Helper()
		c, ok := ParseArchiveCommand(line)
		if !ok {
			t.Fatalf("ParseArchiveCommand(%q): no walship-archive", line)
		}
		return c.Repository(getenv, dir)
	}
	if r, err := repoOf("walship-archive --repo /r --config " + conf + " %p %f"); r != "/r" || err != nil {
		t.Errorf("--repo over --config: %q, %v", r, err)
	}
	if r, err := repoOf("walship-archive --config walship.toml %p %f"); r != "s3://bucket/pg" || err != nil {
		t.Errorf("relative --config from the data directory: %q, %v", r, err)
	}
	env["WALSHIP_REPO"] = "/from-env"
	if r, err := repoOf("walship-archive --config " + conf + " %p %f"); r != "/from-env" || err != nil {
		t.Errorf("WALSHIP_REPO over the config file: %q, %v", r, err)
	}
	if r, err := repoOf("WALSHIP_REPO=/line walship-archive %p %f"); r != "/line" || err != nil {
		t.Errorf("assignment on the line: %q, %v", r, err)
	}
	delete(env, "WALSHIP_REPO")
	env["WALSHIP_CONFIG"] = conf
	if r, err := repoOf("walship-archive %p %f"); r != "s3://bucket/pg" || err != nil {
		t.Errorf("WALSHIP_CONFIG: %q, %v", r, err)
	}
	delete(env, "WALSHIP_CONFIG")
	if _, err := repoOf("walship-archive %p %f"); err == nil || !strings.Contains(err.Error(), "no repository") {
		t.Errorf("nothing says: %v", err)
	}
	if _, err := repoOf("walship-archive --config /nonexistent.toml %p %f"); err == nil {
		t.Error("unreadable config file: no error")
	}
}
