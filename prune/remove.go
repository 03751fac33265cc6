package prune

import (
	"context"

	"github.com/walship/walship/inspect"
	"github.com/walship/walship/repo"
	"github.com/walship/walship/storage"
)

// remove deletes files oldest first: in batches on a store that deletes
// many keys in one call (S3), else one by one. It stops at the first
// failure, so the files left form an unbroken run from the oldest one
// kept; done is called for every file known to be gone.
func remove(ctx context.Context, r *repo.Repo, files []inspect.File, batch int, done func(inspect.File)) error {
	if batch <= 0 {
		batch = 1000
	}
	if !batches(r.Backend) {
		batch = 1 // exact accounting: nothing is gained by grouping
	}
	for len(files) > 0 {
		chunk := files[:min(len(files), batch)]
		files = files[len(chunk):]
		keys := make([]string, len(chunk))
		for i, f := range chunk {
			keys[i] = f.Key
		}
		if err := storage.RemoveMany(ctx, r.Backend, keys); err != nil {
			failed := keys
			if len(keys) > 2 {
				failed = []string{keys[0], "...", keys[len(keys)-1]}
			}
			return &DeleteError{Failed: failed, Err: err}
		}
		for _, f := range chunk {
			done(f)
		}
	}
	return nil
}

// batches reports whether the store under any wrappers deletes in batches.
func batches(b storage.Backend) bool {
	for {
		u, ok := b.(interface{ Unwrap() storage.Backend })
		if !ok {
			_, ok := b.(storage.BatchRemover)
			return ok
		}
		b = u.Unwrap()
	}
}
