package backup

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/pierrec/lz4/v4"

	"github.com/walship/walship/catalog"
	"github.com/walship/walship/pgdata"
	"github.com/walship/walship/repo"
	"github.com/walship/walship/wal"
)

// Register records a base backup taken by other means (pg_basebackup by
// hand, from a standby say, which PostgreSQL writes no backup history file
// for) in the repository, so that retention keeps its WAL and verify
// reports whether it is restorable. dir is what pg_basebackup wrote, in
// plain or tar format; it must hold backup_manifest (PostgreSQL 13 and
// later). The files stay where they are.
func Register(ctx context.Context, r *repo.Repo, dir string) (*catalog.Record, error) {
	// Everything is read through a root: a file that is a symbolic link
	// out of DIR is not read.
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	data, err := root.ReadFile(pgdata.ManifestFile)
	if err != nil {
		return nil, fmt.Errorf("%s: no backup manifest (pg_basebackup of PostgreSQL 13 or later writes one): %w", dir, err)
	}
	man, err := pgdata.ParseManifest(data)
	if err != nil {
		return nil, err
	}
	mi, err := root.Stat(pgdata.ManifestFile)
	if err != nil {
		return nil, err
	}
	label, control, version, err := readBackupDir(root, dir)
	if err != nil {
		return nil, err
	}
	bl, err := wal.ParseBackupLabel(bytes.NewReader(label))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	sysid, err := pgdata.ParseSystemID(control)
	if err != nil {
		return nil, fmt.Errorf("%s: global/pg_control %w", dir, err)
	}
	start, startTLI := man.Start()
	stop, stopTLI := man.End()
	if bl.Start != start || bl.StartTimeline != startTLI {
		return nil, fmt.Errorf("%w: %s: backup_label starts at %s on timeline %d, backup_manifest at %s on timeline %d", ErrDamaged, dir, bl.Start, bl.StartTimeline, start, startTLI)
	}
	ident, haveID, err := r.Identity(ctx)
	if err != nil {
		return nil, err
	}
	if !haveID {
		return nil, fmt.Errorf("%w: %s has no %s", repo.ErrNoRepository, r, repo.IdentityKey)
	}
	if sysid != ident.SystemID {
		return nil, fmt.Errorf("%w: the backup in %s is of database system %d, the repository %s holds the WAL of %d", wal.ErrOtherCluster, dir, sysid, r, ident.SystemID)
	}
	cat, err := catalog.Scan(ctx, r)
	if err != nil {
		return nil, err
	}
	for _, sb := range cat.Stored {
		if sb.Record != nil && sb.Record.Start == start && sb.Record.StartTimeline == startTLI {
			return nil, fmt.Errorf("the backup in %s is in the repository already, as %s", dir, sb.ID)
		}
	}
	started := mi.ModTime().UTC()
	if t, ok := bl.Started(); ok {
		started = t
	}
	id := repo.NewBackupID(started)
	for {
		taken, err := r.BackupTaken(ctx, id)
		if err != nil {
			return nil, err
		}
		if !taken {
			break
		}
		id = id.Next()
	}
	from := bl.From
	if from == "" {
		from = "primary"
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	m := catalog.Record{ID: id, Label: bl.Label, From: from, Registered: true, Directory: abs, SystemID: sysid,
		PGVersion: version.Text, PGVersionNum: version.Major * 10000, SegSize: ident.SegSize,
		Start: start, StartTimeline: startTLI, Stop: stop, StopTimeline: stopTLI, Checkpoint: bl.Checkpoint,
		StartTime: started, StopTime: mi.ModTime().UTC().Truncate(time.Second).Add(time.Second),
		Manifest: &catalog.ManifestInfo{Checksum: man.Checksum, Algorithm: man.Algorithm()}, Files: len(man.Files), Size: man.Size()}
	if err := catalog.PutRecord(ctx, r, m); err != nil {
		return nil, err
	}
	return &m, nil
}

// readBackupDir reads backup_label, the start of global/pg_control and
// PG_VERSION from a pg_basebackup output directory: a data directory
// (plain format), or base.tar (tar format).
func readBackupDir(root *os.Root, dir string) (label, control []byte, v pgdata.Version, err error) {
	if label, err = root.ReadFile("backup_label"); err == nil {
		if control, err = root.ReadFile(pgdata.ControlFile); err != nil {
			return nil, nil, v, err
		}
		text, err := root.ReadFile(pgdata.VersionFile)
		if err != nil {
			return nil, nil, v, err
		}
		v, err = pgdata.ParseVersion(strings.TrimSpace(string(text)))
		return label, control, v, err
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, nil, v, err
	}
	tar, name, err := openBaseTar(root, dir)
	if err != nil {
		return nil, nil, v, err
	}
	defer tar.Close()
	tap := newTarTap(tar, "backup_label", pgdata.ControlFile, pgdata.VersionFile)
	if _, err := io.Copy(io.Discard, tap); err != nil {
		return nil, nil, v, fmt.Errorf("%s: %w", name, err)
	}
	var ok bool
	if label, ok = tap.Kept("backup_label"); !ok {
		return nil, nil, v, fmt.Errorf("%s holds no backup_label", name)
	}
	if control, ok = tap.Kept(pgdata.ControlFile); !ok {
		return nil, nil, v, fmt.Errorf("%s holds no %s", name, pgdata.ControlFile)
	}
	text, ok := tap.Kept(pgdata.VersionFile)
	if !ok {
		return nil, nil, v, fmt.Errorf("%s holds no %s", name, pgdata.VersionFile)
	}
	v, err = pgdata.ParseVersion(strings.TrimSpace(string(text)))
	return label, control, v, err
}

// openBaseTar opens the base.tar of a tar-format backup, decompressed:
// pg_basebackup writes base.tar, or base.tar.lz4 or base.tar.gz with
// --compress (on the server or the client).
func openBaseTar(root *os.Root, dir string) (io.ReadCloser, string, error) {
	for _, name := range []string{"base.tar", "base.tar.lz4", "base.tar.gz"} {
		path := filepath.Join(dir, name)
		f, err := root.Open(name)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, "", err
		}
		var r io.Reader = f
		switch filepath.Ext(name) {
		case ".lz4":
			r = lz4.NewReader(f)
		case ".gz":
			if r, err = gzip.NewReader(f); err != nil {
				f.Close()
				return nil, "", fmt.Errorf("%s: %w", path, err)
			}
		}
		return struct {
			io.Reader
			io.Closer
		}{r, f}, path, nil
	}
	return nil, "", fmt.Errorf("%s holds neither backup_label (plain format) nor base.tar, base.tar.lz4 or base.tar.gz (tar format)", dir)
}

// RegisterSummary is the line register prints.
func RegisterSummary(m *catalog.Record, status string) string {
	return fmt.Sprintf("registered the backup %s (from the %s, timeline %d, %s..%s, %d files); its files stay where they are; %s",
		m.ID, m.From, m.StopTimeline, m.Start, m.Stop, m.Files, status)
}
