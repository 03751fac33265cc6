package check

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/walship/walship/pgdata"
)

// The server's environment is what archive_command runs with: its PATH
// decides whether a bare walship-archive is found, its WALSHIP_* settings
// may name the repository. Only the postmaster's own environment can be
// trusted: its children overwrite theirs with their process titles.

// clockTick is the unit of the start time in /proc/PID/stat (USER_HZ,
// 100 on every Linux architecture).
const clockTick = 100

// serverEnv reads the environment of the server's postmaster: the one
// postmaster.pid in dataDir names, when known, else the parent of the
// backend check is connected to. Either must have started when the server
// says it did, or it is some other process (a server in another host or
// container).
func serverEnv(s *Server, dataDir string) (map[string]string, error) {
	pid := 0
	if dataDir != "" {
		if p, err := pgdata.ReadPIDFile(dataDir); err == nil {
			pid = p.PID
		}
	}
	if pid == 0 {
		comm, ppid, _, err := procStat(s.PID)
		if err != nil {
			return nil, err
		}
		if comm != "postgres" {
			return nil, fmt.Errorf("process %d is %q, not the backend walship check talks to: the server runs elsewhere", s.PID, comm)
		}
		pid = ppid
	}
	comm, _, started, err := procStat(pid)
	if err != nil {
		return nil, err
	}
	if (comm != "postgres" && comm != "postmaster") || started.Sub(s.StartTime).Abs() > 2*time.Second {
		return nil, fmt.Errorf("process %d (%s) is not the server's postmaster, which started at %s", pid, comm, s.StartTime.Format(time.RFC3339))
	}
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
	if err != nil {
		return nil, err
	}
	env := map[string]string{}
	for _, kv := range bytes.Split(data, []byte{0}) {
		if k, v, ok := strings.Cut(string(kv), "="); ok {
			env[k] = v
		}
	}
	return env, nil
}

// procStat reads a process's command name, parent and start time.
func procStat(pid int) (comm string, ppid int, started time.Time, err error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return "", 0, time.Time{}, err
	}
	open, end := bytes.IndexByte(data, '('), bytes.LastIndexByte(data, ')')
	if open < 0 || end < open {
		return "", 0, time.Time{}, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	comm = string(data[open+1 : end])
	fields := strings.Fields(string(data[end+1:])) // from field 3, the state
	if len(fields) < 20 {
		return "", 0, time.Time{}, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	ppid, err1 := strconv.Atoi(fields[1])
	ticks, err2 := strconv.ParseInt(fields[19], 10, 64)
	boot, err3 := bootTime()
	if err := errors.Join(err1, err2, err3); err != nil {
		return "", 0, time.Time{}, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	return comm, ppid, boot.Add(time.Duration(ticks) * time.Second / clockTick), nil
}

func bootTime() (time.Time, error) {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return time.Time{}, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "btime "); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			return time.Unix(n, 0), err
		}
	}
	return time.Time{}, errors.New("/proc/stat has no btime")
}

// lookPath finds prog as sh would with PATH path: a name with a slash is
// taken as it is (relative to dir, the data directory, where the server
// runs archive_command); a bare name is searched in each directory of
// path (an empty element is dir). It returns the file found, or an error.
func lookPath(prog, path, dir string) (string, error) {
	if strings.Contains(prog, "/") {
		if !filepath.IsAbs(prog) {
			if dir == "" {
				return "", fmt.Errorf("%s is relative to the data directory, which this role cannot read", prog)
			}
			prog = filepath.Join(dir, prog)
		}
		return prog, executable(prog)
	}
	for _, d := range filepath.SplitList(path) {
		if d == "" {
			if d = dir; d == "" {
				continue
			}
		}
		p := filepath.Join(d, prog)
		if executable(p) == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s is not on the server's PATH (%s)", prog, path)
}

func executable(p string) error {
	fi, err := os.Stat(p)
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
		return fmt.Errorf("%s is not an executable file", p)
	}
	return nil
}
