package backup

// Where a restore writes: each tar of the backup into its directory (the
// data directory, or a tablespace's), through a staging directory inside
// it that holds everything until all is fetched and checked.

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/walship/walship/catalog"
	"github.com/walship/walship/internal/logx"
	"github.com/walship/walship/internal/owner"
	"github.com/walship/walship/repo"
)

// dest is where one tar of the backup goes.
type dest struct {
	part    repo.BackupPart
	obj     catalog.RecordObject
	dir     string // the data directory, or the tablespace's directory
	prefix  string // the tar's files in the manifest
	staging string
	stage   *stage   // the staging directory, opened as a root
	lock    *os.File // the staging directory, locked while the restore runs
	created bool     // the directory did not exist: remove it on failure
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

// emptyOrAbsent refuses a directory that holds anything but the staging
// directories an interrupted restore left (killed before it could remove
// them): those it removes, saying so. An existing directory must be the
// running user's (see ownDest); once taken, it is made 0700 at once, so
// that nobody else may change it while the restore runs.
func emptyOrAbsent(dir string, log *slog.Logger) error {
	if err := ownDest(dir); err != nil {
		return err
	}
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	left := 0
	for _, e := range ents {
		if !e.IsDir() || !strings.HasPrefix(e.Name(), stagingPrefix) {
			left++
		}
	}
	if left == 0 {
		if err := os.Chmod(dir, 0o700); err != nil {
			return err
		}
		log = logx.Or(log)
		root, err := os.OpenRoot(dir)
		if err != nil {
			return err
		}
		defer root.Close()
		for _, e := range ents {
			// A restore that runs holds its staging directory locked; one
			// killed holds nothing.
			lock, err := lockDir(filepath.Join(dir, e.Name()))
			if errors.Is(err, errBusy) {
				return anotherRestore(dir, e.Name())
			}
			if err != nil {
				return err
			}
			log.Warn("removing what an interrupted restore left", "dir", filepath.Join(dir, e.Name()))
			err = root.RemoveAll(e.Name())
			lock.Close()
			if err != nil {
				return err
			}
		}
		return nil
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

// ownDest refuses an existing directory to restore into that belongs to
// another user than the one running: its owner could rename what the
// restore stages there, or change the restored cluster's configuration
// and files afterwards (PostgreSQL itself refuses a data directory it does
// not own).
func ownDest(dir string) error {
	fi, err := os.Stat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("%w: %s is not a directory", ErrNotEmpty, dir)
	}
	if who, me, other := owner.Other(fi); other {
		return fmt.Errorf("%w: %s belongs to %s, and this runs as %s: restore, as the user the server runs as, into a directory of that user's",
			ErrNotYours, dir, who, me)
	}
	return nil
}

// unstage moves the checked files from the staging directory into place,
// renaming inside the destination's root only.
func unstage(d *dest) error {
	root, err := os.OpenRoot(d.dir)
	if err != nil {
		return err
	}
	defer root.Close()
	name := filepath.Base(d.staging)
	ents, err := fs.ReadDir(root.FS(), name)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if err := root.Rename(name+"/"+e.Name(), e.Name()); err != nil {
			return err
		}
	}
	if err := root.Remove(name); err != nil {
		return err
	}
	d.lock.Close()
	d.lock = nil
	return nil
}

// cleanup removes what a failed restore wrote.
func (run *restoreRun) cleanup() {
	for _, d := range run.dests {
		if d.stage != nil {
			d.stage.close()
		}
		if d.staging != "" {
			os.RemoveAll(d.staging) // removes links, never follows them
		}
		if d.lock != nil {
			d.lock.Close()
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
// go into until all are checked: a name of this restore's own (two
// restores of one backup never share one).
func stagingName(id repo.BackupID) string {
	var b [4]byte
	rand.Read(b[:])
	return stagingPrefix + string(id) + "." + hex.EncodeToString(b[:])
}

// claimStaging makes d's staging directory and locks it for as long as the
// restore runs, then looks again: a destination that holds anything else
// now (another restore that started at the same time) is refused. Of two
// restores started together, at most one goes on.
func (d *dest) claimStaging(id repo.BackupID) error {
	d.staging = filepath.Join(d.dir, stagingName(id))
	if err := os.Mkdir(d.staging, 0o700); err != nil {
		d.staging = "" // not ours to remove
		return err
	}
	lock, err := lockDir(d.staging)
	if err != nil {
		return err
	}
	d.lock = lock
	ents, err := os.ReadDir(d.dir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if e.Name() == filepath.Base(d.staging) {
			continue
		}
		if strings.HasPrefix(e.Name(), stagingPrefix) {
			return anotherRestore(d.dir, e.Name())
		}
		return fmt.Errorf("%w: %s holds %s now: restore into an empty or new directory", ErrNotEmpty, d.dir, e.Name())
	}
	st, err := openStage(d.staging)
	if err != nil {
		return err
	}
	d.stage = st
	return nil
}

// anotherRestore refuses dir, where the restore that holds staging runs.
func anotherRestore(dir, staging string) error {
	return fmt.Errorf("%w: another walship backup restore is writing into %s (%s): wait for it to end, or restore elsewhere", ErrNotEmpty, dir, staging)
}

// errBusy: a directory is locked by a restore that runs.
var errBusy = errors.New("locked by another process")

// lockDir opens the directory path (never through a symbolic link) and
// locks it, without waiting; the lock lasts until the file is closed (or
// the process ends, killed or not).
func lockDir(path string) (*os.File, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB); err != nil {
		unix.Close(fd)
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, errBusy
		}
		return nil, err
	}
	return os.NewFile(uintptr(fd), path), nil
}

const stagingPrefix = ".walship-restore-"
