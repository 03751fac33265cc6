// Package inspect says what a walship repository holds (ls, status) and
// whether it is complete and intact (verify), from the catalog of
// everything stored; what is restorable, and what a timeline lacks, the
// catalog says.
package inspect

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/walship/walship/catalog"
	"github.com/walship/walship/internal/progress"
	"github.com/walship/walship/repo"
	"github.com/walship/walship/storage"
)

// Problem is one thing wrong with a repository (catalog.Problem).
type Problem = catalog.Problem

// Report is what Verify found.
type Report struct {
	Timelines []catalog.TimelineInfo `json:"timelines"`
	Backups   []catalog.BackupStatus `json:"backups"`
	// Problems make the repository fail verification.
	Problems []Problem `json:"problems"`
	// Notes are worth knowing but not wrong.
	Notes []string `json:"notes,omitempty"`
	// Checked counts the objects read and checked in full (--full), and
	// BackupsChecked the stored base backups read in full.
	Checked        int `json:"checked"`
	BackupsChecked int `json:"backups_checked"`
	// Unchecked counts the objects that carry no checksum (the plain
	// layout, as cp writes it; repositories of format 1).
	Unchecked int `json:"unchecksummed"`
	// Keys, for an encrypted repository read in full, say which objects
	// need which key: one entry per set of recipients.
	Keys []KeyUse `json:"keys,omitempty"`
	// Undecrypted counts the encrypted objects not checked because no
	// identity given decrypts them.
	Undecrypted int `json:"undecrypted,omitempty"`
	// Leftovers are temporary files of writers killed half-way, which
	// walship-archive and walship-prune remove once they are stale.
	Leftovers     int   `json:"leftover_temp_files"`
	LeftoverBytes int64 `json:"leftover_temp_bytes"`
}

// KeyUse is how many objects were encrypted to one set of recipients.
type KeyUse struct {
	Recipients []string `json:"recipients"` // fingerprints
	Objects    int      `json:"objects"`
	// Readable: an identity given decrypts them.
	Readable bool `json:"readable"`
}

// OK reports whether nothing is wrong.
func (r *Report) OK() bool { return len(r.Problems) == 0 }

// VerifyOptions tune Verify.
type VerifyOptions struct {
	// Full reads every segment and partial segment: decodes it (checking
	// the lz4 checksum), and checks its size and page header against its
	// name and the repository's identity; and every object of every
	// stored base backup, each file of its tars against its manifest.
	Full bool
	// Workers bounds how many objects are read at once (default 2).
	Workers int
	// Bar shows progress of a full check (may be nil).
	Bar func(total int64) *progress.Bar
	// TailGrace is how long an older timeline may still be archived after
	// a newer one branched off before it is a second writer (see
	// catalog.SecondWriters); 0 is catalog.DefaultTailGrace.
	TailGrace time.Duration
}

// Verify checks a scanned repository: history files present and readable,
// no segment missing where a timeline needs one, no older timeline still
// archived long after a newer one branched off (a second writer), backup
// history files consistent, the newest base backup restorable; with Full,
// the content of every segment. Storage failures return an error; everything wrong with
// the repository itself is in the Report.
func Verify(ctx context.Context, r *repo.Repo, c *catalog.Catalog, o VerifyOptions) (*Report, error) {
	rep := &Report{Timelines: catalog.TimelineInfos(c)}
	rep.Problems = append(rep.Problems, catalog.HistoryProblems(c)...)
	gaps, notes := checkGaps(c, rep.Timelines)
	rep.Problems = append(rep.Problems, gaps...)
	rep.Notes = append(rep.Notes, notes...)
	for _, w := range catalog.SecondWriters(c, o.TailGrace) {
		rep.Problems = append(rep.Problems, w.Problem())
	}
	rep.Problems = append(rep.Problems, checkSizes(c)...)
	for _, dup := range c.Duplicates() {
		keys := make([]string, len(dup))
		for i, f := range dup {
			keys[i] = f.Key
		}
		rep.Problems = append(rep.Problems, Problem{File: dup[0].Name.String(), Msg: "stored more than once (" + strings.Join(keys, ", ") +
			"): a restore may hand out either; keep the one whose content PostgreSQL wrote and remove the others"})
	}
	for _, f := range c.Files {
		if f.Codec == repo.CodecNone && !f.Sealed {
			rep.Unchecked++
		}
	}
	if rep.Unchecked > 0 {
		rep.Notes = append(rep.Notes, fmt.Sprintf("%d uncompressed object(s) carry no checksum (the plain layout, as cp writes it, or a repository of format 1): only their size and page header can be checked", rep.Unchecked))
	}
	var err error
	if rep.Leftovers, rep.LeftoverBytes, err = r.Sweep(ctx, false); err != nil {
		return nil, err
	}
	if rep.Leftovers > 0 {
		rep.Notes = append(rep.Notes, fmt.Sprintf("%d temporary file(s) of killed writers (%d bytes), older than any write takes: the next walship-prune removes them", rep.Leftovers, rep.LeftoverBytes))
	}

	bps, bnotes := checkStoredBackups(c)
	rep.Problems = append(rep.Problems, bps...)
	rep.Notes = append(rep.Notes, bnotes...)
	rep.Backups = c.BackupStatuses()
	for _, b := range rep.Backups {
		switch {
		case b.Restorable:
		case b.Newest:
			rep.Problems = append(rep.Problems, Problem{File: b.Name(), Msg: "the newest base backup is not restorable: " + b.Reason})
		case !b.Expired:
			rep.Problems = append(rep.Problems, Problem{File: b.Name(), Msg: "base backup not restorable: " + b.Reason})
		}
	}
	if o.Full {
		if err := checkContents(ctx, r, c, o, rep); err != nil {
			return nil, err
		}
		ps, notes, n, err := checkBackupObjects(ctx, r, c, o)
		if err != nil {
			return nil, err
		}
		rep.Problems = append(rep.Problems, ps...)
		rep.Notes = append(rep.Notes, notes...)
		rep.BackupsChecked = n
	}
	// JSON readers get lists, never null.
	if rep.Problems == nil {
		rep.Problems = []Problem{}
	}
	if rep.Backups == nil {
		rep.Backups = []catalog.BackupStatus{}
	}
	if rep.Timelines == nil {
		rep.Timelines = []catalog.TimelineInfo{}
	}
	return rep, nil
}

