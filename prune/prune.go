// Package prune removes the WAL a walship repository no longer needs: the
// segments before a restart point (archive_cleanup_command's %r, with
// pg_archivecleanup's timeline rule) or before what a retention policy
// keeps (the newest base backups, an age window).
//
// Whatever the policy, it never removes history files, the identity file,
// the WAL of the newest base backup, or anything at or after the cutoff on
// any timeline; and it refuses to touch a repository whose identity does
// not match the cluster it is told about.
package prune

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/walship/walship/catalog"
	"github.com/walship/walship/internal/progress"
	"github.com/walship/walship/repo"
	"github.com/walship/walship/wal"
)

// ErrNoPolicy is returned when no policy says what to keep (the
// catalog's error).
var ErrNoPolicy = catalog.ErrNoPolicy

// ErrRefused is matched by errors that stop a prune for safety: a
// repository of another cluster, or one that does not say whose it is.
var ErrRefused = errors.New("refusing to prune")

// ErrNoIdentity is matched when a repository in the walship layout has no
// identity file, so it cannot be told whose WAL it holds (an archive of
// bare files written by cp is pruned in the plain layout instead).
var ErrNoIdentity = errors.New("no identity file")

// Policy says what to keep (catalog.Policy).
type Policy = catalog.Policy

// Options tune Prune.
type Options struct {
	Policy
	// DryRun plans and reports, and removes nothing.
	DryRun bool
	// SystemID, when not 0, is the database system identifier of the
	// cluster the repository must belong to; SystemIDFrom says where it
	// was read (for messages).
	SystemID     uint64
	SystemIDFrom string
	// Now is the clock for KeepAge (default time.Now).
	Now func() time.Time
	// Bar, when set, makes a progress bar for the removals.
	Bar func(total int64) *progress.Bar
	// BatchSize bounds one batch delete on stores that have them (default 1000).
	BatchSize int
}

// Plan is what a prune removes and keeps.
type Plan struct {
	// Cutoff: files before this position go (history files never). Only
	// its position matters; its timeline is the one of the file it came
	// from, for messages.
	Cutoff wal.Name
	// Reason names the rule that set the cutoff.
	Reason string
	// Remove lists what goes, oldest first.
	Remove []catalog.File
	// Bytes is the stored size of Remove; RawBytes the WAL they held.
	Bytes, RawBytes int64
	// Backups are the stored base backups that expire with their WAL
	// (they start before the cutoff), oldest first; Leftovers the objects
	// of backups that were interrupted more than catalog.LeftoverAge ago. Their
	// bytes are in BackupBytes.
	Backups     []*catalog.Stored
	Leftovers   []*catalog.Stored
	BackupBytes int64
	// Pieces are the streamed pieces that go: of segments before the
	// cutoff, and of segments stored whole (leftovers of a receiver); their
	// stored bytes are in PieceBytes.
	Pieces     []repo.StoredPiece
	PieceBytes int64
	// OldestKept is the oldest segment left, if any.
	OldestKept     wal.Name
	HaveOldestKept bool
	// Notes explain decisions worth knowing (a policy that kept everything).
	Notes []string
}

// MakePlan decides, from a scanned repository and a policy, what goes:
// what the policy keeps is the catalog's to say (catalog.Retain); the
// files before its cutoff go.
func MakePlan(c *catalog.Catalog, p Policy, now time.Time) (Plan, error) {
	kept, err := c.Retain(p, now)
	if err != nil {
		return Plan{}, err
	}
	plan := Plan{Cutoff: kept.Cutoff, Reason: kept.Reason, Backups: kept.Expired, Leftovers: kept.Interrupted, Notes: kept.Notes}
	for _, sb := range append(append([]*catalog.Stored{}, kept.Expired...), kept.Interrupted...) {
		plan.BackupBytes += sb.Bytes()
	}
	removed := map[string]bool{}
	for _, f := range c.Files {
		if !goes(c, f, kept.Cutoff) {
			continue
		}
		plan.Remove = append(plan.Remove, f)
		plan.Bytes += f.Size
		plan.RawBytes += f.RawSize(c.SegSize)
		removed[f.Key] = true
	}
	for _, tail := range c.Tails() {
		if tail.Whole || wal.ComparePosition(tail.Seg, kept.Cutoff) < 0 {
			plan.Pieces = append(plan.Pieces, tail.Pieces...)
			plan.PieceBytes += tail.Bytes
		}
	}
	for _, f := range c.Files {
		if f.Name.Kind == wal.KindSegment && !removed[f.Key] {
			plan.OldestKept, plan.HaveOldestKept = f.Name, true
			break
		}
	}
	return plan, nil
}

