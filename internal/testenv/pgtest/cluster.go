package pgtest

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Cluster is one PostgreSQL data directory and the server that runs on it.
type Cluster struct {
	t       testing.TB
	Name    string
	Data    string // data directory
	Socket  string // unix socket directory
	Port    int
	LogFile string
	// Env holds extra KEY=value settings for the server's environment,
	// which archive_command and restore_command inherit (S3 credentials,
	// say). Start and StartNoWait pass them.
	Env []string
	// Server is the installation whose pg_ctl and postgres run the
	// cluster (the default one unless InitOptions.Server said otherwise).
	Server  Server
	running bool
}

// InitOptions tune initdb.
type InitOptions struct {
	SegSizeMB int  // --wal-segsize; 0 is the default (16)
	Checksums bool // --data-checksums
	// Server runs initdb and then the cluster; nil is Default.
	Server *Server
}

// NewCluster runs initdb in a fresh directory under base (from Dir) and
// writes a configuration fit for tests: unix socket only on a free port,
// replication allowed, fsync off. Settings for the test go in with Conf.
func NewCluster(t testing.TB, base, name string, o InitOptions) *Cluster {
	t.Helper()
	c := Attach(t, base, name)
	if o.Server != nil {
		c.Server = *o.Server
	}
	args := []string{"-D", c.Data, "-U", "postgres", "-A", "trust", "-N"}
	if o.SegSizeMB != 0 {
		args = append(args, "--wal-segsize="+strconv.Itoa(o.SegSizeMB))
	}
	if o.Checksums {
		args = append(args, "--data-checksums")
	}
	Run(t, c.Server.Tool("initdb"), args...)
	c.Conf(
		"listen_addresses = ''",
		"wal_level = replica",
		"max_wal_senders = 10",
		"hot_standby = on",
		"fsync = off",
		"log_line_prefix = '%m [%p] '",
		"log_min_messages = info",
	)
	// Trust replication connections over the socket.
	c.AppendFile("pg_hba.conf", "local replication all trust\n")
	return c
}

