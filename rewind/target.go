package rewind

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/walship/walship/wal"
)

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

// dataDirVersion checks that dir looks like a data directory and returns
// its PG_VERSION.
func dataDirVersion(dir string) (Version, error) {
	data, err := os.ReadFile(filepath.Join(dir, "PG_VERSION"))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return Version{}, fmt.Errorf("%w: %s has no PG_VERSION", ErrNotDataDir, dir)
		}
		return Version{}, err
	}
	if _, err := os.Stat(filepath.Join(dir, "global", "pg_control")); err != nil {
		return Version{}, fmt.Errorf("%w: %s has no global/pg_control", ErrNotDataDir, dir)
	}
	v, err := ParseVersion(string(data))
	if err != nil {
		return Version{}, fmt.Errorf("%w: PG_VERSION in %s: %w", ErrNotDataDir, dir, err)
	}
	return v, nil
}

// checkOwner makes sure the running user owns the data directory: pg_rewind
// must run as that user (it refuses root) to keep the files' ownership.
func checkOwner(dir string) error {
	fi, err := os.Stat(dir)
	if err != nil {
		return err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	if euid := os.Geteuid(); euid == 0 || uint32(euid) != st.Uid {
		who := "root"
		if euid != 0 {
			who = "uid " + strconv.Itoa(euid)
		}
		return fmt.Errorf("%w: %s belongs to uid %d and this runs as %s", ErrOwner, dir, st.Uid, who)
	}
	return nil
}

// PostmasterPID reads postmaster.pid: pid is 0 when there is none, alive
// tells whether that process exists (a stale file stays behind after a
// crash).
func PostmasterPID(dir string) (pid int, alive bool, err error) {
	data, err := os.ReadFile(filepath.Join(dir, "postmaster.pid"))
	if errors.Is(err, os.ErrNotExist) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	first, _, _ := strings.Cut(string(data), "\n")
	pid, err = strconv.Atoi(strings.TrimSpace(first))
	if err != nil || pid == 0 {
		return 0, false, fmt.Errorf("postmaster.pid in %s does not start with a process id", dir)
	}
	if pid < 0 { // a single-user backend writes its pid negated
		pid = -pid
	}
	err = syscall.Kill(pid, 0)
	return pid, err == nil || errors.Is(err, syscall.EPERM), nil
}

// pidFileAddress reads the port and first socket directory (or listen
// address) a running server recorded in postmaster.pid.
func pidFileAddress(dir string) (host string, port int, err error) {
	data, err := os.ReadFile(filepath.Join(dir, "postmaster.pid"))
	if err != nil {
		return "", 0, err
	}
	lines := strings.Split(string(data), "\n")
	if len(lines) < 6 {
		return "", 0, fmt.Errorf("postmaster.pid in %s is not complete yet", dir)
	}
	port, err = strconv.Atoi(strings.TrimSpace(lines[3]))
	if err != nil {
		return "", 0, fmt.Errorf("postmaster.pid in %s: no port: %w", dir, err)
	}
	host = strings.TrimSpace(lines[4])
	if host == "" {
		host = strings.TrimSpace(lines[5])
		if host == "*" || host == "" || host == "0.0.0.0" || host == "::" {
			host = "localhost"
		}
	}
	return host, port, nil
}