// goes decides one file against the cutoff.
func goes(c *catalog.Catalog, f catalog.File, cutoff wal.Name) bool {
	switch f.Name.Kind {
	case wal.KindHistory:
		return false // needed to follow timelines, and tiny
	case wal.KindSegment, wal.KindPartial:
		return wal.ComparePosition(f.Name, cutoff) < 0
	case wal.KindBackup:
		// A backup's record outlives its WAL by one run: while its start
		// segment is still stored the record stays, so that ls and verify
		// can name the backup as expired; once that segment is gone the
		// record is no longer needed.
		return wal.ComparePosition(f.Name, cutoff) < 0 && !c.HasSegment(f.Name)
	}
	return false
}

// Result is what Prune did.
type Result struct {
	Plan
	DryRun       bool
	Removed      int
	RemovedBytes int64
	// Swept counts the stale temporary files of killed writers removed
	// (or, in a dry run, found).
	Swept      int
	SweptBytes int64
	// RemovedBackups and RemovedLeftovers count the backups removed (the
	// first of Plan.Backups and Plan.Leftovers), with their bytes.
	RemovedBackups     int
	RemovedLeftovers   int
	RemovedBackupBytes int64
	// RemovedPieces counts the streamed pieces removed.
	RemovedPieces int
}

// Summary is the one line a run prints.
func (r Result) Summary() string {
	var b strings.Builder
	verb := "removed"
	n, bytes := r.Removed, r.RemovedBytes
	if r.DryRun {
		verb, n, bytes = "would remove", len(r.Remove), r.Bytes
	}
	fmt.Fprintf(&b, "%s %d file(s), %s", verb, n, progress.Bytes(bytes))
	if r.RawBytes > bytes && n > 0 {
		fmt.Fprintf(&b, " (%s of WAL)", progress.Bytes(r.RawBytes))
	}
	nb, nl, bb := r.RemovedBackups, r.RemovedLeftovers, r.RemovedBackupBytes
	if r.DryRun {
		nb, nl, bb = len(r.Backups), len(r.Leftovers), r.BackupBytes
	}
	if nb > 0 {
		var ids []string
		for _, sb := range r.Backups[:nb] {
			ids = append(ids, string(sb.ID))
		}
		fmt.Fprintf(&b, ", %d expired base backup(s) (%s)", nb, strings.Join(ids, ", "))
	}
	if nl > 0 {
		fmt.Fprintf(&b, ", %d interrupted backup(s)", nl)
	}
	if nb+nl > 0 {
		fmt.Fprintf(&b, ", %s", progress.Bytes(bb))
	}
	if np := r.RemovedPieces; np > 0 || (r.DryRun && len(r.Pieces) > 0) {
		if r.DryRun {
			np = len(r.Pieces)
		}
		fmt.Fprintf(&b, ", %d streamed piece(s)", np)
	}
	if r.Swept > 0 {
		fmt.Fprintf(&b, " and %d temporary file(s) of killed writers, %s", r.Swept, progress.Bytes(r.SweptBytes))
	}
	if r.HaveOldestKept {
		fmt.Fprintf(&b, "; oldest kept segment %s", r.OldestKept)
	} else {
		b.WriteString("; no segment kept")
	}
	if r.Cutoff.Log == 0 && r.Cutoff.Seg == 0 {
		fmt.Fprintf(&b, "; keeping everything (%s)", r.Reason)
	} else {
		fmt.Fprintf(&b, "; cutoff %s (%s)", r.Cutoff, r.Reason)
	}
	return b.String()
}

// DeleteError reports removals that failed. Files older than the first
// failure may have gone; nothing newer was touched.
type DeleteError struct {
	Failed  []string // keys
	Err     error
	Removed int
}

func (e *DeleteError) Error() string {
	return fmt.Sprintf("removing %s failed after %d file(s) were removed: %v", strings.Join(e.Failed, ", "), e.Removed, e.Err)
}

func (e *DeleteError) Unwrap() error { return e.Err }

