package backup

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/walship/walship/catalog"
	"github.com/walship/walship/internal/logx"
	"github.com/walship/walship/internal/progress"
	"github.com/walship/walship/pgdata"
	"github.com/walship/walship/pgserver"
	"github.com/walship/walship/repo"
	"github.com/walship/walship/wal"
)

// RestoreOptions say what to restore where, and how it recovers.
type RestoreOptions struct {
	DataDir  string        // the new data directory: absent or empty
	BackupID repo.BackupID // "": the newest that reaches Target
	Target   Target
	// Action is recovery_target_action once the target is reached:
	// promote (default), pause or shutdown.
	Action string
	// Standby makes a standby instead of a copy: of PrimaryConnInfo when
	// given (streaming, with walship-restore for what it cannot stream),
	// else archive-only, whose restore_command waits for each segment and
	// which Trigger (a file) promotes, or pg_ctl promote without one.
	Standby         bool
	PrimaryConnInfo string
	SlotName        string
	Trigger         string
	// KeepArchiving keeps the backup's archive_mode in a copy (which then,
	// once promoted, archives a new timeline into the repository it was
	// told to); by default a copy gets archive_mode = off.
	KeepArchiving bool
	// TablespaceMap moves tablespaces: the server's directory -> the new one.
	TablespaceMap map[string]string
	// Settings are more settings for postgresql.auto.conf (port = 5433).
	Settings []pgdata.Setting
	// RestoreBin and RestoreArgs make the restore_command: walship-restore
	// for the same repository.
	RestoreBin  string
	RestoreArgs []string
	PGBin       string // directory of pg_ctl for Start; "" finds it
	// NoSync skips flushing the restored files to disk.
	NoSync bool
	// Start starts the server and waits until it reaches the target,
	// streams (a standby), or is consistent (an archive-only standby).
	Start        bool
	StartLog     string // pg_ctl -l; default pgserver.StartLog(DataDir, "walship-backup-restore")
	StartTimeout time.Duration
	Bar          func(total int64) *progress.Bar
	// Log receives what the restore does (nil: none).
	Log *slog.Logger
}

// RestoreResult is what a restore did.
type RestoreResult struct {
	Backup catalog.Record
	// Chain is the number of backups restored: 1 for a full backup, and
	// for an incremental one its parents down to the full backup too.
	Chain   int
	Files   int
	Bytes   int64
	Wrote   []string // the recovery configuration
	Started string   // with Start: what the server reached
	Elapsed time.Duration
}

