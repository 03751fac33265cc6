package backup

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"sync"

	"github.com/walship/walship/catalog"
	"github.com/walship/walship/internal/atomicfile"
	"github.com/walship/walship/internal/progress"
	"github.com/walship/walship/pgdata"
	"github.com/walship/walship/repo"
	"github.com/walship/walship/wal"
)

// defaultBlockSize is the block size of relation files but in builds that
// chose another (the record says it for incremental backups).
const defaultBlockSize = 8192

// fetch fetches the backup (and, for an incremental one, the backups it
// builds on) into the staging directories and checks it; only then are
// the files moved into place.
func (run *restoreRun) fetch(ctx context.Context) (*RestoreResult, error) {
	m := run.m
	// The manifests first: every file is checked against its member's as
	// it arrives.
	mans := make([]*pgdata.Manifest, len(run.chain))
	for i, rec := range run.chain {
		man, err := run.manifest(ctx, rec)
		if err != nil {
			return nil, err
		}
		mans[i] = man
	}
	for _, d := range run.dests {
		if _, err := os.Stat(d.dir); errors.Is(err, fs.ErrNotExist) {
			if err := os.MkdirAll(d.dir, 0o700); err != nil {
				return nil, err
			}
			d.created = true
		}
		if err := d.claimStaging(m.ID); err != nil {
			return nil, err
		}
	}
	var total int64
	for _, rec := range run.chain {
		for _, o := range rec.Objects {
			if p, _ := o.Part(); p.IsTar() {
				total += o.Size
			}
		}
	}
	var bar *progress.Bar
	if run.o.Bar != nil {
		bar = run.o.Bar(total)
	}
	defer bar.Done()
	u := &unpacker{bar: bar, bs: m.BlockSize}
	if u.bs == 0 {
		u.bs = defaultBlockSize
	}

	newest := len(run.chain) - 1
	incremental := m.Parent != ""
	defer run.dropAhead()
	var plan *chainPlan
	first := newest
	if incremental {
		var err error
		if plan, err = planChain(run.chain, mans); err != nil {
			return nil, err
		}
		first = plan.first
	}
	// The members oldest first: each writes what no newer member holds
	// whole, and its blocks over that; the newest finishes every file.
	for i := first; i < newest; i++ {
		rec, check := run.chain[i], mans[i].Check()
		run.readAheadOf(ctx, run.chain[i+1])
		var label []byte
		err := run.eachDest(ctx, func(ctx context.Context, d *dest) error {
			if !hasPart(rec, d.part) {
				return nil // what it should hold is reported as lacking below
			}
			var lp *[]byte
			if d.part == repo.BasePart && i > 0 {
				lp = &label
			}
			return run.fetchTar(ctx, rec, d.part, func(r io.Reader) error {
				return u.older(ctx, r, d.stage, d.prefix, check, plan, i, rec.ID, lp)
			})
		})
		if err != nil {
			return nil, err
		}
		if lack := plan.lacking(i, check.Missing()); len(lack) > 0 {
			return nil, fmt.Errorf("%w: backup %s, which backup %s builds on, lacks %s", ErrDamaged, rec.ID, m.ID, firstOf(lack))
		}
		if label != nil {
			if err := builtOn(rec, label, mans[i-1]); err != nil {
				return nil, err
			}
		}
	}
	check := mans[newest].Check()
	err := run.eachDest(ctx, func(ctx context.Context, d *dest) error {
		return run.fetchTar(ctx, m, d.part, func(r io.Reader) error {
			return u.newest(ctx, r, d.stage, d.prefix, check, plan)
		})
	})
	if err != nil {
		return nil, err
	}
	if err := check.Done(); err != nil {
		return nil, fmt.Errorf("%w: backup %s: %w", ErrDamaged, m.ID, err)
	}
	if incremental {
		label, _, err := readRegular(run.dests[0].stage.root, "backup_label")
		if err != nil {
			return nil, err
		}
		if err := builtOn(m, label, mans[newest-1]); err != nil {
			return nil, err
		}
	}

	base := run.dests[0].stage.root
	if incremental {
		if err := fullLabel(base); err != nil {
			return nil, err
		}
	}
	if err := run.remapTablespaces(base); err != nil {
		return nil, err
	}
	rc := recovery{version: run.version, restoreCommand: run.restoreCommand(), target: run.o.Target, action: run.o.Action,
		standby: run.o.Standby, primaryConnInfo: run.o.PrimaryConnInfo, slot: run.o.SlotName, trigger: run.o.Trigger,
		keepArchiving: run.o.KeepArchiving, extra: run.o.Settings}
	wrote, err := rc.write(base)
	if err != nil {
		return nil, err
	}
	made, err := completeConfig(base)
	if err != nil {
		return nil, err
	}
	wrote = append(wrote, made...)
	var written int64
	for _, d := range run.dests {
		written += d.stage.written
		d.stage.close()
	}
	if !run.o.NoSync {
		for _, d := range run.dests {
			if err := syncFS(d.staging); err != nil {
				return nil, fmt.Errorf("syncing %s: %w", d.dir, err)
			}
		}
	}
	// Everything is there and checked: into place.
	for _, d := range run.dests {
		if err := unstage(d); err != nil {
			return nil, err
		}
	}
	if err := os.Chmod(run.o.DataDir, 0o700); err != nil {
		return nil, err
	}
	return &RestoreResult{Backup: *m, Chain: len(run.chain), Files: len(mans[newest].Files), Bytes: written, Wrote: wrote}, nil
}

