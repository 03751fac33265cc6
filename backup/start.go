package backup

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/walship/walship/pgdata"
	"github.com/walship/walship/pgserver"
)

// start starts the restored server with pg_ctl and waits until it has
// reached what the restore asked for: the target (promoted, paused, or
// shut down there), the end of the archive, streaming from the primary,
// or a consistent state (an archive-only standby). It returns what it saw.
func (run *restoreRun) start(ctx context.Context, pgCtl string) (string, error) {
	dir := run.o.DataDir
	logFile := run.o.StartLog
	if logFile == "" {
		logFile = pgserver.StartLog(dir, "walship-backup-restore")
	}
	fail := func(err error) error {
		return fmt.Errorf("%w: %w (server log %s; the data directory is restored and configured: start it with pg_ctl -D %s start)", ErrStart, err, logFile, dir)
	}
	if err := pgserver.Start(ctx, pgCtl, dir, logFile, ""); err != nil {
		return "", fail(err)
	}
	what, err := pgserver.WaitFor(ctx, dir, logFile, run.o.StartTimeout, run.reached, func(log string) (string, bool) {
		if run.o.Action == "shutdown" && !run.o.Standby && strings.Contains(log, "shutdown at recovery target") {
			return "the server reached " + run.o.Target.String() + " and shut down", true
		}
		return "", false
	})
	if err != nil {
		return "", fail(err)
	}
	return what + " (server log " + logFile + ")", nil
}

// reached tells whether the running server is where the restore wanted
// it: asked over SQL when it takes connections, else read in its log.
func (run *restoreRun) reached(ctx context.Context, pf *pgdata.PIDFile, log string) (string, bool, error) {
	o := run.o
	inRecovery, paused, streaming, sqlErr := run.ask(ctx, pf)
	if o.Standby && sqlErr == nil && !inRecovery {
		// A standby that left recovery (a trigger file, promote) is a
		// second primary now: not what was asked.
		return "", false, fmt.Errorf("%w: the server was to be a standby, and it left recovery: it is a primary now (%s)", errNotAsked, lastPromotion(log))
	}
	switch {
	case o.Standby && o.PrimaryConnInfo != "":
		if sqlErr == nil && streaming {
			return "the standby streams from the primary", true, nil
		}
		if strings.Contains(log, "started streaming WAL from primary") && !promoted(log) {
			return "the standby streams from the primary", true, nil
		}
	case o.Standby:
		if (sqlErr == nil && inRecovery) || (strings.Contains(log, "consistent recovery state reached") && !promoted(log)) {
			return "the standby is consistent and applies each segment as it is archived", true, nil
		}
	case o.Target.Kind != TargetLatest && o.Action == "pause":
		if (sqlErr == nil && paused) || strings.Contains(log, "pausing at the end of recovery") {
			return "recovery paused at " + o.Target.String() + " (SELECT pg_wal_replay_resume() promotes it)", true, nil
		}
	case o.Target.Kind != TargetLatest && o.Action == "shutdown":
		// It stops by itself at the target.
	default:
		if sqlErr == nil && !inRecovery {
			return "the server reached " + o.Target.String() + " and was promoted", true, nil
		}
	}
	return "", false, nil
}

// errNotAsked is a started server that went elsewhere than asked.
var errNotAsked = errors.New("not the state asked for")

// promoted reports whether the server log says the server left recovery.
func promoted(log string) bool {
	return strings.Contains(log, "selected new timeline ID") || strings.Contains(log, "archive recovery complete")
}

// lastPromotion is the log line that says why the server left recovery.
func lastPromotion(log string) string {
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, "trigger") || strings.Contains(l, "promot") {
			return strings.TrimSpace(l)
		}
	}
	return "see the server log"
}

// ask queries the restored server at the address in its postmaster.pid.
func (run *restoreRun) ask(ctx context.Context, pf *pgdata.PIDFile) (inRecovery, paused, streaming bool, err error) {
	conn, err := pgserver.ConnectLocal(ctx, pf, "")
	if err != nil {
		return false, false, false, err
	}
	defer conn.Close(context.Background())
	pausedSQL := "pg_is_wal_replay_paused()"
	if run.version.Major >= 14 {
		pausedSQL = "pg_get_wal_replay_pause_state() = 'paused'"
	}
	err = conn.QueryRow(ctx, `SELECT pg_is_in_recovery(), pg_is_in_recovery() AND `+pausedSQL+`,
		coalesce((SELECT status = 'streaming' FROM pg_stat_wal_receiver), false)`).Scan(&inRecovery, &paused, &streaming)
	return inRecovery, paused, streaming, err
}
