package pgdata

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// PostmasterPIDFile is the lock file of a running server.
const PostmasterPIDFile = "postmaster.pid"

// PIDFile is what postmaster.pid says. The server writes it line by line
// as it starts (PID, data directory, start time, port, socket directory,
// listen address, shared memory key, status), and it stays behind after a
// crash.
type PIDFile struct {
	// PID is the server's process: the postmaster's, or a single-user
	// backend's, which writes its PID negated.
	PID        int
	SingleUser bool
	DataDir    string
	Port       int    // 0 when not written yet
	SocketDir  string // the first of unix_socket_directories; "" for none
	ListenAddr string // the first of listen_addresses ("*" for all); "" for none
	Status     string // "starting", "stopping", "ready", "standby"; "" before 10

	dir   string // the data directory it was read from
	lines int    // how many lines the file has
}

// ReadPIDFile reads dataDir's postmaster.pid. Its error matches
// fs.ErrNotExist when there is none; a file that does not start with a
// process ID is an error.
func ReadPIDFile(dataDir string) (*PIDFile, error) {
	data, err := os.ReadFile(filepath.Join(dataDir, PostmasterPIDFile))
	if err != nil {
		return nil, err
	}
	lines := strings.Split(string(data), "\n")
	line := func(i int) string {
		if i < len(lines) {
			return strings.TrimSpace(lines[i])
		}
		return ""
	}
	pid, err := strconv.Atoi(line(0))
	if err != nil || pid == 0 {
		return nil, fmt.Errorf("postmaster.pid in %s does not start with a process id", dataDir)
	}
	p := &PIDFile{PID: pid, DataDir: line(1), SocketDir: line(4), ListenAddr: line(5), Status: line(7),
		dir: dataDir, lines: len(lines)}
	if pid < 0 {
		p.PID, p.SingleUser = -pid, true
	}
	p.Port, _ = strconv.Atoi(line(3))
	return p, nil
}

// Alive reports whether the process the file names still runs.
func (p *PIDFile) Alive() bool { return ProcessAlive(p.PID) }

// Address is where a client reaches the server: its first socket
// directory, else its first listen address ("localhost" when it listens
// on every address), and its port. It is an error until the server has
// written them.
func (p *PIDFile) Address() (host string, port int, err error) {
	if p.lines < 6 {
		return "", 0, fmt.Errorf("postmaster.pid in %s is not complete yet", p.dir)
	}
	if p.Port <= 0 {
		return "", 0, fmt.Errorf("postmaster.pid in %s: no port", p.dir)
	}
	host = p.SocketDir
	if host == "" {
		host = p.ListenAddr
		if host == "*" || host == "" || host == "0.0.0.0" || host == "::" {
			host = "localhost"
		}
	}
	return host, p.Port, nil
}

// PostmasterPID reads postmaster.pid: pid is 0 when there is none, alive
// tells whether that process still runs (a stale file stays behind after
// a crash).
func PostmasterPID(dataDir string) (pid int, alive bool, err error) {
	p, err := ReadPIDFile(dataDir)
	if errors.Is(err, os.ErrNotExist) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	return p.PID, p.Alive(), nil
}

// ProcessAlive reports whether process pid runs. A zombie (dead, not
// reaped yet by a parent that may never reap it) counts as dead; a process
// of another user that kill(pid, 0) may not signal (EPERM) counts as alive.
func ProcessAlive(pid int) bool {
	if pid <= 0 {
		return false
	}
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err == nil {
		// pid (comm) state ...: comm may hold spaces and parentheses.
		if i := bytes.LastIndexByte(data, ')'); i >= 0 && i+2 < len(data) {
			switch data[i+2] {
			case 'Z', 'X', 'x':
				return false
			}
		}
		return true
	}
	err = unix.Kill(pid, 0)
	return err == nil || errors.Is(err, unix.EPERM)
}
