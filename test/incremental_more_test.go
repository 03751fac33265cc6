package test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/walship/walship/internal/testenv/pgtest"
)

// TestIncrementalRefused: where no incremental backup can be taken,
// --incremental is refused with one line and stores nothing, and
// --incremental-or-full takes a full backup and says why; summarize_wal =
// off is refused by both, naming the setting.
func TestIncrementalRefused(t *testing.T) {
	pgtest.Require(t)
	in := newIncremental(t, pgtest.Major(t, 17), "local", false)
	p := in.p
	create := func(flags ...string) result {
		args := append(append([]string{"backup", "create"}, in.store.flags()...), append([]string{"-d", p.ConnString(), "--checkpoint", "fast"}, flags...)...)
		return walship(t, runOpts{env: in.store.env()}, "walship", args...)
	}
	switchAndArchive(t, p)
	r := create("--incremental")
	wantOneLine(t, "--incremental with no backup stored", r, []int{1}, "walship", "no incremental backup", "holds no backup")
	if keys := backupKeys(t, in.store); len(keys) != 0 {
		t.Errorf("the refused backup stored %v", keys)
	}
	r = create("--incremental-or-full")
	if r.code != 0 || !strings.Contains(r.stderr, "taking a full backup: ") || !backupID.MatchString(r.stdout) || strings.Contains(r.stdout, "incremental") {
		t.Errorf("--incremental-or-full with no backup stored: %s, want a full backup and why", r)
	}
	wantOneLine(t, "--incremental and --incremental-or-full", create("--incremental", "--incremental-or-full"), []int{2}, "walship", "give one")

	p.Conf("summarize_wal = off")
	p.Query("SELECT pg_reload_conf()")
	p.WaitQuery("SHOW summarize_wal", "off", 10*time.Second)
	keys := backupKeys(t, in.store)
	for _, flag := range []string{"--incremental", "--incremental-or-full"} {
		wantOneLine(t, flag+" with summarize_wal off", create(flag), []int{1}, "walship", "summarize_wal = off")
	}
	if got := backupKeys(t, in.store); len(got) != len(keys) {
		t.Errorf("the refused backups stored %v, before %v", got, keys)
	}

	// Before 17 (the default installation's server).
	if def := pgtest.Default(t); def.Major < 17 {
		store := localBackend{dir: filepath.Join(in.base, "repo-old")}
		old := archivingPrimary(t, store, in.base, "old")
		args := append(append([]string{"backup", "create"}, store.flags()...), "-d", old.ConnString(), "--checkpoint", "fast", "--incremental")
		wantOneLine(t, "--incremental on PostgreSQL "+def.Version, walship(t, runOpts{}, "walship", args...), []int{1}, "walship",
			"incremental backups need 17 or later")
		// A scheduled --incremental-or-full takes a full backup there,
		// and says why.
		args[len(args)-1] = "--incremental-or-full"
		r := walship(t, runOpts{}, "walship", args...)
		if r.code != 0 || !strings.Contains(r.stderr, "taking a full backup: ") || !strings.Contains(r.stderr, "17") ||
			!backupID.MatchString(r.stdout) || strings.Contains(r.stdout, "incremental") {
			t.Errorf("--incremental-or-full on PostgreSQL %s: %s, want a full backup and why", def.Version, r)
		}
	}
}

