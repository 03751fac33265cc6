package inspect

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/walship/walship/internal/progress"
	"github.com/walship/walship/repo"
	"github.com/walship/walship/storage"
	"github.com/walship/walship/wal"
)

// Report is what Verify found.
type Report struct {
	Timelines []TimelineInfo `json:"timelines"`
	Backups   []BackupStatus `json:"backups"`
	// Problems make the repository fail verification.
	Problems []Problem `json:"problems"`
	// Notes are worth knowing but not wrong.
	Notes []string `json:"notes,omitempty"`
	// Checked counts the objects read and checked in full (--full).
	Checked int `json:"checked"`
}

// OK reports whether nothing is wrong.
func (r *Report) OK() bool { return len(r.Problems) == 0 }

// VerifyOptions tune Verify.
type VerifyOptions struct {
	// Full reads every segment and partial segment: decodes it (checking
	// the lz4 checksum), and checks its size and page header against its
	// name and the repository's identity.
	Full bool
	// Workers bounds how many objects are read at once (default 2).
	Workers int
	// Bar shows progress of a full check (may be nil).
	Bar func(total int64) *progress.Bar
}

// Verify checks a scanned repository: history files present and readable,
// no segment missing where a timeline needs one, backup history files
// consistent, the newest base backup restorable; with Full, the content of
// every segment. Storage failures return an error; everything wrong with
// the repository itself is in the Report.
func Verify(ctx context.Context, r *repo.Repo, c *Catalog, o VerifyOptions) (*Report, error) {
	rep := &Report{Timelines: c.TimelineInfos()}
	rep.Problems = append(rep.Problems, c.checkHistories()...)
	gaps, notes := c.checkGaps(rep.Timelines)
	rep.Problems = append(rep.Problems, gaps...)
	rep.Notes = append(rep.Notes, notes...)
	rep.Problems = append(rep.Problems, c.checkSizes()...)

	rep.Backups = c.BackupStatuses()
	for _, b := range rep.Backups {
		switch {
		case b.Restorable:
		case b.Newest:
			rep.Problems = append(rep.Problems, Problem{b.File, "the newest base backup is not restorable: " + b.Reason})
		case !b.Expired:
			rep.Problems = append(rep.Problems, Problem{b.File, "base backup not restorable: " + b.Reason})
		}
	}
	if o.Full {
		ps, n, err := c.checkContents(ctx, r, o)
		if err != nil {
			return nil, err
		}
		rep.Problems = append(rep.Problems, ps...)
		rep.Checked = n
	}
	// JSON readers get lists, never null.
	if rep.Problems == nil {
		rep.Problems = []Problem{}
	}
	if rep.Backups == nil {
		rep.Backups = []BackupStatus{}
	}
	if rep.Timelines == nil {
		rep.Timelines = []TimelineInfo{}
	}
	return rep, nil
}

// checkSizes catches, from the listing alone, uncompressed segments of the
// wrong size and empty objects.
func (c *Catalog) checkSizes() []Problem {
	var ps []Problem
	for _, f := range c.Files {
		switch {
		case f.Size == 0:
			ps = append(ps, Problem{f.Key, "empty object"})
		case repo.Compressible(f.Name.Kind) && f.Codec == repo.CodecNone && c.SegSize != 0 && f.Size != int64(c.SegSize):
			ps = append(ps, Problem{f.Key, fmt.Sprintf("%d bytes, want the segment size %d", f.Size, c.SegSize)})
		}
	}
	return ps
}

// checkContents reads every segment and partial segment in full.
func (c *Catalog) checkContents(ctx context.Context, r *repo.Repo, o VerifyOptions) ([]Problem, int, error) {
	var todo []File
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
	probs := make([]*Problem, len(todo))
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
				p, err := c.checkObject(ctx, r, todo[i])
				if err != nil {
					mu.Lock()
					if firstEr == nil {
						firstEr = err
						cancel()
					}
					mu.Unlock()
					continue
				}
				probs[i] = p
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
		return nil, 0, firstEr
	}
	var ps []Problem
	for _, p := range probs {
		if p != nil {
			ps = append(ps, *p)
		}
	}
	return ps, len(todo), nil
}

// checkObject decodes one segment and checks it. A problem with the object
// is returned as a Problem; a failure to read storage as an error.
func (c *Catalog) checkObject(ctx context.Context, r *repo.Repo, f File) (*Problem, error) {
	o, err := r.OpenEntry(ctx, f.Entry)
	if storage.IsNotExist(err) {
		return nil, nil // pruned since the listing
	}
	if err != nil {
		return nil, err
	}
	defer o.Close()
	bad := func(format string, args ...any) (*Problem, error) {
		return &Problem{f.Key, "corrupt: " + fmt.Sprintf(format, args...)}, nil
	}
	br := bufio.NewReaderSize(o, 1<<16)
	head := make([]byte, wal.LongHeaderSize)
	if _, err := io.ReadFull(br, head); err != nil {
		if errors.Is(err, repo.ErrCorrupt) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return bad("%s", reason(err))
		}
		return nil, fmt.Errorf("reading %s: %w", f.Key, err)
	}
	h, err := wal.ParseLongHeader(head)
	if err != nil {
		return bad("%v", err)
	}
	if err := h.CheckName(f.Name); err != nil {
		return bad("%v", err)
	}
	if c.HaveIdentity && (h.SysID != c.Identity.SystemID || h.SegSize != c.Identity.SegSize) {
		return bad("WAL of system %d with %s segments, the repository holds system %d with %s segments",
			h.SysID, wal.FormatSize(h.SegSize), c.Identity.SystemID, wal.FormatSize(c.Identity.SegSize))
	}
	n, err := io.Copy(io.Discard, br)
	if err != nil {
		if errors.Is(err, repo.ErrCorrupt) {
			return bad("%s", reason(err))
		}
		return nil, fmt.Errorf("reading %s: %w", f.Key, err)
	}
	if size := int64(wal.LongHeaderSize) + n; size != int64(h.SegSize) {
		return bad("%d bytes, want the segment size %d", size, h.SegSize)
	}
	return nil, nil
}

// reason is what is wrong, without the key a CorruptError repeats.
func reason(err error) string {
	var ce *repo.CorruptError
	if errors.As(err, &ce) {
		return ce.Reason
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return "shorter than a page header"
	}
	return err.Error()
}
