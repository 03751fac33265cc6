package backup

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/walship/walship/catalog"
	"github.com/walship/walship/internal/progress"
	"github.com/walship/walship/pgdata"
	"github.com/walship/walship/pgserver"
	"github.com/walship/walship/repo"
	"github.com/walship/walship/storage"
	"github.com/walship/walship/wal"
)

// creation is one backup being stored.
type creation struct {
	r        *repo.Repo
	srv      *server
	atServer bool    // the server compresses the tars
	parent   *parent // of an incremental backup
	o        CreateOptions
	log      *slog.Logger
	ctx      context.Context // of the run

	id      repo.BackupID // once claimed
	started pgserver.BackupStart
	bar     *progress.Bar
	done    int64 // progress shown so far

	mu       sync.Mutex
	objects  map[repo.BackupPart]catalog.RecordObject
	order    []repo.BackupPart
	claimed  bool
	finished bool // the record is stored: nothing to clean up any more
	label    []byte
	files    int
	manifest []byte
}

// maxManifest bounds a backup manifest held in memory (it lists every
// file of the data directory: a few hundred bytes each).
const maxManifest = 1 << 30

func (c *creation) run(ctx context.Context, repl *pgconn.PgConn) (*CreateResult, error) {
	o := c.o
	c.ctx = ctx
	label := o.Label
	opts := pgserver.BaseBackupOptions{Major: c.srv.Version.Major, Label: label, Fast: o.Checkpoint == "fast",
		Progress: o.Bar != nil, LZ4: c.atServer, MaxRate: o.MaxRate,
		// A primary that archives into this repository: walship watches
		// the repository for the backup's last segment rather than let the
		// server look at its archiver once a second. Any other server
		// waits for its archiver as it always did.
		NoWait: c.srv.archivesInto(c.r)}
	if c.parent != nil {
		opts.Parent = bytes.NewReader(c.parent.manifest)
	}
	if opts.Label == "" {
		opts.Label = "walship backup"
		if c.parent != nil {
			opts.Label = "walship incremental backup"
		}
	}
	c.objects = map[repo.BackupPart]catalog.RecordObject{}
	if o.Checkpoint == "spread" {
		o.Status.Info("waiting for the server's checkpoint: spread, as its own checkpoints are, it may take minutes (--checkpoint fast to hurry)")
	} else {
		o.Status.Info("waiting for the server's checkpoint (fast)")
	}
	end, err := pgserver.BaseBackup(ctx, repl, opts, pgserver.BackupHandler{
		Started:  c.begin,
		Archive:  c.archive,
		Manifest: c.readManifest,
		Progress: c.progress,
	})
	c.bar.Done()
	if err != nil {
		return nil, err
	}
	stop := time.Now().Add(c.srv.skew).UTC()
	c.log.Debug("the server sent the backup", "end", end.LSN)
	if opts.NoWait {
		if err := c.waitArchived(ctx, end.LSN.SegmentOfEnd(end.Timeline, c.srv.SegSize)); err != nil {
			return nil, err
		}
		c.log.Debug("the backup's last segment is in the repository")
	}
	return c.finish(ctx, end, stop)
}

// begin claims the backup's ID: when the server started it (after its
// checkpoint), on the server's clock.
func (c *creation) begin(s pgserver.BackupStart) error {
	c.started = s
	host, _ := os.Hostname()
	at := s.At.Add(c.srv.skew)
	id, err := c.r.ClaimBackupID(c.ctx, repo.NewBackupID(at),
		fmt.Sprintf("walship backup create on %s, pid %d, started %s at %s\n", host, os.Getpid(), at.UTC().Format(time.RFC3339), s.LSN))
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.id, c.claimed = id, true
	c.mu.Unlock()
	what := "backup " + string(id)
	if c.parent != nil {
		what = fmt.Sprintf("incremental backup %s (on %s)", id, c.parent.rec.ID)
	}
	c.o.Status.Info(fmt.Sprintf("%s started at %s on timeline %d", what, s.LSN, s.Timeline))
	if c.o.Bar != nil {
		var total int64
		for _, ts := range s.Tablespaces {
			total += max(ts.Size, 0)
		}
		c.bar = c.o.Bar(total)
	}
	return nil
}

func (c *creation) progress(done int64) {
	c.bar.Add(done - c.done)
	c.done = done
}

