package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/urfave/cli/v2"

	"github.com/walship/walship/backup"
	"github.com/walship/walship/check"
	"github.com/walship/walship/internal/cliutil"
	"github.com/walship/walship/internal/testenv/fakerepo"
	"github.com/walship/walship/repo"
)

func TestConfigKeysListed(t *testing.T) {
	var walk func(prefix string, cmds []*cli.Command)
	walk = func(prefix string, cmds []*cli.Command) {
		for _, c := range cmds {
			if missing := cliutil.ConfigFlagsUnlisted(c.Flags); len(missing) > 0 {
				t.Errorf("walship %s%s: settings a config file can hold but cliutil does not list: %v", prefix, c.Name, missing)
			}
			walk(prefix+c.Name+" ", c.Subcommands)
		}
	}
	walk("", newApp().Commands)
}

// Bad command lines of walship backup are usage errors (exit 2), found
// before the repository or any server is touched.
func TestBackupUsage(t *testing.T) {
	repoDir := t.TempDir() + "/none" // never opened
	for _, args := range [][]string{
		{"backup"},
		{"backup", "nosuch"},
		{"backup", "create", "--repo", repoDir},
		{"backup", "restore", "--repo", repoDir},
		{"backup", "restore", "--repo", repoDir, "-D", "/x", "--target-time", "yesterday"},
		{"backup", "restore", "--repo", repoDir, "-D", "/x", "--target-lsn", "12"},
		{"backup", "restore", "--repo", repoDir, "-D", "/x", "--target-time", "2024-01-02T03:04:05Z", "--target-name", "a"},
		{"backup", "restore", "--repo", repoDir, "-D", "/x", "--standby", "--target-name", "a"},
		{"backup", "restore", "--repo", repoDir, "-D", "/x", "--primary-conninfo", "host=a"},
		{"backup", "restore", "--repo", repoDir, "-D", "/x", "--standby", "--trigger", "/t", "--primary-conninfo", "host=a"},
		{"backup", "restore", "--repo", repoDir, "-D", "/x", "--target-action", "pause"},
		{"backup", "restore", "--repo", repoDir, "-D", "/x", "-T", "relative=/y"},
		{"backup", "restore", "--repo", repoDir, "-D", "/x", "--set", "noequals"},
		{"backup", "restore", "--repo", repoDir, "-D", "/x", "--backup", "last-tuesday"},
		{"backup", "register", "--repo", repoDir},
		{"backup", "delete", "--repo", repoDir},
		{"backup", "delete", "--repo", repoDir, "yesterday"},
		{"backup", "expire", "--repo", repoDir},
		{"backup", "expire", "--repo", repoDir, "--keep-backups", "0"},
		{"backup", "expire", "--repo", repoDir, "--keep-age", "soon"},
	} {
		err := cliutil.Run(context.Background(), newApp(), args...)
		if code := exitCode(err); code != exitUsage {
			t.Errorf("walship %v: exit %d (%v), want %d", args, code, err, exitUsage)
		}
	}
}

func TestBackupExitCodes(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want int
	}{
		{fmt.Errorf("x: %w", backup.ErrNoBackup), exitFailed},
		{fmt.Errorf("x: %w", backup.ErrDamaged), exitFailed},
		{fmt.Errorf("x: %w", backup.ErrStart), exitStart},
	} {
		if got := exitCode(tc.err); got != tc.want {
			t.Errorf("exitCode(%v) = %d, want %d", tc.err, got, tc.want)
		}
	}
}

func TestExitCode(t *testing.T) {
	for _, tt := range []struct {
		err  error
		want int
	}{
		{nil, 0},
		{cliutil.UsageError{Err: errors.New("ls takes no arguments")}, 2},
		{problemsError(3), 1},
		{fmt.Errorf("wrapped: %w", problemsError(1)), 1},
		{errors.New("no walship repository at /nowhere"), 1}, // unreadable: 1, as for every program (was 3)
	} {
		if got := exitCode(tt.err); got != tt.want {
			t.Errorf("exitCode(%v) = %d, want %d", tt.err, got, tt.want)
		}
	}
}

// TestCheckExitCodes: walship check answers a mistake in its own call
// with UNKNOWN (3), as a monitoring plugin does; the other commands keep
// 2 for usage.
func TestCheckExitCodes(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want int
	}{
		{[]string{"check", "--bogus"}, 3},
		{[]string{"check"}, 3}, // no repository
		{[]string{"check", "--repo", "/nonexistent", "extra"}, 3},
		{[]string{"check", "--repo", "/nonexistent", "--max-age", "-1m"}, 3},
		{[]string{"verify", "--bogus"}, 2},
		{[]string{"metrics", "--bogus"}, 2},
	} {
		err := cliutil.Run(context.Background(), newApp(), tc.args...)
		if got := exitCode(err); got != tc.want {
			t.Errorf("walship %v: exit %d (%v), want %d", tc.args, got, err, tc.want)
		}
	}
	if got := exitCode(cliutil.Quiet{Err: verdict(check.Critical)}); got != 2 {
		t.Errorf("CRITICAL: exit %d", got)
	}
	if got := exitCode(cliutil.Quiet{Err: verdict(check.Warning)}); got != 1 {
		t.Errorf("WARNING: exit %d", got)
	}
}

