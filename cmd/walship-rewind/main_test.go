package main

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"testing"

	"github.com/urfave/cli/v2"

	"github.com/walship/walship/internal/cliutil"
	"github.com/walship/walship/rewind"
)

// TestRestoreArgs: the repository settings reach walship-restore from the
// command line, the environment and the config file alike, with local
// paths made absolute (the server runs restore_command elsewhere).
func TestRestoreArgs(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "walship.toml")
	if err := os.WriteFile(conf, []byte("layout = 'plain'\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Chdir(dir)
	t.Setenv("WALSHIP_OP_TIMEOUT", "10s")
	flags := cliutil.RepoFlags()
	var got []string
	app := &cli.App{Name: "walship-rewind", Flags: flags, Before: cliutil.Before(flags),
		Action: func(c *cli.Context) error { got = restoreArgs(c); return nil }}
	if err := app.Run([]string{"walship-rewind", "--repo", "archive", "--config", "walship.toml", "--verbose"}); err != nil {
		t.Fatal(err)
	}
	sort.Strings(got)
	want := []string{"--config=" + conf, "--layout=plain", "--op-timeout=10s", "--repo=" + filepath.Join(dir, "archive")}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %q\nwant %q", got, want)
	}
}

func TestExitCode(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want int
	}{
		{nil, exitOK},
		{cliutil.UsageError{Err: errors.New("no target")}, exitUsage},
		{&rewind.StepError{Step: rewind.StepSource, Err: rewind.ErrOtherSystem}, exitFailed},
		{&rewind.StepError{Step: rewind.StepRewind, Err: rewind.ErrRewindFailed}, exitFailed},
		{&rewind.StepError{Step: rewind.StepRewind, Err: rewind.ErrRewindFailed, Changed: true}, exitDamaged},
		{&rewind.StepError{Step: rewind.StepStandby, Err: errors.New("disk full")}, exitNotStandby},
		{&rewind.StepError{Step: rewind.StepStart, Err: rewind.ErrNotStreaming}, exitNotStandby},
	} {
		if got := exitCode(tc.err); got != tc.want {
			t.Errorf("exitCode(%v) = %d, want %d", tc.err, got, tc.want)
		}
	}
}

func TestConfigKeysListed(t *testing.T) {
	if missing := cliutil.ConfigFlagsUnlisted(newApp().Flags); len(missing) > 0 {
		t.Errorf("settings a config file can hold but cliutil does not list: %v", missing)
	}
}
