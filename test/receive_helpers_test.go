package test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/walship/walship/catalog"
	"github.com/walship/walship/internal/testenv/pgtest"
)

// receiverProc is one walship receive process, run as the server's user,
// its log in a file of its own.
type receiverProc struct {
	t    testing.TB
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	err  error
}

// startReceiver runs walship receive on the archive against c, through the
// slot walship (created when missing), with extra flags.
func startReceiver(t testing.TB, store archiveBackend, base string, c *pgtest.Cluster, extra ...string) *receiverProc {
	t.Helper()
	return startReceiverQuiet(t, store, base, c, append([]string{"-v"}, extra...)...)
}

// startReceiverQuiet is startReceiver without -v (a benchmark's).
func startReceiverQuiet(t testing.TB, store archiveBackend, base string, c *pgtest.Cluster, extra ...string) *receiverProc {
	t.Helper()
	args := append(append([]string{"receive"}, store.flags()...), "-d", c.ConnString(), "--slot", "walship", "--create-slot")
	cmd := pgtest.Command(t, pgtest.Bin(t, "walship"), append(args, extra...)...)
	cmd.Env = append(cmd.Env, store.env()...)
	f, err := os.CreateTemp(base, "receiver-*.log")
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &receiverProc{t: t, cmd: cmd, log: f.Name(), done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			data, _ := os.ReadFile(p.log)
			t.Logf("walship receive log (last 6000 bytes):\n%s", tail(string(data), 6000))
		}
	})
	return p
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// stop sends SIGTERM and returns the exit status (-1: killed by a signal).
func (p *receiverProc) stop() int {
	p.t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(2 * time.Minute):
		p.kill()
		p.t.Fatalf("walship receive still runs two minutes after SIGTERM")
	}
	return p.cmd.ProcessState.ExitCode()
}

// kill ends the receiver with SIGKILL, if it runs.
func (p *receiverProc) kill() {
	select {
	case <-p.done:
		return
	default:
	}
	p.cmd.Process.Kill()
	<-p.done
}

// logText is what the receiver logged so far.
func (p *receiverProc) logText() string {
	data, _ := os.ReadFile(p.log)
	return string(data)
}

// syncPrimary is a primary that archives into store with walship-archive,
// on 1 MiB segments (so that a short test crosses many), with a table t
// for rows committed one by one.
func syncPrimary(t testing.TB, store archiveBackend, base, name string, o pgtest.InitOptions) *pgtest.Cluster {
	t.Helper()
	if o.SegSizeMB == 0 {
		o.SegSizeMB = 1
	}
	c := pgtest.NewCluster(t, base, name, o)
	c.Env = store.env()
	c.Conf("archive_mode = on", commandLine(t, store, "walship-archive"), "archive_timeout = 0", "wal_keep_size = 0")
	c.Start()
	c.Query("CREATE TABLE t (id int PRIMARY KEY, pad text)")
	return c
}

// makeSync makes walship c's synchronous standby (in postgresql.auto.conf,
// which a base backup taken after carries to its copies).
func makeSync(t testing.TB, c *pgtest.Cluster, names string) {
	t.Helper()
	c.Query("ALTER SYSTEM SET synchronous_standby_names = '" + names + "'")
	c.Query("SELECT pg_reload_conf()")
}

// writer commits rows one by one into t, each in its own transaction,
// and remembers those whose commit returned: what the server acknowledged.
type writer struct {
	mu    sync.Mutex
	acked []int
	next  int
	err   error
	done  chan struct{}
}

// startWriter connects to c and commits rows from id first on until the
// connection fails or ctx ends.
func startWriter(ctx context.Context, t testing.TB, c *pgtest.Cluster, first int, seed int64) *writer {
	t.Helper()
	conn, err := pgx.Connect(ctx, c.ConnString())
	if err != nil {
		t.Fatal(err)
	}
	w := &writer{next: first, done: make(chan struct{})}
	go func() {
		defer close(w.done)
		defer conn.Close(context.Background())
		r := seed
		for ctx.Err() == nil {
			r = r*6364136223846793005 + 1442695040888963407
			pad := strings.Repeat("x", int(uint64(r)>>33)%3000)
			id := w.next
			if _, err := conn.Exec(ctx, "INSERT INTO t VALUES ($1, $2)", id, pad); err != nil {
				w.mu.Lock()
				w.err = err
				w.mu.Unlock()
				return
			}
			w.mu.Lock()
			w.acked = append(w.acked, id)
			w.next++
			w.mu.Unlock()
		}
	}()
	return w
}

// count is how many commits were acknowledged so far.
func (w *writer) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.acked)
}

