package test

import (
	"bytes"
	"context"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/walship/walship/catalog"
	"github.com/walship/walship/internal/testenv/archsim"
	"github.com/walship/walship/internal/testenv/pgtest"
	"github.com/walship/walship/wal"
	"github.com/walship/walship/wal/waltest"
)

// fakeDataDir makes a data directory with count segments in pg_wal, each
// marked ready, as the archiver would find them.
func fakeDataDir(t *testing.T, count int, segSize uint32) string {
	t.Helper()
	data := t.TempDir()
	walDir := filepath.Join(data, "pg_wal")
	os.MkdirAll(filepath.Join(walDir, "archive_status"), 0o700)
	n := wal.SegmentFromNo(1, 1, segSize)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < count; i++ {
		seg := waltest.FakeSegment(n, 7000000000000000001, segSize, func(b []byte) {
			// Compressible but not trivial, like WAL.
			for j := 0; j < len(b); j += 64 {
				b[j] = byte(rng.IntN(256))
			}
		})
		os.WriteFile(filepath.Join(walDir, n.String()), seg, 0o600)
		os.WriteFile(filepath.Join(walDir, "archive_status", n.String()+".ready"), nil, 0o600)
		n = n.Next(segSize)
	}
	return data
}

// checkDoneAreArchived asserts that every file the simulated server marked
// .done is in the repository with exactly the content in pg_wal, and that
// no visible object is partial.
func checkDoneAreArchived(t *testing.T, dataDir string, store archiveBackend) int {
	t.Helper()
	r := store.repo(t)
	statusDir := filepath.Join(dataDir, "pg_wal", "archive_status")
	entries, _ := os.ReadDir(statusDir)
	done := 0
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), ".done")
		if !ok {
			continue
		}
		done++
		n, _ := wal.ParseName(name)
		o, err := r.Open(context.Background(), n)
		if err != nil {
			t.Fatalf("%s is .done but not restorable from the archive: %v", name, err)
		}
		var got bytes.Buffer
		_, err = got.ReadFrom(o)
		o.Close()
		want, _ := os.ReadFile(filepath.Join(dataDir, "pg_wal", name))
		if err != nil || !bytes.Equal(got.Bytes(), want) {
			t.Fatalf("%s is .done but the archived copy differs (read err %v)", name, err)
		}
	}
	return done
}

// workers lists the look-ahead workers running (detached walship-archive
// processes).
func workers() []int {
	var pids []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		env, err := os.ReadFile("/proc/" + e.Name() + "/environ")
		if err == nil && bytes.Contains(env, []byte("WALSHIP_ARCHIVE_WORKER=")) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// waitForWorkers waits, up to 15 seconds, until no look-ahead worker runs
// (each stops two seconds after it last found nothing to push), so that
// none writes into a spool being removed.
func waitForWorkers() {
	for deadline := time.Now().Add(15 * time.Second); len(workers()) > 0 && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
	}
}

