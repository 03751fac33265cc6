package prune

import (
	"context"

	"github.com/walship/walship/catalog"
	"github.com/walship/walship/repo"
)

// remove deletes files oldest first: in batches on a store that deletes
// many keys in one call (S3), else one by one. It stops at the first
// failure, so the files left form an unbroken run from the oldest one
// kept; done is called for every file known to be gone.
func remove(ctx context.Context, r *repo.Repo, files []catalog.File, batch int, done func(catalog.File)) error {
	if batch <= 0 {
		batch = 1000
	}
	if !r.Batches() {
		batch = 1 // exact accounting: nothing is gained by grouping
	}
	for len(files) > 0 {
		chunk := files[:min(len(files), batch)]
		files = files[len(chunk):]
		entries := make([]repo.Entry, len(chunk))
		for i, f := range chunk {
			entries[i] = f.Entry
		}
		if err := r.RemoveMany(ctx, entries); err != nil {
			failed := []string{chunk[0].Key}
			switch {
			case len(chunk) == 2:
				failed = append(failed, chunk[1].Key)
			case len(chunk) > 2:
				failed = append(failed, "...", chunk[len(chunk)-1].Key)
			}
			return &DeleteError{Failed: failed, Err: err}
		}
		for _, f := range chunk {
			done(f)
		}
	}
	return nil
}