// TestIncrementalTimeline (pg_combinebackup's 003_timeline and
// 008_promote): a copy restored from an incremental backup to an LSN
// before the end, promoted there (timeline 2) and archiving into the same
// repository, takes an incremental backup whose parent is on timeline 1;
// restored, it has every row of timeline 1 up to the switch and every row
// of timeline 2, and none that timeline 1 wrote after it.
func TestIncrementalTimeline(t *testing.T) {
	pgtest.Require(t)
	in := newIncremental(t, pgtest.Major(t, 17), "local", false)
	p := in.p
	p.Query("CREATE TABLE mytable (a int, b text)")
	p.Query("INSERT INTO mytable VALUES (1, 'aardvark')")
	in.backup(p)
	p.Query("INSERT INTO mytable VALUES (2, 'beetle')")
	inc1 := in.backup(p, "--incremental")
	p.Query("CHECKPOINT")
	mark := p.Query("SELECT pg_current_wal_insert_lsn()")
	p.Query("INSERT INTO mytable VALUES (3, 'crab')")
	switchAndArchive(t, p)
	p.Stop("fast") // the copy takes over

	c, r := in.restoreStart("copy", "--target-lsn", mark, "--keep-archive-mode")
	if r.code != 0 || !strings.Contains(r.stdout, "restored backup "+inc1) {
		t.Fatalf("restore to %s: %s", mark, r)
	}
	if tli := c.Query("SELECT timeline_id FROM pg_control_checkpoint()"); tli != "2" {
		c.Query("CHECKPOINT")
		if tli = c.Query("SELECT timeline_id FROM pg_control_checkpoint()"); tli != "2" {
			t.Fatalf("the promoted copy is on timeline %s, want 2", tli)
		}
	}
	c.Query("INSERT INTO mytable VALUES (4, 'dingo')")
	id, summary := backupCreate(t, in.store, c, "--incremental")
	if !strings.Contains(summary, "incremental on "+inc1) || !strings.Contains(summary, "on timeline 2") {
		t.Errorf("the promoted copy's incremental backup: %s, want one on %s, on timeline 2", summary, inc1)
	}
	c.Query("INSERT INTO mytable VALUES (5, 'elephant')")
	switchAndArchive(t, c)
	c.Stop("fast")

	d, r := in.restoreStart("again")
	if r.code != 0 || !strings.Contains(r.stdout, "restored backup "+id) || !strings.Contains(r.stdout, "rebuilt from 3 backups") {
		t.Fatalf("restore of %s: %s", id, r)
	}
	if got := d.Query("SELECT string_agg(a::text, ':' ORDER BY a), string_agg(b, ':' ORDER BY a) FROM mytable"); got != "1:2:4:5|aardvark:beetle:dingo:elephant" {
		t.Errorf("restored across the timelines: %s, want 1:2:4:5|aardvark:beetle:dingo:elephant", got)
	}
}

// TestIncrementalByteIdentity is the oracle: on a primary with autovacuum
// off, writes after a full backup, then an incremental backup followed at
// once by another full one, with no write between; every file rebuilt
// from the chain equals the second full backup's, byte for byte (but
// backup_label and pg_control, which name each backup's own start, and
// tablespace_map, which names where each copy's tablespace went). A
// visibility map's pages are each the full backup's or zeros: restore
// zeros the map's pages it takes from older members, which the server's
// WAL summaries cannot vouch for (backup/chain.go).
// wal_log_hints is on: a page whose only change since the parent is a
// hint bit is not in the WAL otherwise, so the incremental backup leaves
// it out and the rebuilt page is the parent's, without the hint, which
// is as valid (PostgreSQL sets hints again) but not the same bytes.
func TestIncrementalByteIdentity(t *testing.T) {
	pgtest.Require(t)
	in := newIncremental(t, pgtest.Major(t, 17), "local", false)
	p := in.p
	p.Query("ALTER SYSTEM SET autovacuum = off")
	p.Query("ALTER SYSTEM SET wal_log_hints = on")
	p.Stop("fast")
	p.Start()
	ts := tablespaceDir(t, in.base, "ts")
	p.Query("CREATE TABLESPACE extra LOCATION '" + ts + "'")
	p.Pgbench("-i", "-s", "2", "-q")
	p.Query("CREATE TABLE far TABLESPACE extra AS SELECT g AS n, md5(g::text) AS s FROM generate_series(1, 20000) g")
	in.backup(p)
	p.Pgbench("-c", "2", "-j", "1", "-t", "500", "-n")
	p.Query("DELETE FROM far WHERE n > 15000")
	p.Query("VACUUM far")
	p.Query("UPDATE far SET s = 'x' WHERE n % 10 = 0")
	p.Query("CREATE TABLE late AS SELECT g FROM generate_series(1, 3000) g")
	p.Query("CHECKPOINT")
	inc := in.backup(p, "--incremental")
	full := in.backup(p)

	dirs := map[string][2]string{}
	for _, id := range []string{inc, full} {
		data, tsDir := filepath.Join(in.base, "r-"+id), filepath.Join(in.base, "ts-"+id)
		args := append([]string{"backup", "restore", "--repo", in.store.(localBackend).dir, "-D", data, "--backup", id, "--no-sync", "-T", ts + "=" + tsDir}, in.restore...)
		if r := walship(t, runOpts{}, "walship", args...); r.code != 0 {
			t.Fatalf("restore of %s: %s", id, r)
		}
		dirs[id] = [2]string{data, tsDir}
	}
	compared := 0
	for i, root := range []string{"data", "tablespace"} {
		a, b := dirs[inc][i], dirs[full][i]
		files := snapshot(t, b)
		for rel := range snapshot(t, a) {
			if _, ok := files[rel]; !ok {
				t.Errorf("%s %s: in the rebuilt copy only", root, rel)
			}
		}
		for rel, st := range files {
			if !st.mode.IsRegular() || rel == "backup_label" || rel == "global/pg_control" || rel == "tablespace_map" {
				continue
			}
			x, errA := os.ReadFile(filepath.Join(a, rel))
			y, errB := os.ReadFile(filepath.Join(b, rel))
			if errA != nil || errB != nil {
				t.Errorf("%s %s: %v, %v", root, rel, errA, errB)
				continue
			}
			compared++
			if strings.HasSuffix(rel, "_vm") && len(x) == len(y) {
				for off := 0; off < len(x); off += 8192 {
					if pa, pb := x[off:off+8192], y[off:off+8192]; string(pa) != string(pb) && strings.Trim(string(pa), "\x00") != "" {
						t.Errorf("%s %s: page %d of the rebuilt visibility map is neither the full backup's nor zeros", root, rel, off/8192)
					}
				}
				continue
			}
			if string(x) != string(y) {
				t.Errorf("%s %s: the file rebuilt from the chain differs from the full backup's", root, rel)
			}
		}
	}
	if compared < 500 {
		t.Errorf("compared %d files: too few", compared)
	}
}