// archive stores one tar as the server sends it.
func (c *creation) archive(a pgserver.BackupArchive, src io.Reader) error {
	if c.id == "" {
		return fmt.Errorf("%w: an archive before the start", ErrBaseBackup)
	}
	if strings.HasSuffix(a.Name, ".lz4") != c.atServer {
		return fmt.Errorf("%w: the server sent %s", ErrBaseBackup, a.Name)
	}
	p := repo.BasePart
	if a.Tablespace != 0 {
		p = repo.TablespacePart(a.Tablespace)
	}
	ctx := c.ctx
	obj := repo.BackupObject{ID: c.id, Part: p}
	var tap *tarTap
	var info repo.StreamInfo
	var err error
	if c.atServer {
		// The server's lz4 frame, stored as it comes; the tap reads its
		// content as it is decoded.
		info, err = c.r.PutFrame(ctx, obj, src, func(content io.Reader) error {
			tap = newTarTap(content, "backup_label")
			_, err := io.Copy(io.Discard, tap)
			return err
		})
	} else {
		tap = newTarTap(src, "backup_label")
		info, err = c.r.PutStream(ctx, obj, tap)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil || tap == nil {
		c.order = append(c.order, p) // whatever it left, cleanup removes
		return fmt.Errorf("storing %s: %w", p, err)
	}
	if _, dup := c.objects[p]; dup {
		return fmt.Errorf("%w: the server sent %s twice", ErrBaseBackup, p)
	}
	c.objects[p] = catalog.RecordObject{Name: p.String(), Tablespace: p.Tablespace, Location: a.Location, Size: info.Raw, Stored: info.Stored}
	c.order = append(c.order, p)
	c.files += tap.files
	if b, ok := tap.Kept("backup_label"); ok && p == repo.BasePart {
		c.label = b
	}
	return nil
}

func (c *creation) readManifest(r io.Reader) error {
	b, err := io.ReadAll(io.LimitReader(r, maxManifest+1))
	if err == nil && len(b) > maxManifest {
		err = fmt.Errorf("%w: a manifest larger than %s", ErrBaseBackup, progress.Bytes(maxManifest))
	}
	c.manifest = b
	return err
}

// finish checks what the server sent, stores the manifest and then the
// record.
func (c *creation) finish(ctx context.Context, end *pgserver.BackupEnd, stop time.Time) (*CreateResult, error) {
	if _, ok := c.objects[repo.BasePart]; !ok {
		return nil, fmt.Errorf("%w: the server sent no base.tar", ErrBaseBackup)
	}
	if c.manifest == nil {
		return nil, fmt.Errorf("%w: the server sent no backup manifest", ErrBaseBackup)
	}
	man, err := pgdata.ParseManifest(c.manifest)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBaseBackup, err)
	}
	info, err := c.r.PutStream(ctx, repo.BackupObject{ID: c.id, Part: repo.ManifestPart}, bytes.NewReader(c.manifest))
	c.mu.Lock()
	c.order = append(c.order, repo.ManifestPart)
	c.mu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("storing %s: %w", pgdata.ManifestFile, err)
	}
	c.objects[repo.ManifestPart] = catalog.RecordObject{Name: repo.ManifestPart.String(), Size: info.Raw, Stored: info.Stored}

	if c.label == nil {
		return nil, fmt.Errorf("%w: base.tar holds no backup_label", ErrBaseBackup)
	}
	bl, err := wal.ParseBackupLabel(bytes.NewReader(c.label))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBaseBackup, err)
	}
	startLSN, startTLI := man.Start()
	stopLSN, stopTLI := man.End()
	switch {
	case bl.Start != startLSN || bl.StartTimeline != startTLI:
		return nil, fmt.Errorf("%w: backup_label starts at %s on timeline %d, the manifest at %s on timeline %d", ErrBaseBackup, bl.Start, bl.StartTimeline, startLSN, startTLI)
	case c.started.LSN != startLSN || end.LSN != stopLSN || end.Timeline != stopTLI:
		return nil, fmt.Errorf("%w: the server said %s..%s, the manifest %s..%s", ErrBaseBackup, c.started.LSN, end.LSN, startLSN, stopLSN)
	case man.SystemID != 0 && man.SystemID != c.srv.SystemID:
		return nil, fmt.Errorf("%w: the manifest is of database system %d", ErrBaseBackup, man.SystemID)
	}
	if err := c.parent.checkLabel(bl); err != nil {
		return nil, err
	}
	from := bl.From
	if from == "" || from == "master" { // 13 and 14 say master
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

	start := c.started.At.Add(c.srv.skew).UTC().Truncate(time.Second)
	if t, ok := bl.Started(); ok {
		start = t
	}
	m := catalog.Record{ID: c.id, Label: bl.Label, From: from, SystemID: c.srv.SystemID,
		PGVersion: c.srv.VersionStr, PGVersionNum: c.srv.VersionNum, SegSize: c.srv.SegSize, BlockSize: c.srv.BlockSize,
		Start: startLSN, StartTimeline: startTLI, Stop: stopLSN, StopTimeline: stopTLI, Checkpoint: bl.Checkpoint,
		StartTime: start, StopTime: stop.Add(time.Second).Truncate(time.Second), CheckpointMode: c.o.Checkpoint,
		Manifest: &catalog.ManifestInfo{Checksum: man.Checksum, Algorithm: man.Algorithm()}, Files: len(man.Files)}
	if c.parent != nil {
		m.Parent = c.parent.rec.ID
	}
	m.Compression = "lz4"
	if c.atServer {
		m.Compression = "server-lz4"
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
	c.finished = true
	c.mu.Unlock()
	// The claim has served: the backup is its record and objects.
	if err := c.r.RemoveBackupObjects(ctx, []repo.BackupObject{{ID: c.id, Part: repo.ClaimPart}}); err != nil {
		c.log.Warn("the backup is stored, but its claim object stays", "backup", c.id, "err", err)
	}
	return &CreateResult{Meta: m, Notices: notices(end.Notices), Status: catalog.StatusOfStored(ctx, c.r, c.id)}, nil
}

// waitArchived waits until the repository holds seg, the last segment the
// backup needs, which the server switched out at the end of the backup
// and its archiver archives now: as the server itself would wait, with no
// bound but the caller's, and saying so now and then. What is found is
// compared with the server's own copy (see sameAsServer).
func (c *creation) waitArchived(ctx context.Context, seg wal.Name) error {
	t0 := time.Now()
	said := time.Duration(0)
	for delay := 20 * time.Millisecond; ; delay = min(delay*2, 250*time.Millisecond) {
		_, err := c.r.Find(ctx, seg)
		if err == nil {
			return c.sameAsServer(ctx, seg)
		}
		if !storage.IsNotExist(err) && !errors.Is(err, repo.ErrNoRepository) {
			return fmt.Errorf("looking for %s, the backup's last segment, in %s: %w", seg, c.r, err)
		}
		if waited := time.Since(t0); waited-said >= time.Minute || (said == 0 && waited >= 10*time.Second) {
			said = waited
			c.o.Status.Warn(fmt.Sprintf("still waiting for the server to archive %s, the backup's last segment, into %s (%s): is archive_command failing?",
				seg, c.r, waited.Round(time.Second)))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(delay):
		}
	}
}

// sameAsServer compares the stored seg with the server's copy in its
// pg_wal (the server is on this machine: see archivesInto), as
// walship-archive compares a segment archived twice: an object planted
// under the segment's name by someone who can write to the storage must
// not end the wait for WAL that is not stored, or the backup would count
// as restorable without it. A copy the server has recycled already, or
// cannot be read, was archived by the server itself: nothing to compare.
func (c *creation) sameAsServer(ctx context.Context, seg wal.Name) error {
	f, err := os.Open(filepath.Join(c.srv.archiving["data_directory"].Value, "pg_wal", seg.String()))
	if err != nil {
		c.log.Debug("the server's copy of the backup's last segment cannot be read; not compared", "file", seg, "err", err)
		return nil
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() || fi.Size() != int64(c.srv.SegSize) {
		return nil // not a finished segment of the server's
	}
	if _, _, err := c.r.PutFrom(ctx, seg, f, fi.Size()); err != nil {
		if errors.Is(err, repo.ErrDifferent) {
			return fmt.Errorf("%s holds %s, the backup's last segment, with other content than the server's pg_wal: someone else writes into the repository, and this backup would not be restorable (%w)", c.r, seg, err)
		}
		return fmt.Errorf("comparing %s, the backup's last segment, with the server's: %w", seg, err)
	}
	return nil
}

// notices are the server's notices worth passing on.
func notices(all []string) []string {
	var out []string
	for _, n := range all {
		if strings.Contains(n, "all required WAL segments have been archived") {
			continue // what walship checks itself
		}
		out = append(out, n)
	}
	return out
}

// cleanup removes what a failed backup stored, so that nothing is left
// that counts as a backup; what cannot be removed now (the store down),
// walship-prune removes as an interrupted backup's.
func (c *creation) cleanup(ctx context.Context) {
	c.mu.Lock()
	parts := append([]repo.BackupPart{}, c.order...)
	if c.claimed {
		parts = append(parts, repo.ClaimPart)
	}
	skip := c.finished || len(parts) == 0
	c.mu.Unlock()
	if skip {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	sb := &catalog.Stored{ID: c.id, Objects: map[repo.BackupPart]storage.Info{}}
	for _, p := range parts {
		sb.Objects[p] = storage.Info{}
	}
	if err := catalog.RemoveBackup(ctx, c.r, sb); err != nil {
		c.log.Warn("the failed backup's objects stay; walship-prune removes them a day after the last", "backup", c.id, "err", err)
	}
}
