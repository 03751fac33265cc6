package backup

// Where a restore writes: each tar of the backup into its directory (the
// data directory, or a tablespace's), through a staging directory inside
// it that holds everything until all is fetched and checked.

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/walship/walship/catalog"
	"github.com/walship/walship/repo"
)

// dest is where one tar of the backup goes.
type dest struct {
	part    repo.BackupPart
	obj     catalog.RecordObject
	dir     string // the data directory, or the tablespace's directory
	prefix  string // the tar's files in the manifest
	staging string
	created bool // the directory did not exist: remove it on failure
}

// destinations maps each tar of the backup to its directory.
func destinations(m *catalog.Record, o RestoreOptions) ([]*dest, error) {
	var out []*dest
	used := map[string]bool{}
	for _, obj := range m.Objects {
		p, _ := obj.Part()
		switch p.Kind {
		case repo.PartBase:
			out = append([]*dest{{part: p, obj: obj, dir: o.DataDir}}, out...) // first
		case repo.PartTablespace:
			dir := obj.Location
			if to, ok := o.TablespaceMap[obj.Location]; ok {
				dir, used[obj.Location] = to, true
			}
			if !filepath.IsAbs(dir) {
				return nil, fmt.Errorf("tablespace %d: %q is not an absolute path", p.Tablespace, dir)
			}
			out = append(out, &dest{part: p, obj: obj, dir: filepath.Clean(dir), prefix: "pg_tblspc/" + strconv.FormatUint(uint64(p.Tablespace), 10) + "/"})
		}
	}
	if len(out) == 0 || out[0].part != repo.BasePart {
		return nil, fmt.Errorf("%w: backup %s has no base.tar", ErrDamaged, m.ID)
	}
	for from := range o.TablespaceMap {
		if !used[from] {
			return nil, fmt.Errorf("backup %s has no tablespace in %s to move", m.ID, from)
		}
	}
	seen := map[string]bool{}
	for _, d := range out {
		if seen[d.dir] {
			return nil, fmt.Errorf("two parts of backup %s would go into %s", m.ID, d.dir)
		}
		seen[d.dir] = true
	}
	return out, nil
}

// emptyOrAbsent refuses a directory that holds anything.
func emptyOrAbsent(dir string) error {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if len(ents) > 0 {
		names := []string{}
		for _, e := range ents[:min(len(ents), 3)] {
			names = append(names, e.Name())
		}
		return fmt.Errorf("%w: %s holds %s: restore into an empty or new directory", ErrNotEmpty, dir, strings.Join(names, ", "))
	}
	return nil
}

// unstage moves the checked files from the staging directory into place.
func unstage(d *dest) error {
	ents, err := os.ReadDir(d.staging)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if err := os.Rename(filepath.Join(d.staging, e.Name()), filepath.Join(d.dir, e.Name())); err != nil {
			return err
		}
	}
	return os.Remove(d.staging)
}

// cleanup removes what a failed restore wrote.
func (run *restoreRun) cleanup() {
	for _, d := range run.dests {
		if d.staging != "" {
			os.RemoveAll(d.staging)
		}
		if d.created {
			os.Remove(d.dir) // empty again, unless something else wrote there
		}
	}
}

// syncFS flushes the filesystem that holds dir (syncfs: one call for all
// the files written).
func syncFS(dir string) error {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return unix.Syncfs(fd)
}

// stagingName is the directory, inside each destination, that the files
// go into until all are checked.
func stagingName(id repo.BackupID) string { return ".walship-restore-" + string(id) }
