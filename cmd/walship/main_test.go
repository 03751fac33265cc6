package main

import (
	"testing"

	"github.com/walship/walship/internal/cliutil"
)

func TestConfigKeysListed(t *testing.T) {
	for _, c := range newApp().Commands {
		if missing := cliutil.ConfigFlagsUnlisted(c.Flags); len(missing) > 0 {
			t.Errorf("walship %s: settings a config file can hold but cliutil does not list: %v", c.Name, missing)
		}
	}
}
