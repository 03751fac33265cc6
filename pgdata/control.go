package pgdata

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/walship/walship/wal"
)

// Files that make a directory a data directory.
const (
	ControlFile = "global/pg_control"
	VersionFile = "PG_VERSION"
)

// ErrNotDataDir: the directory lacks PG_VERSION or global/pg_control, or
// PG_VERSION does not hold a major version.
var ErrNotDataDir = errors.New("not a PostgreSQL data directory")

// SystemID reads the database system identifier from dataDir's
// pg_control: its first 8 bytes, in the server's (native) byte order,
// followed by pg_control_version, which is checked for sanity so that a
// file that is not pg_control is not taken for one. A missing file gives
// an error that matches fs.ErrNotExist.
func SystemID(dataDir string) (uint64, error) {
	path := filepath.Join(dataDir, ControlFile)
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	var b [12]byte
	if _, err := io.ReadFull(f, b[:]); err != nil {
		return 0, fmt.Errorf("%s: too short for pg_control: %w", path, err)
	}
	id, err := ParseSystemID(b[:])
	if err != nil {
		return 0, fmt.Errorf("%s %w", path, err)
	}
	return id, nil
}

// ParseSystemID reads the system identifier from the start of a pg_control
// file (see SystemID).
func ParseSystemID(b []byte) (uint64, error) {
	if len(b) < 12 {
		return 0, fmt.Errorf("is too short for pg_control (%d bytes)", len(b))
	}
	id := binary.NativeEndian.Uint64(b[0:])
	version := binary.NativeEndian.Uint32(b[8:])
	// 9.4 writes 942; 18 writes 1800. Leave room for the future.
	if id == 0 || version < 900 || version > 9999 {
		return 0, fmt.Errorf("is not a pg_control file (system identifier %d, version %d)", id, version)
	}
	return id, nil
}

// Control is what walship needs from pg_controldata's report of a data
// directory (run with LC_ALL=C: the labels are translated otherwise).
type Control struct {
	SysID           uint64
	State           string // "shut down", "shut down in recovery", "in production", ...
	Checkpoint      wal.LSN
	Redo            wal.LSN
	CheckpointTLI   uint32
	MinRecovery     wal.LSN
	MinRecoveryTLI  uint32
	WalLogHints     bool
	ChecksumVersion int
	SegSize         uint32
	ControlVersion  int
}

// Cluster is the cluster the data directory belongs to.
func (c Control) Cluster() wal.Cluster { return wal.Cluster{SystemID: c.SysID, SegSize: c.SegSize} }

// TLI is the timeline the data directory is on, as pg_rewind computes it:
// the later of the latest checkpoint's and the minimum recovery point's.
func (c Control) TLI() uint32 { return max(c.CheckpointTLI, c.MinRecoveryTLI) }

// CleanShutdown reports whether the server was shut down cleanly, which
// pg_rewind needs (it runs crash recovery itself otherwise).
func (c Control) CleanShutdown() bool {
	return c.State == "shut down" || c.State == "shut down in recovery"
}

// ParseControlData reads the output of pg_controldata.
func ParseControlData(out string) (Control, error) {
	var c Control
	seen := map[string]bool{}
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		var err error
		switch k {
		case "Database system identifier":
			c.SysID, err = strconv.ParseUint(v, 10, 64)
		case "Database cluster state":
			c.State = v
		case "Latest checkpoint location":
			c.Checkpoint, err = wal.ParseLSN(v)
		case "Latest checkpoint's REDO location":
			c.Redo, err = wal.ParseLSN(v)
		case "Latest checkpoint's TimeLineID":
			c.CheckpointTLI, err = parseU32(v)
		case "Minimum recovery ending location":
			c.MinRecovery, err = wal.ParseLSN(v)
		case "Min recovery ending loc's timeline":
			c.MinRecoveryTLI, err = parseU32(v)
		case "wal_log_hints setting":
			c.WalLogHints = v == "on"
		case "Data page checksum version":
			c.ChecksumVersion, err = strconv.Atoi(v)
		case "Bytes per WAL segment":
			c.SegSize, err = parseU32(v)
		case "pg_control version number":
			c.ControlVersion, err = strconv.Atoi(v)
		default:
			continue
		}
		if err != nil {
			return Control{}, fmt.Errorf("pg_controldata %q: %w", k, err)
		}
		seen[k] = true
	}
	for _, k := range []string{"Database system identifier", "Database cluster state", "Latest checkpoint location", "Latest checkpoint's TimeLineID"} {
		if !seen[k] {
			return Control{}, fmt.Errorf("pg_controldata printed no %q line", k)
		}
	}
	return c, nil
}

func parseU32(s string) (uint32, error) {
	v, err := strconv.ParseUint(s, 10, 32)
	return uint32(v), err
}

// Version is a PostgreSQL major version as PG_VERSION writes it ("15",
// "9.6"), with the number used for comparisons (15, 9).
type Version struct {
	Text  string
	Major int
}

func (v Version) String() string { return v.Text }

// ParseVersion reads a major version in PG_VERSION's form.
func ParseVersion(s string) (Version, error) {
	s = strings.TrimSpace(s)
	head, _, _ := strings.Cut(s, ".")
	m, err := strconv.Atoi(head)
	if err != nil || m <= 0 {
		return Version{}, fmt.Errorf("%q is not a PostgreSQL major version", s)
	}
	return Version{Text: s, Major: m}, nil
}

// VersionFromNum turns server_version_num (150004, 90624) into a major
// version in PG_VERSION's form.
func VersionFromNum(n int) Version {
	if n >= 100000 {
		return Version{Text: strconv.Itoa(n / 10000), Major: n / 10000}
	}
	return Version{Text: fmt.Sprintf("%d.%d", n/10000, n/100%100), Major: n / 10000}
}

// ReadVersion reads dataDir's PG_VERSION alone; a missing file gives an
// error that matches fs.ErrNotExist.
func ReadVersion(dataDir string) (Version, error) {
	data, err := os.ReadFile(filepath.Join(dataDir, VersionFile))
	if err != nil {
		return Version{}, err
	}
	return ParseVersion(string(data))
}

// DataDirVersion checks that dir looks like a data directory (PG_VERSION
// and global/pg_control) and returns its PG_VERSION. Its errors match
// ErrNotDataDir, but for a PG_VERSION that exists and cannot be read.
func DataDirVersion(dir string) (Version, error) {
	data, err := os.ReadFile(filepath.Join(dir, VersionFile))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return Version{}, fmt.Errorf("%w: %s has no PG_VERSION", ErrNotDataDir, dir)
		}
		return Version{}, err
	}
	if _, err := os.Stat(filepath.Join(dir, ControlFile)); err != nil {
		return Version{}, fmt.Errorf("%w: %s has no global/pg_control", ErrNotDataDir, dir)
	}
	v, err := ParseVersion(string(data))
	if err != nil {
		return Version{}, fmt.Errorf("%w: PG_VERSION in %s: %w", ErrNotDataDir, dir, err)
	}
	return v, nil
}
