package test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/walship/walship/internal/testenv/pgtest"
	"github.com/walship/walship/repo"
	"github.com/walship/walship/wal"
)

// TestVersions is the version matrix: one life of a cluster, on every
// server of pgtest.Servers (make test-versions lists every major from 13
// to 18 in WALSHIP_PG_VERSIONS; without it, the default installation
// alone), each major in a subtest of its own (pg13, ..., pg18), side by
// side. On a local repository:
//
//   - archive under load: a primary archives through walship-archive
//     under pgbench without a single failure; every segment it archived is
//     there, and walship.json records the major its page-header magic
//     names;
//   - base backups: pg_basebackup where the default installation's
//     pg_basebackup serves the server, else the low-level SQL and a copy,
//     and always one low-level backup; each leaves its backup history file
//     (.backup) in the archive, with its label and start;
//   - walship backup create (the replication protocol, on every major;
//     and on 17 and later an incremental backup on it), restored with
//     walship backup restore --start to a restore point;
//   - PITR to a restore point, with walship-restore;
//   - an archive-only warm standby under recovery.signal, promoted by a
//     trigger file after applying every archived segment, and one under
//     standby.signal, promoted with pg_ctl promote while walship-restore
//     waits;
//   - a timeline switch: the promoted standby archives timeline 2 (its
//     history file, byte for byte) into the same repository, and a copy
//     of an older backup recovers across the switch to its data;
//   - walship verify --full reads every object back: nothing missing or
//     damaged, every backup restorable, both timelines.
func TestVersions(t *testing.T) {
	for _, srv := range pgtest.Servers(t) {
		t.Run(srv.Name(), func(t *testing.T) {
			t.Parallel()
			versionLife(t, srv)
		})
		t.Run(srv.Name()+"/tablespace", func(t *testing.T) {
			t.Parallel()
			backupWithTablespace(t, srv)
		})
	}
}

// backupWithTablespace: walship backup create of a server with a
// tablespace (before 15 the server sends each tablespace as a stream of
// its own, from 15 on one stream with an archive each), and backup restore
// with the tablespace moved (-T) to the end of the archive: the copy
// starts with every row, the tablespace where it was asked.
func backupWithTablespace(t *testing.T, srv pgtest.Server) {
	pgtest.Require(t)
	base := pgtest.Dir(t)
	store := localBackend{dir: filepath.Join(base, "repo")}
	p := pgtest.NewCluster(t, base, "primary", pgtest.InitOptions{Server: &srv})
	p.Conf("archive_mode = on", commandLine(t, store, "walship-archive"), "archive_timeout = 0")
	p.Start()
	ts := tablespaceDir(t, base, "ts")
	p.Query("CREATE TABLESPACE extra LOCATION '" + ts + "'")
	p.Query("CREATE TABLE moves (id int) TABLESPACE extra")
	p.Query("INSERT INTO moves SELECT generate_series(1, 1000)")
	id, summary := backupCreate(t, store, p)
	if !strings.Contains(summary, "2 tar(s)") {
		t.Errorf("summary %q: want 2 tars (base and the tablespace)", summary)
	}
	p.Query("INSERT INTO moves SELECT generate_series(1001, 1500)")
	switchAndArchive(t, p)
	moved := filepath.Join(base, "ts-moved")
	c, r := backupRestore(t, store, base, "copy", "-T", ts+"="+moved, "--target-latest", "--start", "--pg-bin", srv.Bin)
	c.Server = srv
	if r.code != 0 || !strings.Contains(r.stdout, "restored backup "+id) {
		t.Fatalf("walship backup restore: %s", r)
	}
	if got := c.Query("SELECT count(*) || '/' || sum(id) FROM moves"); got != "1500/1125750" {
		t.Errorf("the copy's table in the tablespace: %s, want 1500/1125750", got)
	}
	if got := c.Query("SELECT pg_tablespace_location(oid) FROM pg_tablespace WHERE spcname = 'extra'"); got != moved {
		t.Errorf("tablespace of the copy in %s, want %s", got, moved)
	}
	c.Stop("fast")
}