// eachDest runs fn for every destination, the base and one tablespace at
// a time; the first failure cancels the others.
func (run *restoreRun) eachDest(ctx context.Context, fn func(context.Context, *dest) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make([]error, len(run.dests))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 2)
	for i, d := range run.dests {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			if errs[i] = fn(ctx, d); errs[i] != nil {
				cancel()
			}
		}()
	}
	wg.Wait()
	return firstError(errs)
}

func hasPart(rec *catalog.Record, p repo.BackupPart) bool {
	for _, o := range rec.Objects {
		if q, _ := o.Part(); q == p {
			return true
		}
	}
	return false
}

func firstOf(names []string) string {
	if len(names) > 3 {
		return strings.Join(names[:3], ", ") + fmt.Sprintf(" and %d more", len(names)-3)
	}
	return strings.Join(names, ", ")
}

// manifest fetches the manifest of a backup and checks it against the
// record.
func (run *restoreRun) manifest(ctx context.Context, m *catalog.Record) (*pgdata.Manifest, error) {
	if m.Manifest == nil {
		return nil, fmt.Errorf("%w: backup %s has no manifest to check it against", ErrDamaged, m.ID)
	}
	rc, err := run.r.OpenStream(ctx, repo.BackupObject{ID: m.ID, Part: repo.ManifestPart})
	if err != nil {
		return nil, fmt.Errorf("fetching the manifest of backup %s: %w", m.ID, err)
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, maxManifest))
	if err != nil {
		if errors.Is(err, repo.ErrCorrupt) {
			return nil, fmt.Errorf("%w: %w", ErrDamaged, err)
		}
		return nil, fmt.Errorf("fetching the manifest of backup %s: %w", m.ID, err)
	}
	man, err := pgdata.ParseManifest(data)
	if err != nil {
		return nil, fmt.Errorf("%w: backup %s: %w", ErrDamaged, m.ID, err)
	}
	if man.Checksum != m.Manifest.Checksum {
		return nil, fmt.Errorf("%w: the manifest of backup %s is not the one its record names", ErrDamaged, m.ID)
	}
	return man, nil
}

// fetchTar streams one tar of a backup, read ahead, to fn.
func (run *restoreRun) fetchTar(ctx context.Context, m *catalog.Record, p repo.BackupPart, fn func(io.Reader) error) error {
	o := repo.BackupObject{ID: m.ID, Part: p}
	t, ok := run.takeAhead(o)
	if !ok {
		var err error
		if t, err = run.open(ctx, o); err != nil {
			return err
		}
	}
	defer t.close()
	if err := fn(t.ahead); err != nil {
		return fmt.Errorf("backup %s, %s: %w", m.ID, p, err)
	}
	return nil
}

// aheadTar is one tar being read ahead.
type aheadTar struct {
	rc    io.ReadCloser // the object
	ahead io.ReadCloser // read ahead from it
}

func (t aheadTar) close() { t.ahead.Close(); t.rc.Close() }

