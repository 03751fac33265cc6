package warmstandby

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, text := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

func TestPrefetchWarning(t *testing.T) {
	etc := t.TempDir()
	writeFiles(t, etc, map[string]string{
		"main.conf":         "include_dir 'conf.d'\n",
		"conf.d/10-ws.conf": "recovery_prefetch = off\n",
	})
	for _, tc := range []struct {
		name  string
		files map[string]string
		warn  bool
	}{
		{"default", map[string]string{"PG_VERSION": "15\n", "postgresql.conf": "#recovery_prefetch = try\n"}, true},
		{"off", map[string]string{"PG_VERSION": "15\n", "postgresql.conf": "recovery_prefetch = off   # warm standby\n"}, false},
		{"quoted, no equals sign", map[string]string{"PG_VERSION": "16\n", "postgresql.conf": "recovery_prefetch 'OFF'\n"}, false},
		{"later line wins", map[string]string{"PG_VERSION": "15\n", "postgresql.conf": "recovery_prefetch = off\nrecovery_prefetch = try\n"}, true},
		{"auto.conf wins", map[string]string{"PG_VERSION": "15\n", "postgresql.conf": "recovery_prefetch = off\n",
			"postgresql.auto.conf": "recovery_prefetch = 'on'\n"}, true},
		{"include", map[string]string{"PG_VERSION": "15\n", "postgresql.conf": "include 'standby.conf'\n",
			"standby.conf": "recovery_prefetch=off\n"}, false},
		{"config_file elsewhere (Debian)", map[string]string{"PG_VERSION": "15\n", "postgresql.conf": "recovery_prefetch = try\n",
			"postmaster.opts": `/usr/lib/postgresql/15/bin/postgres "-D" "/x" "-c" "config_file=` + filepath.Join(etc, "main.conf") + `"` + "\n"}, false},
		{"command line wins", map[string]string{"PG_VERSION": "15\n", "postgresql.conf": "recovery_prefetch = off\n",
			"postmaster.opts": `/usr/bin/postgres "-D" "/x" "--recovery-prefetch=try"` + "\n"}, true},
		{"command line -c wins over auto.conf", map[string]string{"PG_VERSION": "15\n", "postgresql.auto.conf": "recovery_prefetch = 'try'\n",
			"postmaster.opts": `/usr/bin/postgres "-D" "/x" "-c" "recovery_prefetch=off"` + "\n"}, false},
		// Escapes decoded as the server decodes them: '\146' is f.
		{"escaped off", map[string]string{"PG_VERSION": "15\n", "postgresql.conf": `recovery_prefetch = 'of\146'` + "\n"}, false},
		{"escaped quote is not off", map[string]string{"PG_VERSION": "15\n", "postgresql.conf": `recovery_prefetch = 'off\''` + "\n"}, true},
		{"include_dir in name order", map[string]string{"PG_VERSION": "15\n", "postgresql.conf": "include_dir 'conf.d'\n",
			"conf.d/9-late.conf": "recovery_prefetch = off\n", "conf.d/10-early.conf": "recovery_prefetch = try\n"}, false},
		{"include_dir skips dot files", map[string]string{"PG_VERSION": "15\n", "postgresql.conf": "include_dir 'conf.d'\n",
			"conf.d/.off.conf": "recovery_prefetch = off\n"}, true},
		{"include relative to the including file", map[string]string{"PG_VERSION": "15\n", "postgresql.conf": "include 'sub/a.conf'\n",
			"sub/a.conf": "include 'b.conf'\n", "sub/b.conf": "recovery_prefetch = off\n"}, false},
		// A line the server cannot read sets nothing (the server would not
		// have started with it): the default stands.
		{"unreadable line", map[string]string{"PG_VERSION": "15\n", "postgresql.conf": "recovery_prefetch = off off\n"}, true},
		{"before 15", map[string]string{"PG_VERSION": "14\n", "postgresql.conf": ""}, false},
		{"not a data directory", map[string]string{"postgresql.conf": ""}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			writeFiles(t, dir, tc.files)
			got := PrefetchWarning(dir)
			if (got != "") != tc.warn {
				t.Errorf("PrefetchWarning = %q, want a warning: %v", got, tc.warn)
			}
			if got != "" && (!strings.Contains(got, "recovery_prefetch = off") || strings.Contains(got, "\n")) {
				t.Errorf("warning %q is not one line naming the fix", got)
			}
		})
	}
}

func TestReadTrigger(t *testing.T) {
	dir := t.TempDir()
	for content, want := range map[string]Failover{"": Smart, " smart\n": Smart, "fast": Fast, "FAST\r\n": Fast, "soon": Smart} {
		p := filepath.Join(dir, "trigger")
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		still := time.Now().Add(-time.Second) // written a while ago
		os.Chtimes(p, still, still)
		got, odd := readTrigger(p)
		if got != want {
			t.Errorf("trigger %q: got %s, want %s", content, got, want)
		}
		if (odd != "") != (content == "soon") {
			t.Errorf("trigger %q: complaint %q", content, odd)
		}
	}
	// A file just created empty, or with "fa" of "fast" in it, may be
	// written yet: it decides nothing until it has been still a moment;
	// a whole word decides at once.
	p := filepath.Join(dir, "new")
	for _, content := range []string{"", "fa"} {
		os.WriteFile(p, []byte(content), 0o600)
		if got, _ := readTrigger(p); got != NoFailover {
			t.Errorf("trigger %q just written: got %s, want no failover yet", content, got)
		}
	}
	os.WriteFile(p, []byte("fast\n"), 0o600)
	if got, _ := readTrigger(p); got != Fast {
		t.Errorf("trigger \"fast\" just written: got %s, want fast at once", got)
	}
	if got, _ := readTrigger(filepath.Join(dir, "absent")); got != NoFailover {
		t.Errorf("absent trigger file: got %s", got)
	}
	if got, _ := readTrigger(""); got != NoFailover {
		t.Errorf("no trigger file configured: got %s", got)
	}
}
