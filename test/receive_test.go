package test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/walship/walship/internal/testenv/pgtest"
)

// walship receive, end to end, on every backend.

// receiveKills is how many times TestReceiveSynchronousKills kills the
// primary: WALSHIP_RECEIVE_KILLS, by default 20 on a local repository and
// 5 on S3 (where each round takes twice as long; the S3 benchmark,
// scripts/bench-receive.sh, runs the 20).
func receiveKills(t *testing.T, store archiveBackend) int {
	if v := os.Getenv("WALSHIP_RECEIVE_KILLS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("WALSHIP_RECEIVE_KILLS=%q: want a positive number", v)
		}
		return n
	}
	if _, local := store.(localBackend); local {
		return 20
	}
	return 5
}

// RPO 0: a client commits rows one by one while walship receive is the
// synchronous standby; the primary is killed with SIGKILL at a random
// moment and its data directory deleted; the newest base backup restored to
// the latest (walship backup restore, walship-restore handing the server
// the streamed tail) holds every row whose commit returned. The restored
// server is the next primary (a new timeline, archiving into the same
// repository), which the same receiver follows, and so on: every kill a
// timeline switch, and the receiver and archive_command storing the same
// segments side by side. At the end: no name stored twice, no archive
// failure, and nothing lost.
func TestReceiveSynchronousKills(t *testing.T) {
	forEachBackend(t, func(t *testing.T, base string, store archiveBackend) {
		kills := receiveKills(t, store)
		seed := time.Now().UnixNano()
		t.Logf("seed %d", seed)
		rng := rand.New(rand.NewPCG(uint64(seed), 26))
		p := syncPrimary(t, store, base, "p0", pgtest.InitOptions{})
		backupCreate(t, store, p)
		makeSync(t, p, "walship")
		rcv := startReceiver(t, store, base, p, "--synchronous")
		waitSync(t, p)
		var acked []int
		next, lost := 1, map[int]bool{}
		for i := range kills {
			ctx, cancel := context.WithCancel(context.Background())
			w := startWriter(ctx, t, p, next, rng.Int64())
			k := 10 + rng.IntN(150)
			pgtest.Eventually(t, 2*time.Minute, fmt.Sprintf("%d commits (kill %d)", k, i+1), func() bool { return w.count() >= k })
			time.Sleep(time.Duration(rng.IntN(5000)) * time.Microsecond) // a moment within a commit
			killServer(t, p)
			got := w.wait()
			cancel()
			acked = append(acked, got...)
			next = w.next + 1
			if err := os.RemoveAll(p.Data); err != nil {
				t.Fatal(err)
			}
			p = restoreLatest(t, store, base, fmt.Sprintf("p%d", i+1), p.Port)
			makeSync(t, p, "walship")
			if m := missing(t, p, acked); len(m) > 0 {
				for _, id := range m {
					lost[id] = true
				}
				t.Errorf("kill %d: %d acknowledged commit(s) missing: %v", i+1, len(m), m[:min(len(m), 10)])
			}
			waitSync(t, p)
		}
		t.Logf("RPO %s: %s, %s acknowledged, %d lost", t.Name(), plural(kills, "kill"), plural(len(acked), "commit"), len(lost))

		// One content per name: the receiver and archive_command stored
		// the same segments; neither found other content.
		p.Query("SELECT pg_switch_wal()")
		p.Query("CHECKPOINT")
		pgtest.Eventually(t, time.Minute, "the last segment archived", func() bool {
			return p.Int("SELECT count(*) FROM pg_ls_archive_statusdir() WHERE name LIKE '%.ready'") == 0
		})
		rcv.stopOK()
		if n := pgStat(p, "failed_count"); n != 0 {
			t.Errorf("archive_command failed %d times on the last primary", n)
		}
		scanOnce(t, store)
		r := walship(t, runOpts{env: store.env()}, "walship", append([]string{"verify"}, store.flags()...)...)
		if r.code != 0 {
			t.Errorf("walship verify: %s", r)
		}
	})
}
