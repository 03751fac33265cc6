package main

import (
	"testing"

	"github.com/urfave/cli/v2"

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