// TestIncrementalRetention: retention keeps whole chains. With an older
// full backup and a chain (a full backup and two incrementals), keeping
// the newest backup keeps its whole chain and its WAL and lets the older
// full backup go; the chain still restores; deleting its full backup by
// hand is refused while the incrementals build on it.
func TestIncrementalRetention(t *testing.T) {
	pgtest.Require(t)
	in := newIncremental(t, pgtest.Major(t, 17), "local", false)
	p := in.p
	p.Pgbench("-i", "-s", "1", "-q")
	old := in.backup(p)
	p.Pgbench("-c", "1", "-t", "200", "-n")
	switchAndArchive(t, p)
	full := in.backup(p)
	p.Pgbench("-c", "1", "-t", "200", "-n")
	inc1 := in.backup(p, "--incremental")
	p.Pgbench("-c", "1", "-t", "200", "-n")
	inc2 := in.backup(p, "--incremental")
	p.Query("CREATE TABLE after AS SELECT 1 AS n")
	switchAndArchive(t, p)
	repoDir := in.store.(localBackend).dir

	r := walship(t, runOpts{}, "walship-prune", "--repo", repoDir, "--keep-backups", "1")
	if r.code != 0 {
		t.Fatalf("walship-prune --keep-backups 1: %s", r)
	}
	list := in.list()
	if _, ok := list[old]; ok {
		t.Errorf("after keeping the newest backup, %s (older than its chain) is still listed", old)
	}
	for _, id := range []string{full, inc1, inc2} {
		if b, ok := list[id]; !ok || !b.Restorable {
			t.Errorf("after keeping %s, %s of its chain: %+v, want kept and restorable", inc2, id, b)
		}
	}
	r = walship(t, runOpts{}, "walship", "backup", "delete", "--repo", repoDir, full)
	wantOneLine(t, "deleting the full backup of a chain", r, []int{1}, "walship", inc1)
	c, r := in.restoreStart("kept")
	if r.code != 0 || !strings.Contains(r.stdout, "rebuilt from 3 backups") {
		t.Fatalf("restore of the kept chain: %s", r)
	}
	if got := c.Query("SELECT count(*) FROM pgbench_history"); got != "600" {
		t.Errorf("restored %s rows of pgbench_history, want 600", got)
	}
}
