package cliutil

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"
	"github.com/urfave/cli/v2/altsrc"
)

// run runs an app with RepoFlags and one more duration setting.
func run(t *testing.T, args ...string) error {
	t.Helper()
	flags := append(RepoFlags(), altsrc.NewDurationFlag(&cli.DurationFlag{Name: "poll"}))
	app := &cli.App{Name: "t", Flags: flags, Before: Before(flags), Action: func(*cli.Context) error { return nil }}
	return Run(context.Background(), app, args...)
}

func TestConfigUnknownKeyRefused(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "walship.toml")
	os.WriteFile(conf, []byte("repo = '/var/lib/walship'\nretry_budget = '5s'\n"), 0o600)
	err := run(t, "--config", conf)
	var ue UsageError
	if !errors.As(err, &ue) || !strings.Contains(err.Error(), `"retry_budget"`) {
		t.Errorf("a misspelt key = %v, want a usage error naming it", err)
	}
	// Another walship program's setting is fine: one file may serve all.
	os.WriteFile(conf, []byte("repo = '/var/lib/walship'\ncompress = 'lz4'\non-error = 'abort'\n"), 0o600)
	if err := run(t, "--config", conf); err != nil {
		t.Errorf("a file shared with other walship programs: %v", err)
	}
}

func TestNegativeDurationsRefused(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "walship.toml")
	os.WriteFile(conf, []byte("op-timeout = '-1s'\n"), 0o600)
	for _, args := range [][]string{
		{"--retry-budget", "-5s"},
		{"--poll=-1m"},
		{"--config", conf},
	} {
		err := run(t, args...)
		if !errors.As(err, new(UsageError)) || !strings.Contains(err.Error(), "negative") {
			t.Errorf("%v: %v, want a usage error about a negative duration", args, err)
		}
	}
	t.Setenv("WALSHIP_RETRY_BUDGET", "-1s")
	if err := run(t); err == nil || !strings.Contains(err.Error(), "retry-budget") {
		t.Errorf("a negative duration from the environment: %v", err)
	}
}