// TestMetricsFile: walship metrics -o writes the file whole, readable by
// node_exporter, with the repository's values; a repository that cannot
// be read still gives a file that says so.
func TestMetricsFile(t *testing.T) {
	f := fakerepo.New(t)
	f.Segments(1, 1, 3)
	dir := t.TempDir()
	out := filepath.Join(dir, "walship.prom")
	if err := cliutil.Run(context.Background(), newApp(), "metrics", "--repo", f.Dir, "-o", out); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(out)
	if err != nil || fi.Mode().Perm() != 0o644 {
		t.Fatalf("metrics file: %v, %v; want mode 0644", fi, err)
	}
	data, _ := os.ReadFile(out)
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("parsing %s: %v\n%s", out, err, data)
	}
	if v := mfs["walship_segments"].GetMetric()[0].GetGauge().GetValue(); v != 3 {
		t.Errorf("walship_segments = %v, want 3\n%s", v, data)
	}
	if _, ok := mfs["walship_server_up"]; ok {
		t.Errorf("walship_server_up without -d")
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("files left beside the metrics: %v", entries)
	}

	if err := cliutil.Run(context.Background(), newApp(), "metrics", "--repo", filepath.Join(dir, "nowhere"), "-o", out); err != nil {
		t.Fatal(err)
	}
	data, _ = os.ReadFile(out)
	if mfs, err = p.TextToMetricFamilies(bytes.NewReader(data)); err != nil || mfs["walship_repository_up"].GetMetric()[0].GetGauge().GetValue() != 0 {
		t.Errorf("unreadable repository: %v\n%s", err, data)
	}
}

// walship backup expire applies walship-prune's policy: --dry-run lists
// and removes nothing; the real run removes the expired stored backup and
// the WAL only it needed.
func TestBackupExpire(t *testing.T) {
	f := fakerepo.New(t)
	f.Segments(1, 1, 12)
	day := time.Date(2024, 5, 1, 2, 0, 0, 0, time.UTC)
	old := f.StoredBackup(1, 2, 3, day, "standby")
	f.StoredBackup(1, 8, 9, day.Add(time.Hour), "standby")
	run := func(args ...string) {
		t.Helper()
		if err := cliutil.Run(context.Background(), newApp(), append([]string{"backup", "expire", "--repo", f.Dir, "--keep-backups", "1"}, args...)...); err != nil {
			t.Fatal(err)
		}
	}
	meta := f.BackupPath(old, repo.MetaPart)
	run("--dry-run")
	if _, err := os.Stat(meta); err != nil || !f.Has(fakerepo.Seg(1, 2)) {
		t.Fatalf("--dry-run removed something: %v", err)
	}
	run()
	if _, err := os.Stat(meta); !errors.Is(err, os.ErrNotExist) || f.Has(fakerepo.Seg(1, 7)) || !f.Has(fakerepo.Seg(1, 8)) {
		t.Errorf("after expire: the old backup's record %v, segment 7 kept %v, segment 8 kept %v", err, f.Has(fakerepo.Seg(1, 7)), f.Has(fakerepo.Seg(1, 8)))
	}
}

// Bad command lines of walship receive are usage errors (exit 2), found
// before the repository or the server is touched.
func TestReceiveUsage(t *testing.T) {
	repoDir := t.TempDir() + "/none" // never opened
	for _, args := range [][]string{
		{"receive", "--repo", repoDir},
		{"receive", "--repo", repoDir, "-d", "host=/nonexistent"},
		{"receive", "--repo", repoDir, "-d", "host=/nonexistent", "--slot", "Bad-Name"},
		{"receive", "--repo", repoDir, "-d", "host=/nonexistent", "--slot", "s", "--flush-interval", "-1s"},
		{"receive", "--repo", repoDir, "-d", "host=/nonexistent", "--slot", "s", "extra"},
	} {
		err := cliutil.Run(context.Background(), newApp(), args...)
		if code := exitCode(err); code != exitUsage {
			t.Errorf("walship %v: exit %d (%v), want %d", args, code, err, exitUsage)
		}
	}
	if _, err := os.Stat(repoDir); err == nil {
		t.Errorf("a bad command line created the repository")
	}
}