// wait ends with the writer and returns what it acknowledged.
func (w *writer) wait() []int {
	<-w.done
	return w.acked
}

// killServer kills c's postmaster with SIGKILL (and so every backend dies
// with it) and waits until it is gone.
func killServer(t testing.TB, c *pgtest.Cluster) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(c.Data, "postmaster.pid"))
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(strings.SplitN(string(data), "\n", 2)[0]))
	if err != nil {
		t.Fatal(err)
	}
	syscall.Kill(pid, syscall.SIGKILL)
	pgtest.Eventually(t, 30*time.Second, "the killed server to be gone", func() bool {
		return syscall.Kill(pid, 0) != nil
	})
	c.Running()
}

// missing lists the ids of acked that c's table t lacks.
func missing(t testing.TB, c *pgtest.Cluster, acked []int) []int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, c.ConnString())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, "SELECT a FROM unnest($1::int[]) a WHERE NOT EXISTS (SELECT 1 FROM t WHERE id = a) ORDER BY a", acked)
	if err != nil {
		t.Fatal(err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int])
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

// restoreLatest restores the newest base backup of store to the end of the
// archive into base/name, on port (the primary's, so that the receiver's
// connection string finds it), keeping archive_mode, with extra flags,
// and starts it: the new primary.
func restoreLatest(t testing.TB, store archiveBackend, base, name string, port int, extra ...string) *pgtest.Cluster {
	t.Helper()
	c := pgtest.Attach(t, base, name)
	c.Port, c.Env = port, store.env()
	args := append(append([]string{"backup", "restore"}, store.flags()...),
		append([]string{"-D", c.Data, "--target-latest", "--keep-archive-mode", "--no-sync"}, extra...)...)
	cmd := pgtest.Command(t, pgtest.Bin(t, "walship"), args...)
	cmd.Env = append(cmd.Env, store.env()...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("walship backup restore: %v\n%s", err, out)
	}
	c.Conf()
	c.Start()
	c.WaitQuery("SELECT pg_is_in_recovery()", "f", 2*time.Minute)
	return c
}

// waitSync waits until c has walship as its synchronous standby.
func waitSync(t testing.TB, c *pgtest.Cluster) {
	t.Helper()
	c.WaitQuery("SELECT sync_state FROM pg_stat_replication WHERE application_name = 'walship'", "sync", 2*time.Minute)
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

// scanOnce scans the repository and fails the test for a name stored
// more than once (the receiver and archive_command never store two
// contents under one name); it returns the catalog.
func scanOnce(t testing.TB, store archiveBackend) *catalog.Catalog {
	t.Helper()
	ctx, cancel := ioContext()
	defer cancel()
	c, err := catalog.Scan(ctx, store.repo(t))
	if err != nil {
		t.Fatal(err)
	}
	if d := c.Duplicates(); len(d) > 0 {
		t.Errorf("names stored more than once: %v", d)
	}
	return c
}

// wantNoGaps scans the repository once (scanOnce) and fails the test for
// a segment missing on any timeline.
func wantNoGaps(t testing.TB, store archiveBackend) {
	t.Helper()
	c := scanOnce(t, store)
	if gaps, _ := catalog.Gaps(c, catalog.TimelineInfos(c)); len(gaps) > 0 {
		t.Errorf("segments missing: %v", gaps)
	}
}

// restoreInPlace stands for the lost primary p: its data directory
// removed, the newest backup restored to the latest in base/p2 on its port
// (restoreLatest, with extra flags); it fails the test for an acknowledged
// commit the restored server lacks.
func restoreInPlace(t testing.TB, store archiveBackend, base string, p *pgtest.Cluster, acked []int, extra ...string) {
	t.Helper()
	if err := os.RemoveAll(p.Data); err != nil {
		t.Fatal(err)
	}
	p2 := restoreLatest(t, store, base, "p2", p.Port, extra...)
	wantAcked(t, p2, acked, "after the restore")
}

// stopOK stops the receiver with SIGTERM; it fails the test unless the
// receiver exits 0.
func (p *receiverProc) stopOK() {
	p.t.Helper()
	if code := p.stop(); code != 0 {
		p.t.Errorf("walship receive exited %d after SIGTERM, want 0", code)
	}
}

// wantAcked fails the test for the acknowledged commits c lacks (where
// says which copy c is).
func wantAcked(t testing.TB, c *pgtest.Cluster, acked []int, where string) {
	t.Helper()
	if m := missing(t, c, acked); len(m) > 0 {
		t.Errorf("%d of %d acknowledged commits missing %s: %v", len(m), len(acked), where, m[:min(len(m), 10)])
	}
}