func (run *restoreRun) open(ctx context.Context, o repo.BackupObject) (aheadTar, error) {
	rc, err := run.r.OpenStream(ctx, o)
	if err != nil {
		return aheadTar{}, fmt.Errorf("fetching %s: %w", o.Key(), err)
	}
	return aheadTar{rc: rc, ahead: readAhead(rc, 8)}, nil
}

// readAheadOf opens the tars of rec, the next member up the chain, while
// the member before is being unpacked: from an object store the first
// megabytes of the next are on their way meanwhile. One that cannot be
// opened now is opened again when it is needed (and fails then, if it
// must).
func (run *restoreRun) readAheadOf(ctx context.Context, rec *catalog.Record) {
	for _, d := range run.dests {
		if !hasPart(rec, d.part) {
			continue
		}
		o := repo.BackupObject{ID: rec.ID, Part: d.part}
		if t, err := run.open(ctx, o); err == nil {
			run.aheadMu.Lock()
			if run.ahead == nil {
				run.ahead = map[repo.BackupObject]aheadTar{}
			}
			run.ahead[o] = t
			run.aheadMu.Unlock()
		}
	}
}

func (run *restoreRun) takeAhead(o repo.BackupObject) (aheadTar, bool) {
	run.aheadMu.Lock()
	defer run.aheadMu.Unlock()
	t, ok := run.ahead[o]
	delete(run.ahead, o)
	return t, ok
}

// dropAhead closes the tars read ahead that were not needed after all.
func (run *restoreRun) dropAhead() {
	run.aheadMu.Lock()
	defer run.aheadMu.Unlock()
	for o, t := range run.ahead {
		t.close()
		delete(run.ahead, o)
	}
}

// builtOn checks that an incremental backup, by its backup_label, was
// taken relative to the backup its record names as its parent, whose
// manifest is parent: the label's INCREMENTAL FROM is the parent's start
// (as pg_combinebackup checks it). A record altered to name another
// parent would otherwise rebuild files from the wrong blocks.
func builtOn(m *catalog.Record, label []byte, parent *pgdata.Manifest) error {
	bl, err := wal.ParseBackupLabel(bytes.NewReader(label))
	if err != nil {
		return fmt.Errorf("%w: backup %s: %w", ErrDamaged, m.ID, err)
	}
	start, tli := parent.Start()
	if bl.IncrementalFrom != start || bl.IncrementalFromTimeline != tli {
		return fmt.Errorf("%w: backup %s was taken relative to the backup that started at %s on timeline %d, but %s, its parent by its record, started at %s on timeline %d",
			ErrDamaged, m.ID, bl.IncrementalFrom, bl.IncrementalFromTimeline, m.Parent, start, tli)
	}
	return nil
}

// fullLabel takes the lines of an incremental backup out of its
// backup_label (INCREMENTAL FROM LSN and TLI), as pg_combinebackup does:
// the server refuses to start from a label that has them.
func fullLabel(root *os.Root) error {
	data, ok, err := readRegular(root, "backup_label")
	if err != nil || !ok {
		return fmt.Errorf("%w: the backup has no backup_label (%v)", ErrDamaged, err)
	}
	var out bytes.Buffer
	for _, line := range strings.SplitAfter(string(data), "\n") {
		if strings.HasPrefix(line, "INCREMENTAL FROM LSN:") || strings.HasPrefix(line, "INCREMENTAL FROM TLI:") {
			continue
		}
		out.WriteString(line)
	}
	return atomicfile.ReplaceIn(root, "backup_label", out.Bytes())
}

// remapTablespaces points tablespace_map at the tablespaces' new
// directories (the server makes its pg_tblspc links from it).
func (run *restoreRun) remapTablespaces(root *os.Root) error {
	if len(run.o.TablespaceMap) == 0 {
		return nil
	}
	data, ok, err := readRegular(root, "tablespace_map")
	if err != nil || !ok {
		return fmt.Errorf("%w: backup %s has tablespaces but no tablespace_map (%v)", ErrDamaged, run.m.ID, err)
	}
	var out bytes.Buffer
	for _, line := range strings.SplitAfter(string(data), "\n") {
		oid, loc, ok := strings.Cut(strings.TrimSuffix(line, "\n"), " ")
		if to, mapped := run.o.TablespaceMap[loc]; ok && mapped {
			line = oid + " " + to + "\n"
		}
		out.WriteString(line)
	}
	return atomicfile.ReplaceIn(root, "tablespace_map", out.Bytes())
}
