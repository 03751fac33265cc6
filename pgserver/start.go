package pgserver

import (
	"context"
	"errors"
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

// Start starts the server of dataDir with pg_ctl, its log going to logFile
// (whose directory is made, 0700), without waiting: the caller waits for
// what it needs with WaitFor. opts are options for postgres (pg_ctl -o),
// "" for none.
func Start(ctx context.Context, pgCtl, dataDir, logFile, opts string) error {
	if err := os.MkdirAll(filepath.Dir(logFile), 0o700); err != nil {
		return err
	}
	args := []string{"-D", dataDir, "-l", logFile, "-W"}
	if opts != "" {
		args = append(args, "-o", opts)
	}
	cmd := exec.CommandContext(ctx, pgCtl, append(args, "start")...)
	cmd.Env = Env(true, "")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("pg_ctl start: %v: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

// StartLog is where a server walship starts logs until its own logging
// settings take over (pg_ctl -l): beside its data directory, never inside
// it, where it would grow for ever and every base backup of the server
// would carry it (/var/lib/postgresql/15/main.NAME.log).
func StartLog(dataDir, name string) string {
	dir := filepath.Clean(dataDir)
	return filepath.Join(filepath.Dir(dir), filepath.Base(dir)+"."+name+".log")
}

// ErrStopped and ErrNotReached are how a wait for a started server ends
// when it does not get where it should.
var (
	ErrStopped    = errors.New("the server stopped")
	ErrNotReached = errors.New("not there in time")
)

// Reached tells whether the running server (its postmaster.pid read, its
// log's tail) is where the caller wants it, and says so in words; an error
// says it went somewhere else, where it will not come back from (promoted
// when it should stay a standby), and ends the wait.
type Reached func(ctx context.Context, pf *pgdata.PIDFile, log string) (string, bool, error)

// WaitFor waits until the server started in dataDir is where reached
// wants it, polling every 300 ms. When the server is gone (it stopped, or
// never came up within 10 seconds), gone (may be nil) may still call that
// the goal from its log (a server that shuts down at its recovery target);
// otherwise WaitFor returns an error matching ErrStopped with the server's
// last FATAL line. After timeout it returns one matching ErrNotReached with
// the log's last line.
func WaitFor(ctx context.Context, dataDir, logFile string, timeout time.Duration, reached Reached, gone func(log string) (string, bool)) (string, error) {
	started := time.Now()
	deadline := started.Add(timeout)
	seen := false
	for {
		pf, err := pgdata.ReadPIDFile(dataDir)
		alive := err == nil && pf.Alive()
		log := LogTail(logFile)
		if alive {
			seen = true
			what, ok, err := reached(ctx, pf, log)
			if err != nil {
				return "", err
			}
			if ok {
				return what, nil
			}
		} else if seen || time.Since(started) > 10*time.Second {
			if gone != nil {
				if what, ok := gone(log); ok {
					return what, nil
				}
			}
			return "", fmt.Errorf("%w: %s", ErrStopped, LastFatal(log))
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("%w: after %s: %s", ErrNotReached, timeout, lastLine(log))
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(300 * time.Millisecond):
		}
	}
}

// ConnectLocal connects to the server whose postmaster.pid is pf, at the
// address it gives, with the other settings of base (a connection string;
// "" is libpq's defaults): how walship asks a server it started where it
// is.
func ConnectLocal(ctx context.Context, pf *pgdata.PIDFile, base string) (*pgx.Conn, error) {
	host, port, err := pf.Address()
	if err != nil {
		return nil, err
	}
	cfg, err := pgx.ParseConfig(base)
	if err != nil {
		return nil, fmt.Errorf("%w: connection string %s: %v", ErrUnreachable, Redact(base), redactErr(err, base))
	}
	cfg.Host, cfg.Port, cfg.Fallbacks = host, uint16(port), nil
	if strings.HasPrefix(host, "/") {
		cfg.TLSConfig = nil
	}
	if cfg.Database == "" {
		cfg.Database = "postgres"
	}
	cfg.ConnectTimeout = 5 * time.Second
	return ConnectConfig(ctx, cfg, fmt.Sprintf("the server at %s:%d", host, port))
}

// LogTail is the last 64 KiB of a server log.
func LogTail(path string) string {
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

// LastFatal is the server's last FATAL or PANIC line, else its last line.
func LastFatal(log string) string {
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
