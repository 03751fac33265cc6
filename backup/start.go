package backup

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/walship/walship/pgdata"
)

// start starts the restored server with pg_ctl and waits until it has
// reached what the restore asked for: the target (promoted, paused, or
// shut down there), the end of the archive, streaming from the primary,
// or a consistent state (an archive-only standby). It returns what it saw.
func (run *restoreRun) start(ctx context.Context, pgCtl string) (string, error) {
	dir := run.o.DataDir
	logFile := run.o.StartLog
	if logFile == "" {
		logFile = filepath.Join(dir, "log", "walship-backup-restore.log")
	}
	fail := func(err error) error {
		return fmt.Errorf("%w: %w (server log %s; the data directory is restored and configured: start it with pg_ctl -D %s start)", ErrStart, err, logFile, dir)
	}
	if err := os.MkdirAll(filepath.Dir(logFile), 0o700); err != nil {
		return "", fail(err)
	}
	cmd := exec.CommandContext(ctx, pgCtl, "-D", dir, "-l", logFile, "-W", "start")
	cmd.Env = childEnv()
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fail(fmt.Errorf("pg_ctl start: %v: %s", err, strings.TrimSpace(string(out))))
	}
	started := time.Now()
	deadline := started.Add(run.o.StartTimeout)
	seen := false
	for {
		pf, err := pgdata.ReadPIDFile(dir)
		alive := err == nil && pf.Alive()
		log := logTail(logFile)
		if alive {
			seen = true
			if what, ok := run.reached(ctx, pf, log); ok {
				return what, nil
			}
		} else if seen || time.Since(started) > 10*time.Second {
			// The server is gone.
			if run.o.Action == "shutdown" && !run.o.Standby && strings.Contains(log, "shutdown at recovery target") {
				return "the server reached " + run.o.Target.String() + " and shut down", nil
			}
			return "", fail(fmt.Errorf("the server stopped: %s", lastFatal(log)))
		}
		if time.Now().After(deadline) {
			return "", fail(fmt.Errorf("not done after %s: %s", run.o.StartTimeout, lastLine(log)))
		}
		select {
		case <-ctx.Done():
			return "", fail(ctx.Err())
		case <-time.After(300 * time.Millisecond):
		}
	}
}

// reached tells whether the running server is where the restore wanted
// it: asked over SQL when it takes connections, else read in its log.
func (run *restoreRun) reached(ctx context.Context, pf *pgdata.PIDFile, log string) (string, bool) {
	o := run.o
	inRecovery, paused, streaming, sqlErr := run.ask(ctx, pf)
	switch {
	case o.Standby && o.PrimaryConnInfo != "":
		if sqlErr == nil && streaming {
			return "the standby streams from the primary", true
		}
		if strings.Contains(log, "started streaming WAL from primary") {
			return "the standby streams from the primary", true
		}
	case o.Standby:
		if (sqlErr == nil && inRecovery) || strings.Contains(log, "consistent recovery state reached") {
			return "the standby is consistent and applies each segment as it is archived", true
		}
	case o.Target.Kind != TargetLatest && o.Action == "pause":
		if (sqlErr == nil && paused) || strings.Contains(log, "pausing at the end of recovery") {
			return "recovery paused at " + o.Target.String() + " (SELECT pg_wal_replay_resume() promotes it)", true
		}
	case o.Target.Kind != TargetLatest && o.Action == "shutdown":
		// It stops by itself at the target.
	default:
		if sqlErr == nil && !inRecovery {
			return "the server reached " + o.Target.String() + " and was promoted", true
		}
	}
	return "", false
}

// ask queries the restored server at the address in its postmaster.pid.
func (run *restoreRun) ask(ctx context.Context, pf *pgdata.PIDFile) (inRecovery, paused, streaming bool, err error) {
	host, port, err := pf.Address()
	if err != nil {
		return false, false, false, err
	}
	cfg, err := pgx.ParseConfig(fmt.Sprintf("host='%s' port=%d dbname=postgres connect_timeout=5", strings.ReplaceAll(host, "'", `\'`), port))
	if err != nil {
		return false, false, false, err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := pgx.ConnectConfig(ctx, cfg)
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

// logTail is the end of the server log.
func logTail(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Size() > 1<<16 {
		f.Seek(-(1 << 16), io.SeekEnd)
	}
	b, _ := io.ReadAll(f)
	return string(b)
}

// lastFatal is the server's last FATAL or PANIC line, else its last line.
func lastFatal(log string) string {
	lines := strings.Split(strings.TrimSpace(log), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		for _, level := range []string{"FATAL:", "PANIC:"} {
			if _, msg, ok := strings.Cut(lines[i], level); ok {
				return strings.TrimSpace(level + msg)
			}
		}
	}
	return lastLine(log)
}

func lastLine(log string) string {
	log = strings.TrimSpace(log)
	if i := strings.LastIndexByte(log, '\n'); i >= 0 {
		log = log[i+1:]
	}
	if log == "" {
		return "nothing in the server log"
	}
	return log
}
