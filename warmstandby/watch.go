package warmstandby

import (
	"os"
	"path/filepath"
	"strings"

	"github.com/fsnotify/fsnotify"

	"github.com/walship/walship/repo"
	"github.com/walship/walship/storage"
	"github.com/walship/walship/storage/local"
	"github.com/walship/walship/wal"
)

// LocalRoot returns the directory of b when b is, or wraps (through
// Unwrap() storage.Backend), a local directory backend.
func LocalRoot(b storage.Backend) (string, bool) {
	for b != nil {
		if l, ok := b.(*local.Backend); ok {
			return l.Root(), true
		}
		u, ok := b.(interface{ Unwrap() storage.Backend })
		if !ok {
			return "", false
		}
		b = u.Unwrap()
	}
	return "", false
}

// watch follows the directories where a segment's object can appear in a
// local repository. A directory that does not exist yet is watched through
// its nearest existing ancestor until it is created.
type watch struct {
	w       *fsnotify.Watcher
	root    string
	watched map[string]bool
	dirs    map[string]bool // where the segment's object may appear
	bases   map[string]bool // the object's possible file names
}

func newWatch(root string) (*watch, error) {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, err
	}
	return &watch{w: w, root: root, watched: map[string]bool{}}, nil
}

func (w *watch) Close() error { return w.w.Close() }

// update computes where n may appear in layout l and makes sure each of
// those directories, or its nearest existing ancestor, is watched.
func (w *watch) update(l repo.Layout, n wal.Name) error {
	w.dirs, w.bases = map[string]bool{}, map[string]bool{}
	for _, loc := range repo.Candidates(l, n) {
		p := filepath.Join(w.root, filepath.FromSlash(loc.Key))
		w.dirs[filepath.Dir(p)] = true
		w.bases[filepath.Base(p)] = true
	}
	var firstErr error
	for d := range w.dirs {
		target := d
		for {
			if fi, err := os.Stat(target); err == nil && fi.IsDir() {
				break
			}
			parent := filepath.Dir(target)
			if parent == target {
				break
			}
			target = parent
		}
		if w.watched[target] {
			continue
		}
		if err := w.w.Add(target); err != nil {
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		w.watched[target] = true
	}
	return firstErr
}

// relevant reports whether an event can concern the segment: its object
// (never a dot-named temporary file) or a directory on the way to it.
func (w *watch) relevant(ev fsnotify.Event) (object, dir bool) {
	base := filepath.Base(ev.Name)
	if strings.HasPrefix(base, ".") {
		return false, false
	}
	if w.bases[base] && w.dirs[filepath.Dir(ev.Name)] {
		return true, false
	}
	for d := range w.dirs {
		if d == ev.Name || strings.HasPrefix(d, ev.Name+string(filepath.Separator)) {
			return false, true
		}
	}
	return false, false
}