// checkSizes catches, from the listing alone, uncompressed segments of the
// wrong size and empty objects.
func checkSizes(c *catalog.Catalog) []Problem {
	var ps []Problem
	for _, f := range c.Files {
		switch {
		case f.Size == 0:
			ps = append(ps, Problem{File: f.Key, Msg: "empty object"})
		case repo.Compressible(f.Name.Kind) && f.Codec == repo.CodecNone && c.SegSize != 0 && f.RawSize(c.SegSize) != int64(c.SegSize):
			ps = append(ps, Problem{File: f.Key, Msg: fmt.Sprintf("%d bytes, want the segment size %d", f.RawSize(c.SegSize), c.SegSize)})
		}
	}
	return ps
}

// checkContents reads every segment and partial segment in full.
func checkContents(ctx context.Context, r *repo.Repo, c *catalog.Catalog, o VerifyOptions, rep *Report) error {
	var todo []catalog.File
	var total int64
	for _, f := range c.Files {
		if repo.Compressible(f.Name.Kind) {
			todo = append(todo, f)
			total += f.Size
		}
	}
	var bar *progress.Bar
	if o.Bar != nil {
		bar = o.Bar(total)
	}
	defer bar.Done()
	workers := o.Workers
	if workers <= 0 {
		workers = 2
	}
	results := make([]checked, len(todo))
	var (
		mu      sync.Mutex
		firstEr error
		wg      sync.WaitGroup
	)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	next := make(chan int)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				res, err := checkObject(ctx, r, c, todo[i])
				if err != nil {
					mu.Lock()
					if firstEr == nil {
						firstEr = err
						cancel()
					}
					mu.Unlock()
					continue
				}
				results[i] = res
				bar.Add(todo[i].Size)
			}
		}()
	}
	for i := range todo {
		if ctx.Err() != nil {
			break
		}
		next <- i
	}
	close(next)
	wg.Wait()
	if firstEr != nil {
		return firstEr
	}
	uses := map[string]*KeyUse{}
	for _, res := range results {
		if res.problem != nil {
			rep.Problems = append(rep.Problems, *res.problem)
		}
		if res.recipients != nil {
			k := strings.Join(res.recipients, ",")
			if uses[k] == nil {
				uses[k] = &KeyUse{Recipients: res.recipients, Readable: true}
			}
			uses[k].Objects++
			if res.undecrypted {
				uses[k].Readable = false
				rep.Undecrypted++
			}
		}
	}
	for _, u := range uses {
		rep.Keys = append(rep.Keys, *u)
	}
	slices.SortFunc(rep.Keys, func(a, b KeyUse) int {
		return strings.Compare(strings.Join(a.Recipients, ","), strings.Join(b.Recipients, ","))
	})
	for _, u := range rep.Keys {
		verdict := "readable with the identities given"
		if !u.Readable {
			verdict = "NOT readable with the identities given: not checked"
		}
		rep.Notes = append(rep.Notes, fmt.Sprintf("%d object(s) encrypted to key(s) %s: %s", u.Objects, strings.Join(u.Recipients, ", "), verdict))
	}
	rep.Checked = len(todo) - rep.Undecrypted
	return nil
}

// checkGaps reports the Gaps as problems.
func checkGaps(c *catalog.Catalog, tls []catalog.TimelineInfo) (ps []Problem, notes []string) {
	if c.SegSize == 0 {
		if len(c.Segments(0)) > 0 {
			ps = append(ps, Problem{File: c.Location, Msg: "segment size unknown (no walship.json and no readable segment header): gaps not checked"})
		}
		return ps, nil
	}
	gs, notes := catalog.Gaps(c, tls)
	for _, g := range gs {
		ps = append(ps, g.Problem())
	}
	return ps, notes
}

// checked is what reading one object found.
type checked struct {
	problem     *Problem
	recipients  []string // of an encrypted object
	undecrypted bool     // encrypted, and no identity given decrypts it
}

// checkObject decodes one segment and checks it (repo.Object.Copy). A
// problem with the object is in the result; a failure to read storage is
// an error.
func checkObject(ctx context.Context, r *repo.Repo, c *catalog.Catalog, f catalog.File) (checked, error) {
	o, err := r.OpenEntry(ctx, f.Entry)
	if storage.IsNotExist(err) {
		return checked{}, nil // pruned since the listing
	}
	if err != nil {
		return checked{}, err
	}
	defer o.Close()
	var id *repo.Identity
	if c.HaveIdentity {
		id = &c.Identity
	}
	var ce *repo.CorruptError
	_, err = o.Copy(io.Discard, id)
	res := checked{recipients: o.Recipients()}
	switch {
	case errors.As(err, &ce):
		res.problem = &Problem{File: f.Key, Msg: "corrupt: " + ce.Reason}
	case errors.Is(err, repo.ErrEncryption):
		res.undecrypted = true
	case err != nil:
		return checked{}, fmt.Errorf("reading %s: %w", f.Key, err)
	}
	return res, nil
}
