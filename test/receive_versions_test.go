package test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/walship/walship/internal/testenv/pgtest"
	"github.com/walship/walship/wal"
)

// TestReceiveVersions is walship receive's protocol on every server of the
// version matrix (make test-versions; without WALSHIP_PG_VERSIONS the
// default installation alone), each major in a subtest of its own, side by
// side, on a local repository:
//
//   - START_REPLICATION through a slot it creates, as the synchronous
//     standby: rows committed one by one, the primary killed with SIGKILL,
//     a copy from an older base backup recovered with walship-restore to
//     the latest holds every acknowledged row (the streamed tail);
//   - TIMELINE_HISTORY and a timeline switch: the copy, promoted, is
//     streamed from next; its history file is stored byte for byte as the
//     server has it, and its WAL on timeline 2.
func TestReceiveVersions(t *testing.T) {
	for _, srv := range pgtest.Servers(t) {
		t.Run(srv.Name(), func(t *testing.T) {
			t.Parallel()
			receiveVersion(t, srv)
		})
	}
}

func receiveVersion(t *testing.T, srv pgtest.Server) {
	pgtest.Require(t)
	base := pgtest.Dir(t)
	store := localBackend{dir: filepath.Join(base, "repo")}
	p := syncPrimary(t, store, base, "primary", pgtest.InitOptions{Server: &srv})
	p.Query("SELECT pg_switch_wal()")
	cp := p.BaseBackup(base, "copy")
	makeSync(t, p, "walship")
	rcv := startReceiver(t, store, base, p, "--synchronous")
	waitSync(t, p)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w := startWriter(ctx, t, p, 1, int64(srv.Major))
	pgtest.Eventually(t, time.Minute, "commits", func() bool { return w.count() >= 60 })
	killServer(t, p)
	acked := w.wait()
	rcv.stopOK()

	cp.Conf(commandLine(t, store, "walship-restore"), "recovery_target_timeline = 'latest'", "archive_mode = off",
		"synchronous_standby_names = ''")
	cp.Touch("recovery.signal")
	cp.Env = store.env()
	cp.Start()
	cp.WaitQuery("SELECT pg_is_in_recovery()", "f", 2*time.Minute)
	if m := missing(t, cp, acked); len(m) > 0 {
		t.Fatalf("%s: %d of %d acknowledged commits missing after recovery: %v", srv, len(m), len(acked), m[:min(len(m), 10)])
	}

	// Timeline 2: the history file, then the WAL.
	rcv = startReceiver(t, store, base, cp, "--flush-interval", "50ms")
	cp.Query("INSERT INTO t SELECT g, 'two' FROM generate_series(100001, 100100) g")
	history := wal.Name{Kind: wal.KindHistory, Timeline: 2}
	pgtest.Eventually(t, time.Minute, "WAL of timeline 2 in the repository", func() bool {
		ctx, cancel := ioContext()
		defer cancel()
		r := store.repo(t)
		ps, err := r.ListPieces(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range ps {
			if p.Seg.Timeline == 2 {
				return true
			}
		}
		return false
	})
	rcv.stopOK()
	got, err := readWAL(t, store, history)
	if err != nil {
		t.Fatalf("%s: %v", history, err)
	}
	if want := cp.Query("SELECT pg_read_file('pg_wal/00000002.history')"); string(got) != want+"\n" && string(got) != want {
		t.Errorf("%s stored as %q, the server has %q", history, got, want)
	}
}
