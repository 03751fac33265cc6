package warmstandby

import (
	"fmt"
	"strings"

	"github.com/walship/walship/pgdata"
)

// PrefetchWarning returns a one-line warning when the server whose data
// directory is dataDir is PostgreSQL 15 or later and its configuration
// does not set recovery_prefetch = off, and "" otherwise (also when it
// cannot tell). With the default (try) the startup process reads ahead into
// the next segment and blocks in a waiting restore_command before it has
// applied the end of the current one.
//
// It reads the files, not the running server (pgdata.ReadConf): the main
// configuration file with its include directives, postgresql.auto.conf,
// then the command line recorded in postmaster.opts. What it cannot read
// it leaves out: this is a check, the server has read its files already.
func PrefetchWarning(dataDir string) string {
	if dataDir == "" {
		dataDir = "."
	}
	ver, err := pgdata.ReadVersion(dataDir)
	if err != nil || ver.Major < 15 {
		return ""
	}
	conf, _ := pgdata.ReadConf(dataDir, "")
	v, set := conf.Settings["recovery_prefetch"]
	switch strings.ToLower(v) { // an enum: its names, not every boolean spelling
	case "off", "false", "no", "0":
		return ""
	}
	if !set {
		v = "try (the default)"
	}
	return fmt.Sprintf("recovery_prefetch is %s: PostgreSQL %d reads ahead and then waits in this restore_command before applying "+
		"the segment it already has; set recovery_prefetch = off for a standby whose restore_command waits", v, ver.Major)
}
