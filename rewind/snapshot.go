package rewind

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"

	"github.com/walship/walship/internal/atomicfile"
	"github.com/walship/walship/pgdata"
)

// Snapshot holds the target's configuration files as they were, to put
// them back exactly after pg_rewind copied the source's over them.
type Snapshot struct {
	files map[string]savedFile
	dirs  map[string]map[string]bool // include_dir -> the .conf files it had
}

type savedFile struct {
	exists bool
	link   string // symbolic link target, when the path is a link
	data   []byte
	mode   fs.FileMode
}

// TakeSnapshot reads every file and include directory of set.
func TakeSnapshot(set ConfSet) (*Snapshot, error) {
	s := &Snapshot{files: map[string]savedFile{}, dirs: map[string]map[string]bool{}}
	for _, p := range set.Files {
		fi, err := os.Lstat(p)
		if errors.Is(err, fs.ErrNotExist) {
			s.files[p] = savedFile{}
			continue
		}
		if err != nil {
			return nil, err
		}
		sf := savedFile{exists: true, mode: fi.Mode().Perm()}
		if fi.Mode()&fs.ModeSymlink != 0 {
			if sf.link, err = os.Readlink(p); err != nil {
				return nil, err
			}
		} else if !fi.Mode().IsRegular() {
			return nil, fmt.Errorf("%s is not a regular file", p)
		} else if sf.data, err = os.ReadFile(p); err != nil {
			return nil, err
		}
		s.files[p] = sf
	}
	for _, d := range set.Dirs {
		names := map[string]bool{}
		for _, n := range includeDirFiles(d) {
			names[n] = true
		}
		s.dirs[d] = names
	}
	return s, nil
}

// Content returns the saved content of path and whether it existed.
func (s *Snapshot) Content(path string) ([]byte, bool) {
	f, ok := s.files[path]
	return f.data, ok && f.exists
}

// Restore puts every saved file back as it was: content and permissions
// of files that existed, removal of files that did not, and removal of
// .conf files that appeared in an include directory. Files that are
// already right are not touched. It returns the paths it changed; it goes
// on after an error and returns the first one.
func (s *Snapshot) Restore() (changed []string, err error) {
	keep := func(e error) {
		if err == nil {
			err = e
		}
	}
	paths := make([]string, 0, len(s.files))
	for p := range s.files {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, p := range paths {
		did, e := restoreFile(p, s.files[p])
		if did {
			changed = append(changed, p)
		}
		keep(e)
	}
	for d, had := range s.dirs {
		for _, n := range includeDirFiles(d) {
			p := filepath.Join(d, n)
			if had[n] {
				continue
			}
			if _, tracked := s.files[p]; tracked {
				continue
			}
			if e := os.Remove(p); e != nil {
				keep(e)
				continue
			}
			changed = append(changed, p)
		}
	}
	sort.Strings(changed)
	return changed, err
}

func restoreFile(p string, want savedFile) (bool, error) {
	fi, err := os.Lstat(p)
	exists := err == nil
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return false, err
	}
	switch {
	case !want.exists:
		if !exists {
			return false, nil
		}
		return true, os.Remove(p)
	case want.link != "":
		if exists && fi.Mode()&fs.ModeSymlink != 0 {
			if cur, err := os.Readlink(p); err == nil && cur == want.link {
				return false, nil
			}
		}
		if exists {
			if err := os.Remove(p); err != nil {
				return true, err
			}
		}
		return true, os.Symlink(want.link, p)
	}
	if exists && fi.Mode().IsRegular() {
		cur, err := os.ReadFile(p)
		if err == nil && bytes.Equal(cur, want.data) {
			if fi.Mode().Perm() == want.mode {
				return false, nil
			}
			return true, os.Chmod(p, want.mode)
		}
	}
	return true, writeFileAtomic(p, want.data, want.mode)
}

// writeFileAtomic replaces path with data durably: the file and its
// directory are synced.
func writeFileAtomic(path string, data []byte, mode fs.FileMode) error {
	return atomicfile.WriteFile(path, data, atomicfile.Options{Sync: true, SyncDir: true, Mode: mode})
}

// includeDirFiles lists the .conf files of an include directory that the
// server reads, as far as they can be listed.
func includeDirFiles(dir string) []string {
	names, _ := pgdata.IncludeDirFiles(dir)
	return names
}