// Attach describes a cluster in base/name without creating it (for a data
// directory made by pg_basebackup), run by the default installation (set
// Server for another). The port is new.
func Attach(t testing.TB, base, name string) *Cluster {
	t.Helper()
	c := &Cluster{t: t, Name: name, Data: filepath.Join(base, name), Socket: base,
		Port: FreePort(t), LogFile: filepath.Join(base, name+".log"), Server: Default(t)}
	t.Cleanup(func() {
		if c.running {
			RunErr(t, c.Server.Tool("pg_ctl"), "-D", c.Data, "-m", "immediate", "-w", "stop")
		}
		if t.Failed() {
			if log, err := os.ReadFile(c.LogFile); err == nil {
				t.Logf("server log of %s (last 4000 bytes):\n%s", c.Name, tail(string(log), 4000))
			}
		}
	})
	return c
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// Conf appends settings to postgresql.conf (later lines win). The port and
// socket directory are always set to the cluster's own.
func (c *Cluster) Conf(lines ...string) {
	c.t.Helper()
	lines = append(lines, fmt.Sprintf("port = %d", c.Port), fmt.Sprintf("unix_socket_directories = '%s'", c.Socket))
	c.AppendFile("postgresql.conf", strings.Join(lines, "\n")+"\n")
}

// AppendFile appends text to a file in the data directory.
func (c *Cluster) AppendFile(name, text string) {
	c.t.Helper()
	f, err := os.OpenFile(filepath.Join(c.Data, name), os.O_APPEND|os.O_WRONLY|os.O_CREATE, 0o600)
	if err != nil {
		c.t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(text); err != nil {
		c.t.Fatal(err)
	}
	Chown(c.t, f.Name())
}

// Touch creates an empty file in the data directory (standby.signal, ...).
func (c *Cluster) Touch(name string) { c.AppendFile(name, "") }

// Start starts the server and waits until it accepts connections (or, for
// a standby, until it is up).
func (c *Cluster) Start() {
	c.t.Helper()
	c.startServer("-w", "-t", "120")
}

// StartNoWait starts the server without waiting (for a recovery that may end
// with the server stopping).
func (c *Cluster) StartNoWait() {
	c.t.Helper()
	c.startServer("-W")
}

// startServer runs pg_ctl start with the wait flags and c.Env.
func (c *Cluster) startServer(wait ...string) {
	c.t.Helper()
	args := append([]string{"-D", c.Data, "-l", c.LogFile}, append(wait, "start")...)
	cmd := Command(c.t, c.Server.Tool("pg_ctl"), args...)
	cmd.Env = append(cmd.Env, c.Env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		c.t.Fatalf("pg_ctl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	c.running = true
}

// Stop stops the server in mode (smart, fast, immediate).
func (c *Cluster) Stop(mode string) {
	c.t.Helper()
	Run(c.t, c.Server.Tool("pg_ctl"), "-D", c.Data, "-m", mode, "-w", "-t", "120", "stop")
	c.running = false
}

// Running asks pg_ctl whether the server runs.
func (c *Cluster) Running() bool {
	_, err := RunErr(c.t, c.Server.Tool("pg_ctl"), "-D", c.Data, "status")
	c.running = err == nil
	return c.running
}

// Promote runs pg_ctl promote and waits until the server leaves recovery.
func (c *Cluster) Promote() {
	c.t.Helper()
	Run(c.t, c.Server.Tool("pg_ctl"), "-D", c.Data, "-w", "-t", "120", "promote")
}

// ConnString is a libpq connection string for the server.
func (c *Cluster) ConnString() string {
	return fmt.Sprintf("host=%s port=%d user=postgres dbname=postgres", c.Socket, c.Port)
}

// Query runs SQL through psql and returns the unaligned, tuples-only output
// with the trailing newline removed.
func (c *Cluster) Query(sql string) string {
	c.t.Helper()
	out, err := c.QueryErr(sql)
	if err != nil {
		c.t.Fatalf("psql on %s: %v\n%s\nSQL: %s", c.Name, err, out, sql)
	}
	return out
}

// QueryErr is Query that returns the error.
func (c *Cluster) QueryErr(sql string) (string, error) {
	c.t.Helper()
	cmd := Command(c.t, Tool(c.t, "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-At", "-h", c.Socket, "-p", strconv.Itoa(c.Port), "-U", "postgres", "-d", "postgres", "-c", sql)
	out, err := cmd.CombinedOutput()
	return strings.TrimRight(string(out), "\n"), err
}

// Int runs a query returning one integer.
func (c *Cluster) Int(sql string) int64 {
	c.t.Helper()
	s := c.Query(sql)
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		c.t.Fatalf("%s: %q is not an integer", sql, s)
	}
	return v
}

// Pgbench runs pgbench against the server with args (-i to initialise).
func (c *Cluster) Pgbench(args ...string) string {
	c.t.Helper()
	base := []string{"-h", c.Socket, "-p", strconv.Itoa(c.Port), "-U", "postgres"}
	return Run(c.t, Tool(c.t, "pgbench"), append(append(base, args...), "postgres")...)
}

// BaseBackup takes a pg_basebackup of c into base/name (WAL not included:
// it comes from the archive), labelled "walship test NAME", and returns a
// Cluster for it. A server newer
// than the default installation's pg_basebackup, which refuses it, is
// copied with LowLevelBackup instead (extra is then not allowed).
func (c *Cluster) BaseBackup(base, name string, extra ...string) *Cluster {
	c.t.Helper()
	if c.Server.Major > Default(c.t).Major {
		if len(extra) > 0 {
			c.t.Fatalf("BaseBackup of %s: pg_basebackup %d cannot back up PostgreSQL %s, and a low-level backup takes no %v",
				c.Name, Default(c.t).Major, c.Server.Version, extra)
		}
		return c.LowLevelBackup(base, name, "walship test "+name)
	}
	b := Attach(c.t, base, name)
	b.Server = c.Server
	args := append([]string{"-h", c.Socket, "-p", strconv.Itoa(c.Port), "-U", "postgres", "-D", b.Data, "-c", "fast", "-X", "none", "--no-sync",
		"-l", "walship test " + name}, extra...)
	Run(c.t, Tool(c.t, "pg_basebackup"), args...)
	// The copy carries c's port and socket settings; give it its own.
	b.Conf()
	return b
}

// WaitQuery polls sql until it returns want.
func (c *Cluster) WaitQuery(sql, want string, timeout time.Duration) {
	c.t.Helper()
	var got string
	Eventually(c.t, timeout, fmt.Sprintf("%s on %s to return %q (last %q)", sql, c.Name, want, got), func() bool {
		out, err := c.QueryErr(sql)
		got = out
		return err == nil && out == want
	})
}

// Log returns the server log.
func (c *Cluster) Log() string {
	data, _ := os.ReadFile(c.LogFile)
	return string(data)
}

// ArchiveCommand and RestoreCommand are the postgresql.conf lines that make
// c archive into and restore from repo with walship.
func ArchiveCommand(t testing.TB, repo string, flags ...string) string {
	return fmt.Sprintf("archive_command = '%s %s --repo %s %%p %%f'", Bin(t, "walship-archive"), strings.Join(flags, " "), repo)
}

// RestoreCommand is the restore_command line for repo.
func RestoreCommand(t testing.TB, repo string, flags ...string) string {
	return fmt.Sprintf("restore_command = '%s %s --repo %s %%f %%p'", Bin(t, "walship-restore"), strings.Join(flags, " "), repo)
}
