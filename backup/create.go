package backup

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/walship/walship/catalog"
	"github.com/walship/walship/internal/logx"
	"github.com/walship/walship/internal/progress"
	"github.com/walship/walship/pgdata"
	"github.com/walship/walship/pgserver"
	"github.com/walship/walship/repo"
	"github.com/walship/walship/storage"
	"github.com/walship/walship/wal"
)

// CreateOptions say which server to back up and how.
type CreateOptions struct {
	// ConnString is the libpq connection string of the server, a primary
	// or a standby; pg_basebackup gets it as -d, so it needs the
	// replication privilege.
	ConnString string
	// Label is the backup's label (default: walship and the backup's ID).
	Label string
	// Checkpoint is "fast" or "spread" (pg_basebackup -c; default spread).
	Checkpoint string
	// PGBin is the directory of pg_basebackup; "" finds the server's
	// version.
	PGBin string
	// CompressAt is where the tars are compressed with lz4: CompressServer
	// (pg_basebackup --compress=server-lz4: the server sends a tenth of the
	// bytes and walship only checks them) or CompressClient (by walship);
	// "" is the server where it can: PostgreSQL 15 or later, built with
	// lz4.
	CompressAt string
	// TempDir holds pg_basebackup's named pipes and its manifest while it
	// runs (default: the system's temporary directory).
	TempDir string
	// Bar, when set, makes a progress bar (bytes) once pg_basebackup has
	// estimated the backup's size.
	Bar func(total int64) *progress.Bar
	// Log receives what the backup does, step by step (nil: none).
	Log *slog.Logger
}

