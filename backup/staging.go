package backup

// Where a restore writes: each tar of the backup into its directory (the
// data directory, or a tablespace's), through a staging directory inside
// it that holds everything until all is fetched and checked.

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/walship/walship/catalog"
	"github.com/walship/walship/internal/logx"
	"github.com/walship/walship/repo"
)

// dest is where one tar of the backup goes.
type dest struct {
	part    repo.BackupPart
	obj     catalog.RecordObject
	dir     string // the data directory, or the tablespace's directory
	prefix  string // the tar's files in the manifest
	staging string
	stage   *stage // the staging directory, opened as a root
	created bool   // the directory did not exist: remove it on failure
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
			log.Warn("removing what an interrupted restore left", "dir", filepath.Join(dir, e.Name()))
			if err := root.RemoveAll(e.Name()); err != nil {
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
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Geteuid() {
		owner, me := userName(int(st.Uid)), userName(os.Geteuid())
		return fmt.Errorf("%w: %s belongs to %s, and this runs as %s: restore, as the user the server runs as, into a directory of that user's",
			ErrNotYours, dir, owner, me)
	}
	return nil
}

// userName is the name of the user uid, or the number.
func userName(uid int) string {
	id := strconv.Itoa(uid)
	if u, err := user.LookupId(id); err == nil {
		return u.Username
	}
	return id
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
	return root.Remove(name)
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
func stagingName(id repo.BackupID) string { return stagingPrefix + string(id) }

const stagingPrefix = ".walship-restore-"
