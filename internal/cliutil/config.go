package cliutil

import (
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/BurntSushi/toml"
	"github.com/urfave/cli/v2"
	"github.com/urfave/cli/v2/altsrc"
)

// configKeys are the settings a config file may hold: the long flag names
// of every walship program that reads one, since one file may serve them
// all. A key that is none of them is refused. (Each program's tests check
// that its own settings are listed: ConfigFlagsUnlisted.)
var configKeys = map[string]bool{}

func init() {
	for _, k := range strings.Fields(`
		config repo layout op-timeout retry-budget verbose
		s3-endpoint s3-region s3-path-style s3-storage-class s3-sse s3-sse-kms-key-id s3-profile
		recipient recipients-file identity
		compress parallel spool
		on-error prefetch data-dir standby trigger max-wait poll
		keep-backups keep-age system-identifier
		tail-grace dbname timeout max-age no-switch
		source-server primary-conninfo slot restore-bin pg-bin config-file dry-run progress
		start start-log start-timeout
		dbname checkpoint compress-at max-rate
		create-slot synchronous application-name flush-interval`) {
		configKeys[k] = true
	}
}

// ConfigFlagsUnlisted returns the flags that a config file can set but the
// list of known config keys lacks: a program's tests call it.
func ConfigFlagsUnlisted(flags []cli.Flag) []string {
	var out []string
	for _, f := range flags {
		if _, ok := f.(altsrc.FlagInputSourceExtension); ok && !configKeys[f.Names()[0]] {
			out = append(out, f.Names()[0])
		}
	}
	return out
}

// Before loads the config file into the flags and checks them. Use it
// as the app's Before hook.
func Before(flags []cli.Flag) cli.BeforeFunc {
	load := altsrc.InitInputSourceWithContext(flags, altsrc.NewTomlSourceFromFlagFunc("config"))
	return func(c *cli.Context) error {
		if path := c.String("config"); path != "" {
			if err := checkConfig(path); err != nil {
				// %v, not %w: a missing config file must not look like a
				// file missing from the archive (restore's exit 1).
				return UsageError{Err: fmt.Errorf("config file %s: %v", path, err)}
			}
		}
		if err := load(c); err != nil {
			// altsrc nests its errors over several lines; the report is one.
			return UsageError{Err: fmt.Errorf("config file %s: %s", c.String("config"), strings.Join(strings.Fields(err.Error()), " "))}
		}
		if err := checkDurations(c, flags); err != nil {
			return UsageError{Err: err}
		}
		return nil
	}
}

// checkConfig reads and parses the config file, for an error that names the
// cause plainly (altsrc wraps it in layers of its own), and refuses a key
// no walship program knows: a misspelt setting must not be ignored.
func checkConfig(path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var m map[string]any
	if err := toml.Unmarshal(data, &m); err != nil {
		return err
	}
	var unknown []string
	for k := range m {
		if !configKeys[k] {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return fmt.Errorf("unknown setting %q: settings are the long flag names, such as repo or op-timeout", strings.Join(unknown, `", "`))
	}
	return nil
}

// checkDurations refuses negative durations, from whichever source.
func checkDurations(c *cli.Context, flags []cli.Flag) error {
	for _, f := range flags {
		name := f.Names()[0]
		switch f.(type) {
		case *cli.DurationFlag, *altsrc.DurationFlag:
			if d := c.Duration(name); d < 0 {
				return fmt.Errorf("--%s %s: must not be negative", name, d)
			}
		}
	}
	return nil
}
