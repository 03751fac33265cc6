package local

import (
	"context"
	"os"
	"path/filepath"
	"strings"

	"github.com/fsnotify/fsnotify"
)

// Watch implements storage.Watcher with file system events. Each key's
// directory is watched, or, while it does not exist yet, its nearest
// existing ancestor, re-aimed as the directories on the way appear.
// Temporary files (names starting with '.') never notify.
func (b *Backend) Watch(ctx context.Context, keys []string) (<-chan struct{}, error) {
	w := &watch{dirs: map[string]bool{}, bases: map[string]bool{}, watched: map[string]bool{}}
	for _, k := range keys {
		p, err := b.path(k)
		if err != nil {
			return nil, err
		}
		w.dirs[filepath.Dir(p)] = true
		w.bases[filepath.Base(p)] = true
	}
	var err error
	if w.fs, err = fsnotify.NewWatcher(); err != nil {
		return nil, err
	}
	if err := w.aim(); err != nil {
		w.fs.Close()
		return nil, err
	}
	out := make(chan struct{}, 1)
	notify := func() {
		select {
		case out <- struct{}{}:
		default: // one is pending already
		}
	}
	go func() {
		defer close(out)
		defer w.fs.Close()
		for {
			select {
			case <-ctx.Done():
				return
			case ev, ok := <-w.fs.Events:
				if !ok {
					return
				}
				object, dir := w.relevant(ev)
				if dir && w.aim() != nil {
					object = true // events may be missed now: have the caller look
				}
				if object || dir {
					notify()
				}
			case _, ok := <-w.fs.Errors:
				if !ok {
					return
				}
				notify() // events may have been lost
			}
		}
	}()
	return out, nil
}

// watch follows the directories where the watched keys can appear.
type watch struct {
	fs      *fsnotify.Watcher
	dirs    map[string]bool // where the objects may appear
	bases   map[string]bool // their file names
	watched map[string]bool
}

// aim makes sure each directory of interest, or its nearest existing
// ancestor, is watched. A directory created between looking and watching
// sends no event to the watch on its parent, so after watching an ancestor
// aim looks again, until the nearest existing directory is watched.
func (w *watch) aim() error {
	var firstErr error
	for d := range w.dirs {
		for {
			target := nearestDir(d)
			if w.watched[target] {
				break
			}
			if beforeAdd != nil {
				beforeAdd(target)
			}
			if err := w.fs.Add(target); err != nil {
				if firstErr == nil {
					firstErr = err
				}
				break
			}
			w.watched[target] = true
			if target == d {
				break
			}
		}
	}
	return firstErr
}

// beforeAdd, when set by a test, runs between finding a directory and
// watching it.
var beforeAdd func(dir string)

// nearestDir returns d or its nearest ancestor that exists as a directory.
func nearestDir(d string) string {
	for {
		if fi, err := os.Stat(d); err == nil && fi.IsDir() {
			return d
		}
		parent := filepath.Dir(d)
		if parent == d {
			return d
		}
		d = parent
	}
}

// relevant reports whether an event can concern a watched key: its object
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