// Prune checks the repository's identity, plans, and (unless DryRun)
// removes. On a failed removal it stops, so that what remains has no holes,
// and returns a *DeleteError with the Result of what was done.
func Prune(ctx context.Context, r *repo.Repo, o Options) (Result, error) {
	if o.Policy.Empty() {
		return Result{}, ErrNoPolicy
	}
	id, haveID, err := r.Identity(ctx)
	if err != nil {
		return Result{}, err
	}
	if !haveID && r.Layout() != repo.LayoutPlain {
		return Result{}, fmt.Errorf("%w: %s has %w (%s), so it cannot be told whose WAL it holds", ErrRefused, r, ErrNoIdentity, repo.IdentityKey)
	}
	c, err := catalog.Scan(ctx, r)
	if err != nil {
		return Result{}, err
	}
	if o.SystemID != 0 {
		if err := checkSystem(ctx, r, c, id, haveID, o); err != nil {
			return Result{}, err
		}
	}
	now := time.Now
	if o.Now != nil {
		now = o.Now
	}
	plan, err := MakePlan(c, o.Policy, now())
	if err != nil {
		return Result{}, err
	}
	res := Result{Plan: plan, DryRun: o.DryRun}
	if !o.DryRun {
		if err := r.CheckOwner(); err != nil {
			return res, err
		}
	}
	if res.Swept, res.SweptBytes, err = r.Sweep(ctx, !o.DryRun); err != nil {
		return res, err
	}
	if o.DryRun {
		return res, nil
	}
	// Interrupted backups, then expired ones (their records first), then
	// their WAL: whatever stops the run, no backup that is listed lacks
	// its objects or its WAL.
	for _, sb := range plan.Leftovers {
		if err := catalog.RemoveBackup(ctx, r, sb); err != nil {
			return res, &DeleteError{Failed: sb.Keys(), Err: err, Removed: res.Removed}
		}
		res.RemovedLeftovers++
		res.RemovedBackupBytes += sb.Bytes()
	}
	for _, sb := range plan.Backups {
		if err := catalog.RemoveBackup(ctx, r, sb); err != nil {
			return res, &DeleteError{Failed: sb.Keys(), Err: err, Removed: res.Removed}
		}
		res.RemovedBackups++
		res.RemovedBackupBytes += sb.Bytes()
	}
	if len(plan.Pieces) > 0 {
		// Streamed pieces are no segment's only copy before the cutoff,
		// nor of a segment stored whole: nothing depends on their order.
		if err := r.RemovePieces(ctx, plan.Pieces); err != nil {
			return res, &DeleteError{Failed: []string{plan.Pieces[0].Key, "..."}, Err: err, Removed: res.Removed}
		}
		res.RemovedPieces = len(plan.Pieces)
	}
	if len(plan.Remove) == 0 {
		return res, nil
	}
	var bar *progress.Bar
	if o.Bar != nil {
		bar = o.Bar(int64(len(plan.Remove)))
	}
	defer bar.Done()
	err = remove(ctx, r, plan.Remove, o.BatchSize, func(f catalog.File) {
		res.Removed++
		res.RemovedBytes += f.Size
		bar.Add(1)
	})
	if err != nil {
		var de *DeleteError
		if errors.As(err, &de) {
			de.Removed = res.Removed
		}
		return res, err
	}
	return res, nil
}

// checkSystem refuses a repository that belongs to another cluster than
// the one named by o.SystemID. Without an identity file, the header of the
// newest segment says whose the WAL is.
func checkSystem(ctx context.Context, r *repo.Repo, c *catalog.Catalog, id repo.Identity, haveID bool, o Options) error {
	from := o.SystemIDFrom
	if from == "" {
		from = "the system identifier given"
	}
	have := id.SystemID
	what := repo.IdentityKey
	if !haveID {
		segs := c.Segments(0)
		if len(segs) == 0 {
			return nil // nothing to prune, nothing to compare
		}
		newest := segs[len(segs)-1]
		h, err := repo.ReadHeader(ctx, r, newest.Entry)
		if err != nil {
			return fmt.Errorf("%w: cannot read whose WAL %s is: %w", ErrRefused, newest.Key, err)
		}
		have, what = h.SysID, newest.Key
	}
	if have != o.SystemID {
		return fmt.Errorf("%w: %s belongs to database system %d (%s), but %s says %d", ErrRefused, r, have, what, from, o.SystemID)
	}
	return nil
}
