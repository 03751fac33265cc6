package cliutil

import (
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"testing"

	"github.com/urfave/cli/v2"
)

// TestRepoArgs: the repository settings reach walship-restore from the
// command line, the environment and the config file alike, with local
// paths made absolute (the server runs restore_command elsewhere).
func TestRepoArgs(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "walship.toml")
	if err := os.WriteFile(conf, []byte("layout = 'plain'\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Chdir(dir)
	t.Setenv("WALSHIP_OP_TIMEOUT", "10s")
	flags := RepoFlags()
	var got []string
	app := &cli.App{Name: "walship-rewind", Flags: flags, Before: Before(flags),
		Action: func(c *cli.Context) error { got = RepoArgs(c); return nil }}
	if err := app.Run([]string{"walship-rewind", "--repo", "archive", "--config", "walship.toml", "--verbose"}); err != nil {
		t.Fatal(err)
	}
	sort.Strings(got)
	want := []string{"--config=" + conf, "--layout=plain", "--op-timeout=10s", "--repo=" + filepath.Join(dir, "archive")}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %q\nwant %q", got, want)
	}
}
