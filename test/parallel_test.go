package test

import (
	"bytes"
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

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
func checkDoneAreArchived(t *testing.T, dataDir, repoDir string) int {
	t.Helper()
	r := localBackend{repoDir}.repo(t)
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

// TestParallelArchiveSurvivesKillsMidBatch drives walship-archive
// --parallel 8 like the server's archiver and kills it at random moments,
// many times: whatever the server was told was archived (.done) is in the
// archive, byte-identical, and the run completes afterwards.
func TestParallelArchiveSurvivesKillsMidBatch(t *testing.T) {
	bin := pgtest.Bin(t, "walship-archive")
	const segSize = 1 << 20
	data := fakeDataDir(t, 60, segSize)
	repoDir := filepath.Join(t.TempDir(), "repo")
	spool := filepath.Join(t.TempDir(), "spool")
	cmd := archsim.Argv(bin, "--repo", repoDir, "--parallel", "8", "--spool", spool, "%p", "%f")

	rng := rand.New(rand.NewPCG(3, 4))
	kills := 0
	for round := 0; round < 40; round++ {
		ctx, cancel := context.WithTimeout(context.Background(), time.Duration(rng.IntN(60))*time.Millisecond)
		_, err := archsim.Run(ctx, data, cmd)
		cancel()
		if err != nil {
			kills++
		}
		checkDoneAreArchived(t, data, repoDir)
		if err == nil {
			break
		}
	}
	if _, err := archsim.Run(context.Background(), data, cmd); err != nil {
		t.Fatalf("archiving after the kills: %v", err)
	}
	if done := checkDoneAreArchived(t, data, repoDir); done != 60 {
		t.Fatalf("%d segments archived, want 60", done)
	}
	if kills == 0 {
		t.Fatalf("no run was interrupted: the test did not test kills")
	}
	t.Logf("%d runs killed mid-batch; all 60 segments archived and identical", kills)
}

// TestParallelArchiveRealPrimary runs a primary under pgbench with
// --parallel 4: nothing fails, every segment is archived.
func TestParallelArchiveRealPrimary(t *testing.T) {
	pgtest.Require(t)
	base := pgtest.Dir(t)
	repoDir := filepath.Join(base, "repo")
	spool := pgtest.Mkdir(t, filepath.Join(base, "spool"))
	p := pgtest.NewCluster(t, base, "primary", pgtest.InitOptions{SegSizeMB: 1})
	p.Conf("archive_mode = on", pgtest.ArchiveCommand(t, repoDir, "--parallel", "4", "--spool", spool))
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
	segs := segmentSet(t, localBackend{repoDir})
	for n := first; n.String() <= last; n = n.Next(1 << 20) {
		if !segs[n.String()] {
			t.Errorf("segment %s is not in the repository", n)
		}
	}
	if len(segs) < 20 {
		t.Errorf("only %d segments archived: the test made too little WAL to exercise look-ahead", len(segs))
	}
}
