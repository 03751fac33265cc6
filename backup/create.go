package backup

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/walship/walship/catalog"
	"github.com/walship/walship/internal/logx"
	"github.com/walship/walship/internal/progress"
	"github.com/walship/walship/pgdata"
	"github.com/walship/walship/pgserver"
	"github.com/walship/walship/repo"
	"github.com/walship/walship/storage"
)

// CreateOptions say which server to back up and how.
type CreateOptions struct {
	// ConnString is the libpq connection string of the server, a primary
	// or a standby; the backup runs on a replication connection, so the
	// role needs the replication privilege.
	ConnString string
	// Label is the backup's label (default: walship and the backup's ID).
	Label string
	// Checkpoint is "fast" or "spread" (how the server runs the checkpoint
	// that starts the backup; default spread).
	Checkpoint string
	// CompressAt is where the tars are compressed with lz4: CompressServer
	// (the server sends a tenth of the bytes and walship only checks them)
	// or CompressClient (by walship); "" is the server where it can:
	// PostgreSQL 15 or later, built with lz4.
	CompressAt string
	// MaxRate limits how fast the server sends the backup, in kB/s (32 to
	// 1048576; 0: no limit).
	MaxRate int
	// Kind is a full backup (the default), an incremental one (refused
	// where none can be taken), or an incremental one where one can be
	// taken and else a full one (for scheduled runs).
	Kind Kind
	// Bar, when set, makes a progress bar (bytes) once the server has
	// estimated the backup's size.
	Bar func(total int64) *progress.Bar
	// Log receives what the backup does, step by step (nil: none).
	Log *slog.Logger
	// Status receives, at level Info, the few lines a person waiting for
	// the backup wants: that the server's checkpoint comes first, when the
	// backup has started, why an incremental backup became a full one.
	Status *slog.Logger
}

// Kind is what kind of backup Create takes.
type Kind int

const (
	// Full is a full backup.
	Full Kind = iota
	// Incremental is an incremental backup (PostgreSQL 17 and later),
	// relative to the newest stored backup that can be its parent; it is
	// refused where there is none.
	Incremental
	// IncrementalOrFull is an incremental backup where one can be taken,
	// else a full one (and the status says why).
	IncrementalOrFull
)

// CreateResult is what a backup stored.
type CreateResult struct {
	Meta catalog.Record
	// Status is the backup's status in the repository right after: from a
	// standby its last WAL may not be archived yet.
	Status  catalog.BackupStatus
	Notices []string // the server's notices and warnings
	// FullBecause says why a backup asked to be incremental where it can
	// is a full one ("" otherwise).
	FullBecause string
	Elapsed     time.Duration
}

// Where a backup is compressed (CreateOptions.CompressAt).
const (
	CompressServer = "server"
	CompressClient = "client"
)

// serverLZ4Version is the first server that compresses a backup itself.
const serverLZ4Version = 15

// minVersion is the oldest server Create backs up: backup manifests
// (13) give the stop of a backup taken without WAL from a standby.
const minVersion = 13

// Create takes a base backup of the server into the repository, over a
// replication connection (BASE_BACKUP): every archive the server sends is
// stored as it arrives, nothing is written to local disk, and the record
// is stored last, so that a backup that fails leaves nothing that counts
// as one (Create removes what it stored; what it cannot, walship-prune
// removes as an interrupted backup's).
func Create(ctx context.Context, r *repo.Repo, o CreateOptions) (*CreateResult, error) {
	t0 := time.Now()
	o.Log, o.Status = logx.Or(o.Log), logx.Or(o.Status)
	if o.Checkpoint == "" {
		o.Checkpoint = "spread"
	}
	if o.Checkpoint != "fast" && o.Checkpoint != "spread" {
		return nil, badOption("checkpoint %q: fast or spread", o.Checkpoint)
	}
	if o.CompressAt != "" && o.CompressAt != CompressServer && o.CompressAt != CompressClient {
		return nil, badOption("compress at %q: %s or %s", o.CompressAt, CompressServer, CompressClient)
	}
	srv, err := inspectServer(ctx, o.ConnString, o.Kind != Full)
	if err != nil {
		return nil, err
	}
	o.Log.Debug("server inspected", "version", srv.VersionStr, "standby", srv.InRecovery, "after", time.Since(t0))
	if srv.Version.Major < minVersion {
		return nil, fmt.Errorf("%w: the server runs PostgreSQL %s; walship backup create needs %d or later (backup manifests)", pgserver.ErrVersion, srv.VersionStr, minVersion)
	}
	// A new repository (r may create it): the server's archiving writes
	// its identity while the backup runs (a primary waits for its last
	// segment to be archived); it is checked before the record is written.
	id, haveID, err := r.Identity(ctx)
	if err != nil {
		return nil, err
	}
	if haveID {
		if err := id.Cluster().Check("the server", srv.Cluster(), "the repository "+r.String()); err != nil {
			return nil, err
		}
		if err := r.CheckWritable(ctx); err != nil {
			return nil, err
		}
	}
	atServer, err := compressAtServer(srv, o.CompressAt)
	if err != nil {
		return nil, err
	}
	repl, sys, err := pgserver.ConnectReplication(ctx, o.ConnString)
	if err != nil {
		return nil, err
	}
	defer repl.Close(context.Background())
	if sys.SystemID != srv.SystemID {
		return nil, fmt.Errorf("the replication connection reaches database system %d, the SQL connection %d: check the connection string", sys.SystemID, srv.SystemID)
	}
	var par *parent
	fullBecause := ""
	if o.Kind != Full {
		if par, fullBecause, err = findParent(ctx, r, srv, sys.Timeline, haveID); err != nil {
			return nil, err
		}
		if par == nil {
			if o.Kind == Incremental {
				return nil, fmt.Errorf("%w: %s", ErrNoIncremental, fullBecause)
			}
			o.Status.Info("taking a full backup: " + fullBecause)
		}
	}
	o.Log.Debug("replication connection checked", "after", time.Since(t0))

	c := &creation{r: r, srv: srv, atServer: atServer, parent: par, o: o, log: o.Log}
	res, err := c.run(ctx, repl)
	if err != nil {
		c.cleanup(ctx)
		if errors.Is(err, pgserver.ErrBaseBackup) && !errors.Is(err, ErrBaseBackup) {
			err = fmt.Errorf("%w: %w", ErrBaseBackup, err)
		}
		return nil, err
	}
	res.FullBecause = fullBecause
	res.Elapsed = time.Since(t0)
	return res, nil
}