// CreateResult is what a backup stored.
type CreateResult struct {
	Meta catalog.Record
	// Status is the backup's status in the repository right after: from a
	// standby its last WAL may not be archived yet.
	Status  catalog.BackupStatus
	Notices []string // pg_basebackup's notices and warnings
	Elapsed time.Duration
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

// Create takes a base backup of the server into the repository.
func Create(ctx context.Context, r *repo.Repo, o CreateOptions) (*CreateResult, error) {
	t0 := time.Now()
	o.Log = logx.Or(o.Log)
	if o.Checkpoint == "" {
		o.Checkpoint = "spread"
	}
	if o.Checkpoint != "fast" && o.Checkpoint != "spread" {
		return nil, badOption("checkpoint %q: fast or spread", o.Checkpoint)
	}
	if o.CompressAt != "" && o.CompressAt != CompressServer && o.CompressAt != CompressClient {
		return nil, badOption("compress at %q: %s or %s", o.CompressAt, CompressServer, CompressClient)
	}
	srv, err := inspectServer(ctx, o.ConnString)
	if err != nil {
		return nil, err
	}
	o.Log.Debug("server inspected", "version", srv.VersionStr, "standby", srv.InRecovery, "tablespaces", len(srv.tablespaces), "after", time.Since(t0))
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
	repl, sys, err := pgserver.ConnectReplication(ctx, o.ConnString)
	if err != nil {
		return nil, err
	}
	repl.Close(context.Background())
	if sys.SystemID != srv.SystemID {
		return nil, fmt.Errorf("the replication connection reaches database system %d, the SQL connection %d: check the connection string", sys.SystemID, srv.SystemID)
	}
	atServer, err := compressAtServer(srv, o.CompressAt)
	if err != nil {
		return nil, err
	}
	bin, err := pgserver.FindProgram(ctx, o.PGBin, "pg_basebackup", srv.Version)
	if err != nil {
		return nil, err
	}
	o.Log.Debug("replication connection and pg_basebackup checked", "pg_basebackup", bin, "after", time.Since(t0))

	start := time.Now().UTC()
	bid := repo.NewBackupID(start)
	for {
		taken, err := r.BackupTaken(ctx, bid)
		if err != nil {
			return nil, err
		}
		if !taken {
			break
		}
		bid = bid.Next()
	}
	label := o.Label
	if label == "" {
		label = "walship " + string(bid)
	}
	tmp, err := os.MkdirTemp(o.TempDir, "walship-backup-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)

	c := &creation{r: r, id: bid, srv: srv, atServer: atServer, log: o.Log, objects: map[repo.BackupPart]catalog.RecordObject{}}
	res, err := c.run(ctx, bin, tmp, label, o, start)
	if err != nil {
		c.cleanup(ctx)
		return nil, err
	}
	res.Elapsed = time.Since(t0)
	return res, nil
}

// server is what Create learns about the server to back up, over SQL,
// before pg_basebackup starts.
type server struct {
	*pgserver.Info
	lz4         bool // built with lz4
	tablespaces []pgserver.Tablespace
}

// inspectServer reads what a backup of the server needs to know.
func inspectServer(ctx context.Context, connString string) (*server, error) {
	// pg_basebackup ignores the dbname; a SQL connection needs one.
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
	if s.tablespaces, err = pgserver.Tablespaces(ctx, conn); err != nil {
		return nil, err
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

// creation is one backup being stored.
type creation struct {
	r        *repo.Repo
	id       repo.BackupID
	srv      *server
	atServer bool // the server compresses the tars
	log      *slog.Logger

	mu      sync.Mutex
	objects map[repo.BackupPart]catalog.RecordObject
	order   []repo.BackupPart
	label   []byte // backup_label, from base.tar
	files   int
}

func (c *creation) run(ctx context.Context, bin, tmp, label string, o CreateOptions, start time.Time) (*CreateResult, error) {
	var parts []repo.BackupPart
	locations := map[uint32]string{}
	for _, ts := range c.srv.tablespaces {
		parts = append(parts, repo.TablespacePart(ts.OID))
		locations[ts.OID] = ts.Location
	}
	parts = append(parts, repo.BasePart)
	var bar *progress.Bar
	// The password goes into pg_basebackup's environment, never its
	// arguments, which every local user sees in ps.
	conn, password := pgserver.ForChild(o.ConnString)
	args := []string{"-d", conn, "-F", "tar", "-X", "none", "-c", o.Checkpoint, "-l", label, "--no-sync", "-v"}
	suffix := ""
	if c.atServer {
		args, suffix = append(args, "--compress=server-lz4"), ".lz4"
	}
	run := &bbRun{
		log:      c.log,
		password: password,
		bin:      bin,
		args:     args,
		dir:      filepath.Join(tmp, "out"),
		parts:    parts,
		suffix:   suffix,
		sink: func(ctx context.Context, p repo.BackupPart, src io.Reader) error {
			var tap *tarTap
			obj := repo.BackupObject{ID: c.id, Part: p}
			var info repo.StreamInfo
			var err error
			if c.atServer {
				// The server's lz4 frame, stored as it comes; the tap
				// reads its content as it is decoded.
				info, err = c.r.PutFrame(ctx, obj, src, func(content io.Reader) error {
					tap = newTarTap(content, "backup_label")
					_, err := io.Copy(io.Discard, tap)
					return err
				})
			} else {
				tap = newTarTap(src, "backup_label")
				info, err = c.r.PutStream(ctx, obj, tap)
			}
			if err != nil {
				return fmt.Errorf("storing %s: %w", p, err)
			}
			c.mu.Lock()
			defer c.mu.Unlock()
			c.objects[p] = catalog.RecordObject{Name: p.String(), Tablespace: p.Tablespace, Location: locations[p.Tablespace], Size: info.Raw, Stored: info.Stored}
			c.order = append(c.order, p)
			c.files += tap.files
			if b, ok := tap.Kept("backup_label"); ok && p == repo.BasePart {
				c.label = b
			}
			return nil
		},
	}
	if o.Bar != nil {
		var last int64
		run.progress = func(done, total int64) {
			if bar == nil {
				bar = o.Bar(total << 10)
			}
			bar.Add((done - last) << 10)
			last = done
		}
		run.args = append(run.args, "-P")
	}
	t0 := time.Now()
	err := run.run(ctx)
	bar.Done()
	if err != nil {
		return nil, err
	}
	o.Log.Debug("pg_basebackup done, tars stored", "took", time.Since(t0))
	stop := time.Now().UTC()
	if _, ok := c.objects[repo.BasePart]; !ok {
		return nil, fmt.Errorf("%w: it sent no base.tar", ErrBaseBackup)
	}

	// The manifest: where the backup starts and stops.
	data, err := os.ReadFile(filepath.Join(run.dir, pgdata.ManifestFile))
	if err != nil {
		return nil, fmt.Errorf("%w: no backup manifest: %v", ErrBaseBackup, err)
	}
	man, err := pgdata.ParseManifest(data)
	if err != nil {
		return nil, err
	}
	info, err := c.r.PutStream(ctx, repo.BackupObject{ID: c.id, Part: repo.ManifestPart}, bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("storing %s: %w", pgdata.ManifestFile, err)
	}
	c.objects[repo.ManifestPart] = catalog.RecordObject{Name: repo.ManifestPart.String(), Size: info.Raw, Stored: info.Stored}
	c.order = append(c.order, repo.ManifestPart)

	if c.label == nil {
		return nil, fmt.Errorf("%w: base.tar holds no backup_label", ErrBaseBackup)
	}
	bl, err := wal.ParseBackupLabel(bytes.NewReader(c.label))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBaseBackup, err)
	}
	startLSN, startTLI := man.Start()
	stopLSN, stopTLI := man.End()
	if bl.Start != startLSN || bl.StartTimeline != startTLI {
		return nil, fmt.Errorf("%w: backup_label starts at %s on timeline %d, the manifest at %s on timeline %d", ErrBaseBackup, bl.Start, bl.StartTimeline, startLSN, startTLI)
	}
	from := bl.From
	if from == "" {
		from = map[bool]string{true: "standby", false: "primary"}[c.srv.InRecovery]
	}

	// The server archived its WAL into the repository meanwhile (a
	// primary waits for the backup's last segment): it must be this
	// cluster's.
	ident, haveID, err := c.r.Identity(ctx)
	if err != nil {
		return nil, err
	}
	if !haveID {
		return nil, fmt.Errorf("%w: %s holds no WAL of this cluster (no %s): archive_command must archive into it with walship-archive, or the backup cannot be restored", wal.ErrOtherCluster, c.r, repo.IdentityKey)
	}
	if err := ident.Cluster().Check("the server", c.srv.Cluster(), "the repository "+c.r.String()); err != nil {
		return nil, err
	}
	if err := c.r.CheckWritable(ctx); err != nil {
		return nil, err // encrypted, or not, unlike the objects just stored
	}

	m := catalog.Record{ID: c.id, Label: bl.Label, From: from, SystemID: c.srv.SystemID,
		PGVersion: c.srv.VersionStr, PGVersionNum: c.srv.VersionNum, SegSize: c.srv.SegSize,
		Start: startLSN, StartTimeline: startTLI, Stop: stopLSN, StopTimeline: stopTLI, Checkpoint: bl.Checkpoint,
		StartTime: start.Truncate(time.Second), StopTime: stop.Add(time.Second).Truncate(time.Second), CheckpointMode: o.Checkpoint,
		Manifest: &catalog.ManifestInfo{Checksum: man.Checksum, Algorithm: man.Algorithm()}, Files: len(man.Files)}
	m.Compression = "lz4"
	if c.atServer {
		m.Compression = "server-lz4"
	}
	if t, ok := bl.Started(); ok {
		m.StartTime = t
	}
	for _, p := range c.order {
		obj := c.objects[p]
		m.Objects = append(m.Objects, obj)
		m.Size += obj.Size
		m.Stored += obj.Stored
	}
	// Every object is still there (a prune that took them for an
	// interrupted backup's would have removed them): then the record.
	for _, p := range c.order {
		st, err := c.r.BackupObjectInfo(ctx, repo.BackupObject{ID: c.id, Part: p})
		if err != nil {
			return nil, fmt.Errorf("checking the stored %s: %w", p, err)
		}
		if st.Size != c.objects[p].Stored {
			return nil, fmt.Errorf("%w: the stored %s has %d bytes, %d were written", ErrDamaged, p, st.Size, c.objects[p].Stored)
		}
	}
	if err := catalog.PutRecord(ctx, c.r, m); err != nil {
		return nil, fmt.Errorf("storing the backup's record: %w", err)
	}
	c.mu.Lock()
	c.objects = nil // stored: nothing to clean up any more
	c.mu.Unlock()

	o.Log.Debug("record stored", "after", time.Since(t0))
	res := &CreateResult{Meta: m, Notices: run.notices(), Status: catalog.StatusOfStored(ctx, c.r, c.id)}
	o.Log.Debug("repository checked", "after", time.Since(t0))
	return res, nil
}

// cleanup removes what a failed backup stored, so that nothing is left
// for walship-prune to find; what cannot be removed now, it removes later.
func (c *creation) cleanup(ctx context.Context) {
	c.mu.Lock()
	parts := c.order
	stored := c.objects != nil
	c.mu.Unlock()
	if !stored || len(parts) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	sb := &catalog.Stored{ID: c.id, Objects: map[repo.BackupPart]storage.Info{}}
	for _, p := range parts {
		sb.Objects[p] = storage.Info{}
	}
	catalog.RemoveBackup(ctx, c.r, sb)
}

// Summary is the one line a backup prints when it is done.
func (res *CreateResult) Summary() string {
	m := res.Meta
	var b strings.Builder
	fmt.Fprintf(&b, "backup %s of PostgreSQL %s (system %d, from the %s) on timeline %d, %s..%s: %s in %d tar(s) and the manifest, %d files, %s stored",
		m.ID, m.PGVersion, m.SystemID, m.From, m.StopTimeline, m.Start, m.Stop, progress.Bytes(m.Size), len(m.Objects)-1, m.Files, progress.Bytes(m.Stored))
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
