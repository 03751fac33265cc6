package test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/walship/walship/internal/testenv/pgtest"
)

// BenchmarkStandbyApplyLag measures the apply lag of an archive-only
// standby: the time from pg_switch_wal() on the primary until the standby
// has replayed that LSN, over WALSHIP_BENCH_SWITCHES switches (default 50).
// Two standbys of one primary (walship-archive into a local repository)
// are measured side by side: walship-restore --standby, which waits for the
// segment, and the plain walship-restore, which answers "not found" and
// leaves the retry to PostgreSQL (wal_retrieve_retry_interval = 5s).
// Switches come at random moments so that the retry cycle is not in step
// with them. It prints a markdown table (also written to the file named by
// WALSHIP_BENCH_TABLE); scripts/bench-standby.sh runs it.
//
//	go test -run '^$' -bench StandbyApplyLag -benchtime 1x -timeout 30m ./test/
func BenchmarkStandbyApplyLag(b *testing.B) {
	pgtest.Require(b)
	switches := 50
	if s := os.Getenv("WALSHIP_BENCH_SWITCHES"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			b.Fatalf("WALSHIP_BENCH_SWITCHES=%q: want a positive number", s)
		}
		switches = n
	}
	base := pgtest.Dir(b)
	repoDir := filepath.Join(base, "repo")
	p := pgtest.NewCluster(b, base, "primary", pgtest.InitOptions{})
	p.Conf("archive_mode = on", pgtest.ArchiveCommand(b, repoDir), "archive_timeout = 0")
	p.Start()
	p.Query("CREATE TABLE lag (i int, at timestamptz DEFAULT now())")

	type standby struct {
		label string
		c     *pgtest.Cluster
		conn  *pgx.Conn
		lags  []time.Duration
	}
	mk := func(label, name string, restore string, extra ...string) *standby {
		c := p.BaseBackup(base, name)
		c.Conf(append([]string{restore, "recovery_prefetch = off", "hot_standby = on", "archive_mode = off"}, extra...)...)
		c.Touch("standby.signal")
		return &standby{label: label, c: c}
	}
	standbys := []*standby{
		mk("`walship-restore --standby` (waits; local repository, file events)", "waiting",
			pgtest.RestoreCommand(b, repoDir, "--standby")),
		mk("`walship-restore`, PostgreSQL retries (wal_retrieve_retry_interval = 5s)", "retrying",
			pgtest.RestoreCommand(b, repoDir), "wal_retrieve_retry_interval = '5s'"),
	}
	ctx := context.Background()
	connect := func(c *pgtest.Cluster) *pgx.Conn {
		conn, err := pgx.Connect(ctx, c.ConnString())
		if err != nil {
			b.Fatalf("connecting to %s: %v", c.Name, err)
		}
		b.Cleanup(func() { conn.Close(context.Background()) })
		return conn
	}
	for _, s := range standbys {
		s.c.Start()
		s.conn = connect(s.c)
	}
	primary := connect(p)

	// replayed waits until s has replayed lsn and returns when it did.
	replayed := func(s *standby, lsn string) (time.Time, error) {
		deadline := time.Now().Add(2 * time.Minute)
		for {
			var done bool
			err := s.conn.QueryRow(ctx, "SELECT coalesce(pg_last_wal_replay_lsn() >= '"+lsn+"'::pg_lsn, false)").Scan(&done)
			now := time.Now()
			if err != nil {
				return now, err
			}
			if done {
				return now, nil
			}
			if now.After(deadline) {
				return now, fmt.Errorf("%s did not replay %s within 2 minutes", s.c.Name, lsn)
			}
			time.Sleep(2 * time.Millisecond)
		}
	}
	switchWAL := func(i int) (time.Time, string) {
		if _, err := primary.Exec(ctx, "INSERT INTO lag (i) VALUES ($1)", i); err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		var lsn string
		if err := primary.QueryRow(ctx, "SELECT pg_switch_wal()::text").Scan(&lsn); err != nil {
			b.Fatal(err)
		}
		return start, lsn
	}
	measure := func(i int, record bool) {
		start, lsn := switchWAL(i)
		var wg sync.WaitGroup
		errs := make([]error, len(standbys))
		for k, s := range standbys {
			wg.Add(1)
			go func() {
				defer wg.Done()
				at, err := replayed(s, lsn)
				if err == nil && record {
					s.lags = append(s.lags, at.Sub(start))
				}
				errs[k] = err
			}()
		}
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				b.Fatal(err)
			}
		}
	}

	measure(0, false) // both standbys caught up and waiting
	b.ResetTimer()
	for i := 1; i <= switches; i++ {
		time.Sleep(rand.N(5 * time.Second))
		measure(i, true)
	}
	b.StopTimer()

	var out strings.Builder
	fmt.Fprintf(&out, "Apply lag of an archive-only standby, pg_switch_wal() on the primary to pg_last_wal_replay_lsn() on the standby, %d switches, PostgreSQL %s, local repository (lz4):\n\n",
		switches, strings.TrimSpace(p.Query("SHOW server_version")))
	out.WriteString("| restore_command | p50 | p95 | max |\n|---|---:|---:|---:|\n")
	for _, s := range standbys {
		slices.Sort(s.lags)
		q := func(f float64) time.Duration { return s.lags[int(f*float64(len(s.lags)-1)+0.5)] }
		fmt.Fprintf(&out, "| %s | %s | %s | %s |\n", s.label, ms(q(0.50)), ms(q(0.95)), ms(s.lags[len(s.lags)-1]))
		b.ReportMetric(float64(q(0.50).Microseconds())/1000, s.c.Name+"-p50-ms")
		b.ReportMetric(float64(q(0.95).Microseconds())/1000, s.c.Name+"-p95-ms")
	}
	fmt.Print("\n" + out.String() + "\n")
	if f := os.Getenv("WALSHIP_BENCH_TABLE"); f != "" {
		if err := os.WriteFile(f, []byte(out.String()), 0o644); err != nil {
			b.Fatal(err)
		}
	}
}

func ms(d time.Duration) string {
	return fmt.Sprintf("%d ms", d.Round(time.Millisecond).Milliseconds())
}
