package main

import (
	"context"
	"fmt"
	"testing"

	"github.com/urfave/cli/v2"

	"github.com/walship/walship/backup"
	"github.com/walship/walship/internal/cliutil"
)

func TestConfigKeysListed(t *testing.T) {
	var check func(prefix string, cmds []*cli.Command)
	check = func(prefix string, cmds []*cli.Command) {
		for _, c := range cmds {
			if missing := cliutil.ConfigFlagsUnlisted(c.Flags); len(missing) > 0 {
				t.Errorf("walship %s%s: settings a config file can hold but cliutil does not list: %v", prefix, c.Name, missing)
			}
			check(prefix+c.Name+" ", c.Subcommands)
		}
	}
	check("", newApp().Commands)
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
