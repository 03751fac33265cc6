package cliutil

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"
	"github.com/urfave/cli/v2/altsrc"
)

// RetentionFlags are the retention policy's flags, the same for
// walship-prune and walship backup expire.
func RetentionFlags() []cli.Flag {
	return []cli.Flag{
		altsrc.NewIntFlag(&cli.IntFlag{Name: "keep-backups", EnvVars: []string{"WALSHIP_KEEP_BACKUPS"},
			Usage: "keep the `N` newest restorable base backups (stored with walship backup, from a primary or a standby, registered, or known from .backup files) and the WAL they need"}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "keep-age", EnvVars: []string{"WALSHIP_KEEP_AGE"},
			Usage: "keep the WAL archived within this `DURATION` (7d, 2w, 36h, 90m), everything after it, and the newest base backup taken before it"}),
		&cli.BoolFlag{Name: "dry-run", Aliases: []string{"n"}, Usage: "list what would be removed and the bytes freed; remove nothing"},
	}
}

// Retention reads --keep-backups (0: not given) and --keep-age (nil: not
// given); a bad value is a UsageError.
func Retention(c *cli.Context) (keepBackups int, keepAge *time.Duration, err error) {
	if c.IsSet("keep-backups") {
		if keepBackups = c.Int("keep-backups"); keepBackups < 1 {
			return 0, nil, UsageError{Err: fmt.Errorf("--keep-backups %d: must be at least 1", keepBackups)}
		}
	}
	if s := c.String("keep-age"); s != "" {
		d, err := ParseAge(s)
		if err != nil {
			return 0, nil, UsageError{Err: err}
		}
		keepAge = &d
	}
	return keepBackups, keepAge, nil
}

// ParseAge reads a duration that may start with days and weeks (7d, 2w,
// 1d12h), which time.ParseDuration lacks.
func ParseAge(s string) (time.Duration, error) {
	bad := fmt.Errorf("--keep-age %q: use a duration like 7d, 2w, 36h or 90m", s)
	rest := strings.TrimSpace(s)
	if rest == "" {
		return 0, bad
	}
	var total time.Duration
	for rest != "" {
		i := 0
		for i < len(rest) && rest[i] >= '0' && rest[i] <= '9' {
			i++
		}
		if i == 0 || i == len(rest) || (rest[i] != 'd' && rest[i] != 'w') {
			break
		}
		n, err := strconv.ParseInt(rest[:i], 10, 32)
		if err != nil {
			return 0, bad
		}
		unit := 24 * time.Hour
		if rest[i] == 'w' {
			unit *= 7
		}
		total += time.Duration(n) * unit
		rest = rest[i+1:]
	}
	if rest != "" {
		d, err := time.ParseDuration(rest)
		if err != nil || d < 0 {
			return 0, bad
		}
		total += d
	}
	if total < 0 || total > 100*365*24*time.Hour {
		return 0, bad
	}
	return total, nil
}