// server is what Create learns about the server to back up, over SQL,
// before the backup starts.
type server struct {
	*pgserver.Info
	lz4  bool          // built with lz4
	skew time.Duration // its clock ahead of ours
	// summarizeWAL is summarize_wal (17 and later), read for an
	// incremental backup.
	summarizeWAL string
	// archiving holds archive_mode, archive_command and data_directory
	// (the last two only for a role allowed to read them).
	archiving map[string]pgserver.Setting
}

// archivesInto reports whether the server is a primary on this machine
// that archives into r with walship-archive: its archive_mode on, its
// archive_command running walship-archive into r, and its data directory
// here (its pg_control names the server's system), so that r's location
// means the same place to both. Only then may Create wait for the
// backup's last segment in r instead of letting the server wait.
func (s *server) archivesInto(r *repo.Repo) bool {
	set := s.archiving
	if mode := set["archive_mode"].Value; s.InRecovery || (mode != "on" && mode != "always") {
		return false
	}
	dataDir := set["data_directory"].Value
	cmd, ok := pgserver.ParseArchiveCommand(set["archive_command"].Value)
	if !ok || dataDir == "" {
		return false
	}
	if id, err := pgdata.SystemID(dataDir); err != nil || id != s.SystemID {
		return false
	}
	loc, err := cmd.Repository(nil, dataDir)
	return err == nil && storage.SameLocation(loc, r.String(), dataDir)
}

// inspectServer reads what a backup of the server needs to know.
func inspectServer(ctx context.Context, connString string, incremental bool) (*server, error) {
	// A replication connection ignores the dbname; a SQL connection needs one.
	conn, err := pgserver.Connect(ctx, connString, pgserver.ConnectOptions{Database: "postgres", AppName: "walship backup"})
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.Background())
	s := &server{}
	if s.Info, err = pgserver.ReadInfo(ctx, conn); err != nil {
		return nil, err
	}
	if s.lz4, err = pgserver.HasLZ4(ctx, conn); err != nil {
		return nil, err
	}
	if s.skew, err = pgserver.ClockSkew(ctx, conn); err != nil {
		return nil, err
	}
	if !s.InRecovery {
		if s.archiving, err = pgserver.Settings(ctx, conn, "archive_mode", "archive_command", "data_directory"); err != nil {
			return nil, err
		}
	}
	if incremental && s.Version.Major >= pgserver.FirstIncremental {
		set, err := pgserver.Settings(ctx, conn, "summarize_wal")
		if err != nil {
			return nil, err
		}
		s.summarizeWAL = set["summarize_wal"].Value
	}
	return s, nil
}

// compressAtServer decides whether the server compresses the backup.
func compressAtServer(srv *server, at string) (bool, error) {
	can := srv.Version.Major >= serverLZ4Version && srv.lz4
	switch at {
	case CompressClient:
		return false, nil
	case CompressServer:
		if !can {
			why := "it was built without lz4"
			if srv.Version.Major < serverLZ4Version {
				why = fmt.Sprintf("it runs PostgreSQL %s; servers compress backups from %d on", srv.VersionStr, serverLZ4Version)
			}
			return false, fmt.Errorf("%w: the server cannot compress the backup with lz4: %s", pgserver.ErrVersion, why)
		}
	}
	return can, nil
}

// Summary is the one line a backup prints when it is done.
func (res *CreateResult) Summary() string {
	m := res.Meta
	var b strings.Builder
	fmt.Fprintf(&b, "backup %s of PostgreSQL %s (system %d, from the %s)", m.ID, m.PGVersion, m.SystemID, m.From)
	if m.Parent != "" {
		fmt.Fprintf(&b, ", incremental on %s", m.Parent)
	}
	fmt.Fprintf(&b, " on timeline %d, %s..%s: %s in %d tar(s) and the manifest, %d files, %s stored",
		m.StopTimeline, m.Start, m.Stop, progress.Bytes(m.Size), len(m.Objects)-1, m.Files, progress.Bytes(m.Stored))
	if m.Size > 0 {
		fmt.Fprintf(&b, " (%.1f%%)", float64(m.Stored)*100/float64(m.Size))
	}
	fmt.Fprintf(&b, ", in %s", res.Elapsed.Round(100*time.Millisecond))
	switch {
	case res.Status.Restorable:
		b.WriteString("; restorable")
	case res.Status.Reason != "":
		fmt.Fprintf(&b, "; not restorable yet: %s", res.Status.Reason)
	}
	return b.String()
}