// TestParallelArchiveSurvivesKillsMidBatch drives walship-archive
// --parallel 8 like the server's archiver, on every backend, and kills it
// at random moments, many times, and its detached look-ahead worker too
// now and then: whatever the server was told was archived (.done) is in
// the archive, byte-identical, no name is stored twice, and the run
// completes afterwards.
func TestParallelArchiveSurvivesKillsMidBatch(t *testing.T) {
	forEachBackend(t, func(t *testing.T, base string, store archiveBackend) {
		bin := pgtest.Bin(t, "walship-archive")
		const segSize = 1 << 20
		data := fakeDataDir(t, 60, segSize)
		spool := filepath.Join(t.TempDir(), "spool")
		t.Cleanup(waitForWorkers) // before the spool goes
		argv := archsim.Argv(append(append([]string{bin}, store.flags()...), "--parallel", "8", "--spool", spool, "%p", "%f")...)
		cmd := func(ctx context.Context, dataDir, p, f string) *exec.Cmd {
			c := argv(ctx, dataDir, p, f)
			c.Env = append(os.Environ(), store.env()...)
			return c
		}
		rng := rand.New(rand.NewPCG(3, 4))
		kills, workerKills := 0, 0
		for round := 0; round < 40; round++ {
			ctx, cancel := context.WithTimeout(context.Background(), time.Duration(rng.IntN(150))*time.Millisecond)
			_, err := archsim.Run(ctx, data, cmd)
			cancel()
			if err != nil {
				kills++
			}
			if rng.IntN(2) == 0 || workerKills == 0 {
				for _, pid := range workers() {
					syscall.Kill(pid, syscall.SIGKILL)
					workerKills++
				}
			}
			checkDoneAreArchived(t, data, store)
			if err == nil {
				break
			}
		}
		if _, err := archsim.Run(context.Background(), data, cmd); err != nil {
			t.Fatalf("archiving after the kills: %v", err)
		}
		if done := checkDoneAreArchived(t, data, store); done != 60 {
			t.Fatalf("%d segments archived, want 60", done)
		}
		ctx, cancel := ioContext()
		defer cancel()
		c, err := catalog.Scan(ctx, store.repo(t))
		if err != nil {
			t.Fatal(err)
		}
		if dups := c.Duplicates(); len(dups) > 0 {
			t.Errorf("%d names stored more than once", len(dups))
		}
		if kills == 0 {
			t.Fatalf("no run was interrupted: the test did not test kills")
		}
		if workerKills == 0 {
			t.Fatalf("no look-ahead worker was killed: the test did not test worker crashes")
		}
		t.Logf("%d runs killed mid-batch, %d workers killed; all 60 segments archived and identical", kills, workerKills)
	})
}

// TestParallelArchiveRealPrimary runs a primary under pgbench with
// --parallel 4, on every backend: nothing fails, every segment is
// archived, most of them by look-ahead workers, answered from their
// records.
func TestParallelArchiveRealPrimary(t *testing.T) {
	forEachBackend(t, func(t *testing.T, base string, store archiveBackend) {
		spool := pgtest.Mkdir(t, filepath.Join(base, "spool"))
		t.Cleanup(waitForWorkers) // before the spool goes
		p := pgtest.NewCluster(t, base, "primary", pgtest.InitOptions{SegSizeMB: 1})
		p.Env = store.env()
		p.Conf("archive_mode = on", commandLine(t, store, "walship-archive", "--parallel", "4", "--spool", spool, "-v"))
		p.Start()
		// With 1MB segments initdb fills several before archiving is on;
		// those are never archived.
		first, _ := wal.ParseName(p.Query("SELECT pg_walfile_name(pg_current_wal_lsn())"))
		p.Pgbench("-i", "-s", "3", "-q")
		p.Pgbench("-c", "2", "-t", "500", "-n")
		last := p.Query("SELECT pg_walfile_name(pg_current_wal_lsn())")
		p.Query("SELECT pg_switch_wal()")
		p.WaitQuery("SELECT last_archived_wal >= '"+last+"' FROM pg_stat_archiver", "t", 120*time.Second)
		if failed := p.Int("SELECT failed_count FROM pg_stat_archiver"); failed != 0 {
			t.Fatalf("failed_count = %d, want 0", failed)
		}
		segs := segmentSet(t, store)
		for n := first; n.String() <= last; n = n.Next(1 << 20) {
			if !segs[n.String()] {
				t.Errorf("segment %s is not in the repository", n)
			}
		}
		if len(segs) < 20 {
			t.Errorf("only %d segments archived: the test made too little WAL to exercise look-ahead", len(segs))
		}
		ahead := strings.Count(p.Log(), "already archived by a look-ahead push")
		if ahead < len(segs)/3 {
			t.Errorf("only %d of %d segments answered from look-ahead records on %s", ahead, len(segs), store)
		}
	})
}