func versionLife(t *testing.T, srv pgtest.Server) {
	pgtest.Require(t)
	base := pgtest.Dir(t)
	store := localBackend{dir: filepath.Join(base, "repo")}
	t.Logf("%s", srv)

	p := pgtest.NewCluster(t, base, "primary", pgtest.InitOptions{Server: &srv})
	p.Conf("archive_mode = on", commandLine(t, store, "walship-archive"), "archive_timeout = 0")
	if srv.Major >= 17 {
		p.Conf("summarize_wal = on")
	}
	p.Start()
	if v := p.Query("SHOW server_version_num"); !strings.HasPrefix(v, strconv.Itoa(srv.Major)) {
		t.Fatalf("the primary runs server_version_num %s, want PostgreSQL %d", v, srv.Major)
	}
	p.Pgbench("-i", "-s", "3", "-q")

	// Four base backups before the load: for PITR, for the two warm
	// standbys, and one to recover across the timeline switch later (a
	// low-level one on every major).
	pitr := p.BaseBackup(base, "pitr")
	trig := p.BaseBackup(base, "trigger")
	prom := p.BaseBackup(base, "promote")
	late := p.LowLevelBackup(base, "late", "walship test late")
	// And walship's own, over the replication protocol, on every major.
	wsFull, _ := backupCreate(t, store, p, "--label", "walship test create")

	// The warm standbys start before the load and follow it from the archive.
	warm := func(c *pgtest.Cluster, signal string, flags ...string) {
		c.Conf(commandLine(t, store, "walship-restore", append([]string{"--standby"}, flags...)...),
			"hot_standby = on", "recovery_target_timeline = 'latest'")
		if srv.Major >= 15 {
			c.Conf("recovery_prefetch = off")
		}
		c.Touch(signal)
		c.Start()
	}
	trigger := filepath.Join(base, "promote.trigger")
	trig.Conf("archive_mode = off")
	warm(trig, "recovery.signal", "--trigger", trigger)
	// Archives its own timeline once promoted, into the same repository.
	prom.Conf("archive_mode = on", commandLine(t, store, "walship-archive"), "archive_timeout = 0")
	warm(prom, "standby.signal")

	// Archive under load, then a restore point and damage after it.
	p.Pgbench("-c", "4", "-j", "2", "-t", "1000", "-n")
	// On 17 and later, an incremental backup on walship's full one.
	wsNewest, walshipBackups := wsFull, 1
	if srv.Major >= 17 {
		var summary string
		wsNewest, summary = backupCreate(t, store, p, "--incremental")
		if !strings.Contains(summary, "incremental on "+wsFull) {
			t.Errorf("walship backup create --incremental: %s, want an incremental backup on %s", summary, wsFull)
		}
		walshipBackups++
	}
	p.Query("CREATE TABLE marker AS SELECT count(*) AS n, sum(abalance) AS s FROM pgbench_accounts")
	want := p.Query("SELECT n || ':' || s FROM marker")
	p.Query("SELECT pg_create_restore_point('before_damage')")
	p.Query("UPDATE pgbench_accounts SET abalance = abalance + 1000000")
	p.Query("DROP TABLE pgbench_history")
	p.Query("CREATE TABLE shipped AS SELECT g AS n FROM generate_series(1, 1000) g")
	last := p.Query("SELECT pg_walfile_name(pg_current_wal_lsn())")
	switchAndArchive(t, p)

	t.Run("archive under load", func(t *testing.T) {
		if failed := pgStat(p, "failed_count"); failed != 0 {
			t.Errorf("pg_stat_archiver.failed_count = %d, want 0\n%s", failed, p.Log())
		}
		segs := segmentSet(t, store)
		first := p.Query("SELECT pg_walfile_name('0/1000001'::pg_lsn)")
		n := 0
		for s := mustName(t, first); s.String() <= last; s = s.Next(segSize) {
			n++
			if !segs[s.String()] {
				t.Errorf("segment %s was archived by the server but is not in the repository", s)
			}
		}
		if n < 8 {
			t.Errorf("the load wrote %d segments, want at least 8: not much of a load", n)
		}
		id, _ := readIdentity(t, store)
		if id.PGVersion != strconv.Itoa(srv.Major) || id.SystemID != sysID(t, p) || id.SegSize != segSize {
			t.Errorf("walship.json: PostgreSQL %q, system %d, segments %d; want %d, %d, %d (the page header's magic names the major)",
				id.PGVersion, id.SystemID, id.SegSize, srv.Major, sysID(t, p), segSize)
		}
		st := walship(t, runOpts{}, "walship", "status", "--repo", store.dir, "--json")
		var status struct {
			PGVersion string `json:"pg_version"`
		}
		if err := json.Unmarshal([]byte(st.stdout), &status); err != nil || st.code != 0 || status.PGVersion != strconv.Itoa(srv.Major) {
			t.Errorf("walship status --json: %s; want pg_version %d", st, srv.Major)
		}
	})

	t.Run("backup history files", func(t *testing.T) {
		labels := map[string]wal.BackupInfo{}
		for _, f := range storedNames(t, store, wal.KindBackup) {
			data, err := readWAL(t, store, f)
			if err != nil {
				t.Fatalf("reading %s: %v", f, err)
			}
			info, err := wal.ParseBackup(bytes.NewReader(data))
			if err != nil {
				t.Fatalf("%s: %v\n%s", f, err, data)
			}
			if got := info.Start.Segment(info.StartTimeline, segSize); got != f.SegmentName() {
				t.Errorf("%s starts at %s, in segment %s, not its own", f, info.Start, got)
			}
			if !bytes.Equal(restoreFrom(t, store, f.String()), data) {
				t.Errorf("walship-restore %s differs from the stored file", f)
			}
			labels[info.Label] = info
		}
		for _, name := range []string{"pitr", "trigger", "promote", "late"} {
			if _, ok := labels["walship test "+name]; !ok {
				t.Errorf("no backup history file of the base backup %s in the repository (labels %v)", name, keys(labels))
			}
		}
	})

	t.Run("PITR to a restore point", func(t *testing.T) {
		restoreToPoint(t, pitr, commandLine(t, store, "walship-restore"), want, 180*time.Second)
	})

	t.Run("walship backup restore to a restore point", func(t *testing.T) {
		c, r := backupRestore(t, store, base, "ws-pitr", "--target-name", "before_damage", "--start", "--pg-bin", srv.Bin)
		c.Server = srv
		if r.code != 0 || !strings.Contains(r.stdout, "restored backup "+wsNewest) || !strings.Contains(r.stdout, "was promoted") {
			t.Fatalf("walship backup restore of %s: %s", wsNewest, r)
		}
		if got := c.Query("SELECT n || ':' || s FROM marker"); got != want {
			t.Errorf("restored to the restore point: %s, want %s", got, want)
		}
		c.Stop("fast")
	})

	// Both standbys reach the primary's last archived segment.
	shipped := p.Query("SELECT count(*) FROM shipped")
	for _, s := range []*pgtest.Cluster{trig, prom} {
		s.WaitQuery("SELECT count(*) FROM shipped", shipped, 120*time.Second)
		waitForWaiter(t, s)
		if n := s.Int("SELECT count(*) FROM pg_stat_wal_receiver"); n != 0 {
			t.Errorf("%s has %d WAL receivers: it streams instead of reading the archive", s.Name, n)
		}
	}
	// The primary writes one more segment, then stops.
	p.Query("INSERT INTO shipped SELECT generate_series(1, 500)")
	switchAndArchive(t, p)
	final := p.Query("SELECT count(*) FROM shipped")
	p.Stop("fast")

	t.Run("warm standby promoted by pg_ctl promote (standby.signal)", func(t *testing.T) {
		prom.WaitQuery("SELECT count(*) FROM shipped", final, 120*time.Second)
		waitForWaiter(t, prom)
		prom.Promote()
		if got := prom.Query("SELECT pg_is_in_recovery()"); got != "f" {
			t.Fatalf("still in recovery after pg_ctl promote")
		}
		if got := prom.Query("SELECT count(*) FROM shipped"); got != final {
			t.Errorf("promoted with %s rows of shipped, want %s", got, final)
		}
		waitNoWaiter(t, prom, "promotion")
	})

	t.Run("warm standby ended by a trigger file (recovery.signal)", func(t *testing.T) {
		writeTrigger(t, trigger, "")
		trig.WaitQuery("SELECT pg_is_in_recovery()", "f", 120*time.Second)
		if got := trig.Query("SELECT count(*) FROM shipped"); got != final {
			t.Errorf("promoted with %s rows of shipped, want %s (every segment the primary archived)", got, final)
		}
		waitNoWaiter(t, trig, "the trigger")
	})

	t.Run("timeline switch", func(t *testing.T) {
		if t.Failed() || prom.Query("SELECT pg_is_in_recovery()") != "f" {
			t.Skip("the standby was not promoted")
		}
		prom.Query("CHECKPOINT")
		tli := prom.Query("SELECT timeline_id FROM pg_control_checkpoint()")
		if tli != "2" {
			t.Fatalf("the promoted standby is on timeline %s, want 2", tli)
		}
		prom.Query("CREATE TABLE on_tl2 AS SELECT g AS n FROM generate_series(1, 300) g")
		switchAndArchive(t, prom)
		if failed := pgStat(prom, "failed_count"); failed != 0 {
			t.Errorf("the promoted standby's pg_stat_archiver.failed_count = %d, want 0\n%s", failed, prom.Log())
		}
		hist, err := os.ReadFile(filepath.Join(prom.Data, "pg_wal", "00000002.history"))
		if err != nil {
			t.Fatal(err)
		}
		if got := restoreFrom(t, store, "00000002.history"); !bytes.Equal(got, hist) {
			t.Errorf("walship-restore 00000002.history = %q, want the server's %q", got, hist)
		}
		if h, err := wal.ParseHistory(2, bytes.NewReader(hist)); err != nil || !h.Contains(1) {
			t.Errorf("00000002.history %q: %v, want timeline 1 in it", hist, err)
		}
		segs := segmentSet(t, store)
		tl2 := 0
		for s := range segs {
			if strings.HasPrefix(s, "00000002") {
				tl2++
			}
		}
		if tl2 == 0 {
			t.Errorf("no segment of timeline 2 in the repository")
		}

		// A backup from timeline 1 recovers across the switch (the
		// default recovery_target_timeline is latest) to timeline 2's data.
		late.Conf(commandLine(t, store, "walship-restore"), "archive_mode = off")
		late.Touch("recovery.signal")
		late.Start()
		late.WaitQuery("SELECT pg_is_in_recovery()", "f", 180*time.Second)
		if got := late.Query("SELECT count(*) FROM on_tl2"); got != "300" {
			t.Errorf("recovered across the switch with %s rows of on_tl2, want 300", got)
		}
		if got := late.Query("SELECT count(*) FROM shipped"); got != final {
			t.Errorf("recovered with %s rows of shipped, want %s", got, final)
		}
		if log := late.Log(); !strings.Contains(log, `restored log file "00000002.history" from archive`) {
			t.Errorf("the recovery did not restore 00000002.history from the archive; log:\n%s", log)
		}
	})

	t.Run("verify --full", func(t *testing.T) {
		r := walship(t, runOpts{}, "walship", "verify", "--repo", store.dir, "--full")
		if r.code != 0 || !strings.Contains(r.stdout, "ok: no problems found") {
			t.Errorf("walship verify --full: %s", r)
		}
		for _, w := range []string{"timeline 1:", "timeline 2:", "branched off timeline 1"} {
			if !strings.Contains(r.stdout, w) {
				t.Errorf("walship verify --full does not report %q:\n%s", w, r.stdout)
			}
		}
		if n := strings.Count(r.stdout, ": restorable ("); n != 4+walshipBackups {
			t.Errorf("walship verify --full finds %d restorable backups, want %d:\n%s", n, 4+walshipBackups, r.stdout)
		}
	})
}

// storedNames lists the files of one kind in the archive, in order.
func storedNames(t testing.TB, store archiveBackend, kind wal.Kind) []wal.Name {
	t.Helper()
	ctx, cancel := ioContext()
	defer cancel()
	var out []wal.Name
	err := store.repo(t).List(ctx, func(e repo.Entry) error {
		if e.Name.Kind == kind {
			out = append(out, e.Name)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("listing %s: %v", store, err)
	}
	return out
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, fmt.Sprintf("%q", k))
	}
	return out
}
