package backup

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/walship/walship/catalog"
	"github.com/walship/walship/pgdata"
	"github.com/walship/walship/pgserver"
	"github.com/walship/walship/repo"
	"github.com/walship/walship/wal"
)

// parent is the stored backup an incremental backup is taken relative to,
// with its manifest (which the server is given).
type parent struct {
	rec      *catalog.Record
	manifest []byte
}

// findParent picks the parent of an incremental backup of srv, whose
// current timeline is tli: the newest backup stored in the repository of
// this cluster and major version, taken with a manifest the server can
// read (17 and later), whose chain is whole (every member stored with all
// its objects) and which the server's history passes through (it ended on
// a timeline the server's current timeline descends from, before that
// timeline's switch point). A server that cannot take incremental backups
// is an error when it is misconfigured (summarize_wal = off); otherwise
// no parent comes back with the reason.
func findParent(ctx context.Context, r *repo.Repo, srv *server, tli uint32, haveID bool) (*parent, string, error) {
	switch {
	case srv.Version.Major < pgserver.FirstIncremental:
		return nil, fmt.Sprintf("the server runs PostgreSQL %s; incremental backups need %d or later", srv.VersionStr, pgserver.FirstIncremental), nil
	case srv.summarizeWAL != "on":
		return nil, "", fmt.Errorf("%w: summarize_wal = %s on the server: incremental backups need summarize_wal = on (in postgresql.conf, then reload)", ErrNoIncremental, orNone(srv.summarizeWAL))
	case !haveID:
		return nil, fmt.Sprintf("%s holds no backup of this cluster yet", r), nil
	}
	c, err := catalog.Scan(ctx, r)
	if err != nil {
		return nil, "", err
	}
	why := fmt.Sprintf("%s holds no backup of this cluster taken with walship backup create", r)
	var h *wal.History
	if f := c.Histories()[tli]; f != nil {
		h = f.History
	}
	newest := true
	for _, b := range c.Backups() { // newest first
		sb := b.Stored
		if sb == nil || sb.Record == nil || sb.Record.Registered {
			continue
		}
		m := sb.Record
		if no := unfit(c, b, srv, tli, h); no != "" {
			if newest {
				why = fmt.Sprintf("no stored backup can be its parent (the newest, %s: %s)", m.ID, no)
				newest = false
			}
			continue
		}
		man, err := parentManifest(ctx, r, m)
		if errors.Is(err, repo.ErrEncryption) {
			// The primary may hold the public key only; an incremental
			// backup needs the secret one, to read what it builds on.
			return nil, fmt.Sprintf("the manifest of backup %s, the parent, is encrypted and no identity given reads it (--identity): %v", m.ID, err), nil
		}
		if err != nil {
			return nil, "", err
		}
		return &parent{rec: m, manifest: man}, "", nil
	}
	return nil, why, nil
}

// unfit says why the stored backup b cannot be the parent, or "".
func unfit(c *catalog.Catalog, b catalog.Backup, srv *server, tli uint32, h *wal.History) string {
	m := b.Stored.Record
	switch {
	case m.SystemID != srv.SystemID:
		return fmt.Sprintf("it is of database system %d", m.SystemID)
	case pgdata.VersionFromNum(m.PGVersionNum).Major != srv.Version.Major:
		return fmt.Sprintf("it is of PostgreSQL %s", m.PGVersion)
	case m.PGVersionNum < pgserver.FirstIncremental*10000:
		return "its manifest is of a version before 17, which an incremental backup cannot build on"
	case m.Manifest == nil:
		return "it has no manifest"
	}
	chain, err := c.Chain(b)
	if err != nil {
		return err.Error()
	}
	for _, a := range chain {
		if why := a.Stored.Missing(); why != "" {
			return why
		}
	}
	if m.StopTimeline != tli {
		if h == nil || !h.Contains(m.StopTimeline) {
			return fmt.Sprintf("it ended on timeline %d, which the server's timeline %d does not descend from (or its history file is not in the repository)", m.StopTimeline, tli)
		}
		if sw, ok := h.SwitchPoint(m.StopTimeline); ok && m.Stop > sw {
			return fmt.Sprintf("it ended at %s on timeline %d, after the server's history left that timeline at %s", m.Stop, m.StopTimeline, sw)
		}
	}
	return ""
}

// parentManifest fetches the parent's manifest (decrypted, checked against
// its record).
func parentManifest(ctx context.Context, r *repo.Repo, m *catalog.Record) ([]byte, error) {
	rc, err := r.OpenStream(ctx, repo.BackupObject{ID: m.ID, Part: repo.ManifestPart})
	if err != nil {
		return nil, fmt.Errorf("fetching the manifest of backup %s, the parent: %w", m.ID, err)
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, maxManifest))
	if err != nil {
		if errors.Is(err, repo.ErrCorrupt) {
			err = fmt.Errorf("%w: %w", ErrDamaged, err)
		}
		return nil, fmt.Errorf("fetching the manifest of backup %s, the parent: %w", m.ID, err)
	}
	man, err := pgdata.ParseManifest(data)
	if err != nil || man.Checksum != m.Manifest.Checksum {
		return nil, fmt.Errorf("%w: the manifest of backup %s, the parent, is not the one its record names", ErrDamaged, m.ID)
	}
	return data, nil
}

// checkLabel checks that the server took the backup relative to this
// parent: its label names the parent's start (nil: a full backup, whose
// label names none).
func (p *parent) checkLabel(bl wal.BackupInfo) error {
	if p == nil {
		if bl.IncrementalFrom != 0 {
			return fmt.Errorf("%w: a full backup whose label says it is incremental", ErrBaseBackup)
		}
		return nil
	}
	if bl.IncrementalFrom != p.rec.Start || bl.IncrementalFromTimeline != p.rec.StartTimeline {
		return fmt.Errorf("%w: the backup is incremental from %s on timeline %d, but its parent %s starts at %s on timeline %d",
			ErrBaseBackup, bl.IncrementalFrom, bl.IncrementalFromTimeline, p.rec.ID, p.rec.Start, p.rec.StartTimeline)
	}
	return nil
}

func orNone(s string) string {
	if s == "" {
		return "(not readable)"
	}
	return s
}
