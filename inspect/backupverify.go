package inspect

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/walship/walship/catalog"
	"github.com/walship/walship/internal/progress"
	"github.com/walship/walship/pgdata"
	"github.com/walship/walship/repo"
)

// checkStoredBackups reports on the backup directories that are not
// backups the catalog lists: a record that cannot be read is a problem;
// objects without a record (an interrupted backup, or one running now)
// are a note.
func checkStoredBackups(c *catalog.Catalog) (ps []Problem, notes []string) {
	for _, sb := range c.Stored {
		if sb.Err != nil {
			ps = append(ps, Problem{File: string(sb.ID), Msg: "the backup's record cannot be read: " + sb.Err.Error()})
		}
	}
	for _, sb := range c.Incomplete {
		notes = append(notes, fmt.Sprintf("backup %s has %d object(s) (%s, the last stored %s) but no record: interrupted, or running now; walship-prune removes it %s after its last object",
			sb.ID, len(sb.Objects), progress.Bytes(sb.Bytes()), sb.Newest.UTC().Format(time.RFC3339), catalog.LeftoverAge))
	}
	return ps, notes
}

// checkBackupObjects reads every object of every backup walship stored and
// checks it: each object's checksum (its lz4 frame), its size against the
// record, the manifest's own checksum and that it is the one the record
// names, and every file of the tars against the manifest (size and
// checksum, none missing, none added). A problem with a backup is a
// Problem; a failure to read storage, an error.
func checkBackupObjects(ctx context.Context, r *repo.Repo, c *catalog.Catalog, o VerifyOptions) ([]Problem, []string, int, error) {
	var todo []*catalog.Stored
	var total int64
	for _, sb := range c.Stored {
		if sb.Record == nil || sb.Record.Registered || sb.Missing() != "" {
			continue // nothing to read, or reported already
		}
		todo = append(todo, sb)
		total += sb.Record.Size
	}
	var bar *progress.Bar
	if o.Bar != nil && len(todo) > 0 {
		bar = o.Bar(total)
	}
	defer bar.Done()
	var ps []Problem
	var notes []string
	checked := 0
	for _, sb := range todo {
		p, err := checkBackup(ctx, r, sb, bar)
		switch {
		case errors.Is(err, repo.ErrEncryption):
			notes = append(notes, fmt.Sprintf("backup %s is encrypted and no identity given decrypts it: not read (%v)", sb.ID, err))
			continue
		case err != nil:
			return nil, nil, 0, err
		case p != "":
			ps = append(ps, Problem{File: string(sb.ID), Msg: "backup damaged: " + p})
		}
		checked++
	}
	return ps, notes, checked, nil
}

// checkBackup reads one backup in full; it returns what is wrong with it.
func checkBackup(ctx context.Context, r *repo.Repo, sb *catalog.Stored, bar *progress.Bar) (string, error) {
	m := sb.Record
	if m.Manifest == nil {
		return "no manifest", nil
	}
	read := func(part repo.BackupPart, fn func(io.Reader) error) (int64, error) {
		rc, err := r.OpenStream(ctx, repo.BackupObject{ID: sb.ID, Part: part})
		if err != nil {
			return 0, err
		}
		defer rc.Close()
		cr := &countReader{r: rc, bar: bar}
		err = fn(cr)
		return cr.n, err
	}
	damage := func(err error) bool {
		return errors.Is(err, repo.ErrCorrupt) || errors.Is(err, pgdata.ErrManifest) || errors.Is(err, pgdata.ErrBackupTar) || errors.Is(err, io.ErrUnexpectedEOF)
	}
	var man *pgdata.Manifest
	_, err := read(repo.ManifestPart, func(rd io.Reader) error {
		data, err := io.ReadAll(rd)
		if err != nil {
			return err
		}
		man, err = pgdata.ParseManifest(data)
		return err
	})
	switch {
	case damage(err):
		return err.Error(), nil
	case err != nil:
		return "", fmt.Errorf("reading the manifest of backup %s: %w", sb.ID, err)
	case man.Checksum != m.Manifest.Checksum:
		return "its manifest is not the one its record names", nil
	}
	check := man.Check()
	for _, obj := range m.Objects {
		part, _ := obj.Part()
		if !part.IsTar() {
			continue
		}
		prefix := ""
		if part.Kind == repo.PartTablespace {
			prefix = fmt.Sprintf("pg_tblspc/%d/", part.Tablespace)
		}
		n, err := read(part, func(rd io.Reader) error { return pgdata.WalkBackupTar(rd, prefix, check, nil) })
		switch {
		case damage(err):
			return fmt.Sprintf("%s: %v", part, err), nil
		case err != nil:
			return "", fmt.Errorf("reading %s of backup %s: %w", part, sb.ID, err)
		case n != obj.Size:
			return fmt.Sprintf("%s holds %d bytes, its record says %d", part, n, obj.Size), nil
		}
	}
	if err := check.Done(); err != nil {
		return err.Error(), nil
	}
	return "", nil
}

type countReader struct {
	r   io.Reader
	n   int64
	bar *progress.Bar
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	c.bar.Add(int64(n))
	return n, err
}