// Restore restores a stored backup into a new data directory. Nothing is
// written to the data directory (or a tablespace's) before every file of
// the backup was fetched into a staging directory inside it and checked
// against the backup's record and manifest; on any failure the staging
// directory, and the data directory if Restore made it, are removed.
func Restore(ctx context.Context, r *repo.Repo, o RestoreOptions) (*RestoreResult, error) {
	t0 := time.Now()
	o.Log = logx.Or(o.Log)
	if o.Action == "" {
		o.Action = "promote"
	}
	if o.Action != "promote" && o.Action != "pause" && o.Action != "shutdown" {
		return nil, fmt.Errorf("recovery target action %q: promote, pause or shutdown", o.Action)
	}
	if o.Standby && o.Target.Kind != TargetLatest {
		return nil, errors.New("a standby follows the primary: it takes no recovery target")
	}
	if o.StartTimeout <= 0 {
		o.StartTimeout = 10 * time.Minute
	}
	abs, err := filepath.Abs(o.DataDir)
	if err != nil {
		return nil, err
	}
	o.DataDir = abs
	if os.Geteuid() == 0 {
		return nil, errors.New("refusing to restore as root: the server refuses a data directory it does not own; run as the user that runs the server (sudo -u postgres ...)")
	}
	if o.Trigger != "" {
		// Left from an earlier standby, it would promote the new one at
		// once: a second primary, archiving a new timeline beside the
		// running one.
		if _, err := os.Lstat(o.Trigger); err == nil {
			return nil, fmt.Errorf("the trigger file %s exists already (left from an earlier standby?): the new standby would promote at once; remove it first", o.Trigger)
		}
	}
	if fi, err := os.Stat(o.RestoreBin); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
		return nil, fmt.Errorf("walship-restore for the restore_command: %s is not an executable program", o.RestoreBin)
	}

	ident, haveID, err := r.Identity(ctx)
	if err != nil {
		return nil, err
	}
	if !haveID {
		return nil, fmt.Errorf("%w: %s has no %s", repo.ErrNoRepository, r, repo.IdentityKey)
	}
	cat, err := catalog.Scan(ctx, r)
	if err != nil {
		return nil, err
	}
	cand, err := choose(cat, o.Target, o.BackupID)
	if err != nil {
		return nil, err
	}
	if o.BackupID == "" {
		if newer, why := passedOver(cat, cand); newer != "" {
			o.Log.Warn(fmt.Sprintf("backup %s is newer but cannot be restored (%s): restoring %s", newer, why, cand.meta.ID))
		}
	}
	m := cand.meta
	if m.SystemID != ident.SystemID {
		return nil, fmt.Errorf("%w: backup %s is of database system %d, the repository holds the WAL of %d", wal.ErrOtherCluster, m.ID, m.SystemID, ident.SystemID)
	}
	version := pgdata.VersionFromNum(m.PGVersionNum)
	var pgCtl string
	if o.Start {
		if pgCtl, err = pgserver.FindProgram(ctx, o.PGBin, "pg_ctl", version); err != nil {
			return nil, err
		}
	}
	dests, err := destinations(m, o)
	if err != nil {
		return nil, err
	}
	for _, d := range dests {
		if err := emptyOrAbsent(d.dir, o.Log); err != nil {
			return nil, err
		}
	}

	chain, err := cat.Chain(cand.b)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNoBackup, err)
	}
	run := &restoreRun{r: r, o: o, m: m, dests: dests, version: version}
	for _, b := range chain {
		run.chain = append(run.chain, b.Stored.Record)
	}
	res, err := run.fetch(ctx)
	if err != nil {
		run.cleanup()
		return nil, err
	}
	res.Elapsed = time.Since(t0)
	if o.Start {
		what, err := run.start(ctx, pgCtl)
		res.Started = what
		res.Elapsed = time.Since(t0)
		if err != nil {
			return res, err
		}
	}
	return res, nil
}

type restoreRun struct {
	r       *repo.Repo
	o       RestoreOptions
	m       *catalog.Record
	chain   []*catalog.Record // the full backup first, m last
	dests   []*dest
	version pgdata.Version

	aheadMu sync.Mutex
	ahead   map[repo.BackupObject]aheadTar // the next member's tars, read ahead
}

// restoreCommand is walship-restore for the same repository; an
// archive-only standby's waits for each segment.
func (run *restoreRun) restoreCommand() string {
	args := append([]string{}, run.o.RestoreArgs...)
	if run.o.Standby && run.o.PrimaryConnInfo == "" {
		args = append(args, "--standby")
		if run.o.Trigger != "" {
			args = append(args, "--trigger="+run.o.Trigger)
		}
	}
	return pgserver.RestoreCommand(run.o.RestoreBin, args)
}

func firstError(errs []error) error {
	// A cancellation caused by another failure is not the news.
	sorted := append([]error{}, errs...)
	sort.SliceStable(sorted, func(i, j int) bool {
		return sorted[i] != nil && !errors.Is(sorted[i], context.Canceled) && (sorted[j] == nil || errors.Is(sorted[j], context.Canceled))
	})
	return sorted[0]
}

// Summary is what a restore prints: one fact a line, what it restored
// first.
func (res *RestoreResult) Summary(dir string) string {
	m := res.Backup
	kind := ""
	if res.Chain > 1 {
		kind = fmt.Sprintf(", incremental: rebuilt from %d backups", res.Chain)
	}
	lines := []string{fmt.Sprintf("restored backup %s (%s, from the %s%s, consistent at %s) into %s: %d files, %s, in %s",
		m.ID, m.StartTime.UTC().Format(time.RFC3339), m.From, kind, m.Stop, dir, res.Files, progress.Bytes(res.Bytes),
		res.Elapsed.Round(100*time.Millisecond))}
	for _, w := range res.Wrote {
		lines = append(lines, "  "+w)
	}
	if res.Started != "" {
		lines = append(lines, "  "+res.Started)
	}
	return strings.Join(lines, "\n")
}
