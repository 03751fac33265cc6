package test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/walship/walship/internal/testenv/pgtest"
	"github.com/walship/walship/repo"
)

// The seed stories with the repository holding the base backups too:
// walship backup create, list and restore, on every backend.

// backupID is the ID in walship backup create's summary line.
var backupID = regexp.MustCompile(`^backup (\d{8}T\d{6}Z) of PostgreSQL`)

// backupCreate runs walship backup create against c and returns the
// backup's ID and summary line.
func backupCreate(t *testing.T, store archiveBackend, c *pgtest.Cluster, flags ...string) (string, string) {
	t.Helper()
	args := append(append([]string{"backup", "create"}, store.flags()...), append([]string{"-d", c.ConnString(), "--checkpoint", "fast"}, flags...)...)
	r := walship(t, runOpts{env: store.env()}, "walship", args...)
	m := backupID.FindStringSubmatch(r.stdout)
	if r.code != 0 || m == nil || strings.Count(r.stdout, "\n") != 1 {
		t.Fatalf("walship backup create: %s", r)
	}
	return m[1], strings.TrimSpace(r.stdout)
}

// backupRestore runs walship backup restore into a new cluster base/name
// (its own port, its log as the cluster's) with flags and returns the
// cluster and the run.
func backupRestore(t *testing.T, store archiveBackend, base, name string, flags ...string) (*pgtest.Cluster, result) {
	t.Helper()
	c := attach(t, store, base, name)
	r := walship(t, runOpts{env: store.env()}, "walship", restoreArgs(store, c, flags...)...)
	c.Running() // stopped when the test ends, if it runs
	return c, r
}

// restoreArgs are the arguments of walship backup restore into c.
func restoreArgs(store archiveBackend, c *pgtest.Cluster, flags ...string) []string {
	return append(append([]string{"backup", "restore"}, store.flags()...),
		append([]string{"-D", c.Data, "--set", fmt.Sprintf("port=%d", c.Port), "--start-log", c.LogFile, "--no-sync"}, flags...)...)
}

// attach describes a cluster to be restored into base/name.
func attach(t *testing.T, store archiveBackend, base, name string) *pgtest.Cluster {
	c := pgtest.Attach(t, base, name)
	c.Env = store.env()
	return c
}

// backupList is walship backup list --json.
type listedBackup struct {
	ID         string `json:"id"`
	File       string `json:"file"`
	From       string `json:"from"`
	Stored     bool   `json:"stored"`
	Registered bool   `json:"registered"`
	Restorable bool   `json:"restorable"`
	Reason     string `json:"reason"`
	Size       int64  `json:"size"`
	Stored2    int64  `json:"stored_bytes"`
	// Compression: server-lz4 or lz4 (walship).
	Compression string `json:"compression"`
}

// serverCompression is what walship backup create compresses the
// cluster's backups with by default: the server's lz4 where the server
// has it (PostgreSQL 15 or later, built with lz4), else its own.
func serverCompression(c *pgtest.Cluster) string {
	if c.Query("SELECT current_setting('server_version_num')::int >= 150000 AND 'lz4' = ANY(enumvals) FROM pg_settings WHERE name = 'default_toast_compression'") == "t" {
		return "server-lz4"
	}
	return "lz4"
}

func backupList(t *testing.T, store archiveBackend) []listedBackup {
	t.Helper()
	r := walship(t, runOpts{env: store.env()}, "walship", append(append([]string{"backup", "list"}, store.flags()...), "--json")...)
	if r.code != 0 {
		t.Fatalf("walship backup list: %s", r)
	}
	var out []listedBackup
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
		t.Fatalf("walship backup list --json: %v\n%s", err, r.stdout)
	}
	return out
}

// backupKeys lists the keys of base backup objects in the archive.
func backupKeys(t *testing.T, store archiveBackend) []string {
	t.Helper()
	var out []string
	for k := range store.objects(t) {
		if strings.HasPrefix(k, repo.BackupsPrefix) && !strings.HasSuffix(k, "/") {
			out = append(out, k)
		}
	}
	return out
}

// tablespaceDir makes a directory for a tablespace, owned by the server's
// user.
func tablespaceDir(t *testing.T, base, name string) string {
	return pgtest.Mkdir(t, filepath.Join(base, name))
}

// TestBackupPITR: walship backup create takes the base backup into the
// repository (tablespace included), and walship backup restore --start
// recovers a new cluster to a restore point and to a time, each with
// exactly the primary's rows at that point, archive_mode off so that the
// promoted copies archive nothing into the repository; verify --full
// reads the backup against its manifest. On every backend.
func TestBackupPITR(t *testing.T) {
	forEachBackend(t, func(t *testing.T, base string, store archiveBackend) {
		p := archivingPrimary(t, store, base, "primary")
		ts := tablespaceDir(t, base, "ts")
		p.Query("CREATE TABLESPACE extra LOCATION '" + ts + "'")
		p.Pgbench("-i", "-s", "2", "-q")
		p.Query("CREATE TABLE moves (id serial, at timestamptz DEFAULT clock_timestamp()) TABLESPACE extra")
		p.Query("INSERT INTO moves SELECT FROM generate_series(1, 1000)")

		id, summary := backupCreate(t, store, p)
		t.Logf("%s", summary)
		if !strings.Contains(summary, "from the primary") || !strings.Contains(summary, "2 tar(s)") || !strings.HasSuffix(summary, "; restorable") {
			t.Errorf("summary %q: want a restorable backup of the primary with 2 tars (base and the tablespace)", summary)
		}

		// After the backup: a restore point, then a moment, with work
		// between and after that the copies must not see.
		p.Pgbench("-c", "2", "-j", "1", "-t", "300", "-n")
		p.Query("INSERT INTO moves SELECT FROM generate_series(1, 500)")
		atPoint := p.Query("SELECT count(*) || ':' || sum(abalance) FROM pgbench_accounts") + "/" + p.Query("SELECT count(*) FROM moves")
		p.Query("SELECT pg_create_restore_point('before_damage')")
		p.Query("INSERT INTO moves SELECT FROM generate_series(1, 250)")
		p.Pgbench("-c", "2", "-j", "1", "-t", "300", "-n")
		time.Sleep(1100 * time.Millisecond)
		target := p.Query("SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')")
		atTime := p.Query("SELECT count(*) || ':' || sum(abalance) FROM pgbench_accounts") + "/" + p.Query("SELECT count(*) FROM moves")
		time.Sleep(1100 * time.Millisecond)
		p.Query("UPDATE pgbench_accounts SET abalance = abalance + 1000000")
		p.Query("INSERT INTO moves SELECT FROM generate_series(1, 100)")
		switchAndArchive(t, p)
		histories := func() int {
			n := 0
			for k := range store.objects(t) {
				if strings.HasSuffix(k, ".history") {
					n++
				}
			}
			return n
		}
		before := histories()

		count := func(c *pgtest.Cluster) string {
			return c.Query("SELECT count(*) || ':' || sum(abalance) FROM pgbench_accounts") + "/" + c.Query("SELECT count(*) FROM moves")
		}
		for _, tc := range []struct {
			name, want string
			flags      []string
		}{
			{"point", atPoint, []string{"--target-name", "before_damage"}},
			{"time", atTime, []string{"--target-time", target}},
		} {
			c, r := backupRestore(t, store, base, "at-"+tc.name,
				append([]string{"-T", ts + "=" + filepath.Join(base, "ts-"+tc.name), "--start"}, tc.flags...)...)
			if r.code != 0 || r.stderr != "" || !strings.Contains(r.stdout, "restored backup "+id) || !strings.Contains(r.stdout, "was promoted") {
				t.Fatalf("restore to the %s: %s", tc.name, r)
			}
			t.Logf("restore to the %s: %s", tc.name, r.stdout)
			if got := count(c); got != tc.want {
				t.Errorf("restored to the %s: %s, want the primary's %s", tc.name, got, tc.want)
			}
			if got := c.Query("SHOW archive_mode"); got != "off" {
				t.Errorf("the copy restored to the %s has archive_mode %s, want off", tc.name, got)
			}
			if got := c.Query("SELECT pg_tablespace_location(oid) FROM pg_tablespace WHERE spcname = 'extra'"); got != filepath.Join(base, "ts-"+tc.name) {
				t.Errorf("tablespace of the copy in %s, want it moved", got)
			}
			c.Stop("fast")
		}
		if after := histories(); after != before {
			t.Errorf("the promoted copies archived into %s: %d history files, %d before", store, after, before)
		}

		// A tablespace moved into an empty directory of another user's
		// (root's, writable by all): refused as NEWDIR would be, before
		// anything is written.
		theirs := filepath.Join(base, "ts-theirs")
		if err := os.Mkdir(theirs, 0o777); err != nil {
			t.Fatal(err)
		}
		os.Chmod(theirs, 0o777)
		_, r := backupRestore(t, store, base, "ts-theirs-data", "-T", ts+"="+theirs)
		wantOneLine(t, "a tablespace directory of another user's", r, []int{1}, "walship", theirs+" belongs to root")
		if ents, _ := os.ReadDir(theirs); len(ents) != 0 {
			t.Errorf("the other user's tablespace directory holds %v", ents)
		}
		if _, err := os.Lstat(filepath.Join(base, "ts-theirs-data")); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("the restore refused for its tablespace directory left its data directory (%v)", err)
		}

		// The backup is in the list, and verify --full reads it in full.
		list := backupList(t, store)
		if len(list) != 1 || list[0].ID != id || !list[0].Stored || !list[0].Restorable || list[0].File == "" || list[0].Size <= 0 {
			t.Errorf("walship backup list: %+v, want backup %s, stored, restorable, with its .backup file", list, id)
		}
		if want := serverCompression(p); len(list) == 1 && list[0].Compression != want {
			t.Errorf("walship backup list: compression %q, want %q by default", list[0].Compression, want)
		}
		r = walship(t, runOpts{env: store.env()}, "walship", append(append([]string{"verify"}, store.flags()...), "--full")...)
		if r.code != 0 || !strings.Contains(r.stdout, "and 1 stored base backup(s) in full") {
			t.Errorf("walship verify --full: %s", r)
		}
		noSecret(t, "the primary's log", p.Log(), store.secrets()...)
	})
}

// TestBackupWarmStandby is the 8.2 seed's warm standby built from the
// repository: walship backup create on the primary, walship backup restore
// --standby --trigger (archive recovery whose restore_command is
// walship-restore --standby, waiting for each segment), which follows the
// primary through the archive alone; the primary dies, the trigger file
// promotes the standby, and every row is there. This backup is compressed
// by walship (--compress-at client), the others by the server where it can.
func TestBackupWarmStandby(t *testing.T) {
	pgtest.Require(t)
	base := pgtest.Dir(t)
	store := localBackend{dir: filepath.Join(base, "repo")}
	p := archivingPrimary(t, store, base, "primary")
	p.Query("CREATE TABLE shipped (n int)")
	p.Query("INSERT INTO shipped SELECT generate_series(1, 1000)")
	backupCreate(t, store, p, "--compress-at", "client")
	if list := backupList(t, store); len(list) != 1 || list[0].Compression != "lz4" {
		t.Errorf("walship backup list: %+v, want one backup compressed by walship (lz4)", list)
	}

	trigger := filepath.Join(base, "promote.trigger")
	s, r := backupRestore(t, store, base, "warm", "--standby", "--trigger", trigger, "--start")
	if r.code != 0 || !strings.Contains(r.stdout, "the standby is consistent") {
		t.Fatalf("walship backup restore --standby --trigger: %s", r)
	}
	t.Logf("%s", r.stdout)
	if cmd := s.Query("SHOW restore_command"); !strings.Contains(cmd, "walship-restore") || !strings.Contains(cmd, "--standby") || !strings.Contains(cmd, "--trigger="+trigger) {
		t.Errorf("restore_command %q: want walship-restore --standby --trigger", cmd)
	}
	if v := s.Query("SHOW recovery_prefetch"); v != "off" {
		t.Errorf("recovery_prefetch = %s, want off for a waiting restore_command", v)
	}
	if _, err := os.Stat(filepath.Join(s.Data, "recovery.signal")); err != nil {
		t.Errorf("no recovery.signal: a trigger file ends only archive recovery (%v)", err)
	}
	for range 3 {
		p.Query("INSERT INTO shipped SELECT generate_series(1, 1000)")
		switchAndArchive(t, p)
		s.WaitQuery("SELECT count(*) FROM shipped", p.Query("SELECT count(*) FROM shipped"), 60*time.Second)
	}
	if n := s.Int("SELECT count(*) FROM pg_stat_wal_receiver"); n != 0 {
		t.Errorf("the warm standby has %d WAL receivers: it streams instead of reading the archive", n)
	}
	// The primary writes its last rows, archives them and dies.
	p.Query("INSERT INTO shipped SELECT generate_series(1, 500)")
	switchAndArchive(t, p)
	final := p.Query("SELECT count(*) FROM shipped")
	p.Stop("immediate")
	writeTrigger(t, trigger, "")
	s.WaitQuery("SELECT pg_is_in_recovery()", "f", 120*time.Second)
	if got := s.Query("SELECT count(*) FROM shipped"); got != final {
		t.Errorf("promoted standby has %s rows, the primary had %s", got, final)
	}

	// The trigger file is left over: a new standby with it would promote
	// at once (a second primary archiving a new timeline) and report
	// success. Refused before anything is written.
	again, r := backupRestore(t, store, base, "warm-again", "--standby", "--trigger", trigger, "--start")
	wantOneLine(t, "a standby with a leftover trigger file", r, []int{1}, "walship", "trigger file", "exists already")
	if _, err := os.Stat(again.Data); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the new data directory was made: %v", err)
	}
}

// TestBackupFromStandbyAndReintegration: a backup taken from a standby
// (which PostgreSQL writes no backup history file for) counts for
// retention and verify; after a failover, the old primary is re-integrated
// as a streaming standby of the new one from a backup of the new primary
// (the 9.0 hands-on's re-incorporation, without pg_start_backup and cp).
func TestBackupFromStandbyAndReintegration(t *testing.T) {
	pgtest.Require(t)
	base := pgtest.Dir(t)
	store := localBackend{dir: filepath.Join(base, "repo")}
	a := archivingPrimary(t, store, base, "a")
	a.Pgbench("-i", "-s", "1", "-q")
	oldID, _ := backupCreate(t, store, a)

	b := a.BaseBackup(base, "b", "-R")
	b.Conf("archive_mode = on", commandLine(t, store, "walship-archive"))
	b.Start()
	b.WaitQuery("SELECT status FROM pg_stat_wal_receiver", "streaming", 60*time.Second)
	a.Pgbench("-c", "2", "-j", "1", "-t", "200", "-n")
	lsn := a.Query("SELECT pg_current_wal_lsn()")
	b.WaitQuery("SELECT pg_last_wal_replay_lsn() >= '"+lsn+"'", "t", 60*time.Second)

	standbyID, summary := backupCreate(t, store, b)
	if !strings.Contains(summary, "from the standby") {
		t.Errorf("backup of the standby: %q", summary)
	}
	switchAndArchive(t, a) // the standby's backup ends in a segment the primary archives
	var sb *listedBackup
	for _, l := range backupList(t, store) {
		if l.ID == standbyID {
			sb = &l
		}
	}
	if sb == nil || sb.From != "standby" || sb.File != "" || !sb.Restorable {
		t.Fatalf("the standby's backup in the list: %+v, want from the standby, without a .backup file, restorable", sb)
	}
	r := walship(t, runOpts{}, "walship-prune", "--repo", store.dir, "--keep-backups", "1")
	if r.code != 0 || !strings.Contains(r.stdout, "1 expired base backup(s) ("+oldID+")") {
		t.Fatalf("walship-prune --keep-backups 1: %s", r)
	}
	t.Logf("walship-prune: %s", r.stdout)
	// Left: the standby's backup; B's own pg_basebackup (a .backup file
	// only, at the same start) and the expired backup's .backup file, named
	// as expired for one run.
	var stored []listedBackup
	for _, l := range backupList(t, store) {
		if l.Stored {
			stored = append(stored, l)
		}
	}
	if len(stored) != 1 || stored[0].ID != standbyID || !stored[0].Restorable {
		t.Errorf("after pruning to one backup: %+v, want the standby's, restorable", stored)
	}
	if r := walship(t, runOpts{}, "walship", "verify", "--repo", store.dir); r.code != 0 {
		t.Errorf("walship verify after pruning: %s", r)
	}

	// Failover: the primary stops, the standby is promoted and writes on.
	a.Stop("fast")
	b.Promote()
	b.Pgbench("-c", "2", "-j", "1", "-t", "200", "-n")
	newID, summary := backupCreate(t, store, b)
	if !strings.Contains(summary, "from the primary") || !strings.Contains(summary, "on timeline 2") {
		t.Errorf("backup of the new primary: %q", summary)
	}

	// The old primary's data directory goes aside; it comes back as a
	// standby of the new primary from that backup.
	if err := os.Rename(a.Data, a.Data+".old"); err != nil {
		t.Fatal(err)
	}
	a2, r := backupRestore(t, store, base, "a", "--standby", "--primary-conninfo", b.ConnString(), "--start")
	if r.code != 0 || !strings.Contains(r.stdout, "restored backup "+newID) || !strings.Contains(r.stdout, "streams from the primary") {
		t.Fatalf("walship backup restore --standby --primary-conninfo: %s", r)
	}
	t.Logf("%s", r.stdout)
	b.Pgbench("-c", "2", "-j", "1", "-t", "100", "-n")
	lsn = b.Query("SELECT pg_current_wal_lsn()")
	a2.WaitQuery("SELECT pg_last_wal_replay_lsn() >= '"+lsn+"'", "t", 60*time.Second)
	for _, q := range []string{"SELECT count(*) FROM pgbench_history", "SELECT sum(abalance) FROM pgbench_accounts"} {
		if got, want := a2.Query(q), b.Query(q); got != want {
			t.Errorf("%s: %s on the re-integrated old primary, %s on the new primary", q, got, want)
		}
	}
	if got := a2.Query("SELECT pg_is_in_recovery()"); got != "t" {
		t.Errorf("the re-integrated old primary is not a standby")
	}
	if cmd := a2.Query("SHOW restore_command"); !strings.Contains(cmd, "walship-restore") || strings.Contains(cmd, "--standby") {
		t.Errorf("restore_command %q: want walship-restore (not waiting: the standby streams)", cmd)
	}
}

// TestBackupBadInput: what a restore cannot do is refused with one line
// before anything is written (a target before the oldest backup or after
// the end of the archive, a data directory that is not empty, a damaged
// backup object, found before the data directory is touched), and a
// backup of another cluster is refused before anything is stored. On
// every backend.
func TestBackupBadInput(t *testing.T) {
	forEachBackend(t, func(t *testing.T, base string, store archiveBackend) {
		p := archivingPrimary(t, store, base, "primary")
		p.Pgbench("-i", "-s", "1", "-q")
		before := time.Now().UTC().Add(-time.Minute).Format(time.RFC3339)
		id, _ := backupCreate(t, store, p)
		p.Pgbench("-c", "1", "-t", "100", "-n")
		switchAndArchive(t, p)

		absent := func(what, dir string) {
			t.Helper()
			if _, err := os.Lstat(dir); !os.IsNotExist(err) {
				t.Errorf("%s: %s was created (%v)", what, dir, err)
			}
		}
		_, r := backupRestore(t, store, base, "early", "--target-time", before)
		wantOneLine(t, "a target before the oldest backup", r, []int{1}, "walship", "before backup "+id+" became consistent")
		absent("a target before the oldest backup", filepath.Join(base, "early"))

		_, r = backupRestore(t, store, base, "late", "--target-time", time.Now().Add(time.Hour).UTC().Format(time.RFC3339))
		wantOneLine(t, "a target after the end of the archive", r, []int{1}, "walship", "after the end of the archive")
		absent("a target after the end of the archive", filepath.Join(base, "late"))

		_, r = backupRestore(t, store, base, "far", "--target-lsn", "FF/0")
		wantOneLine(t, "an LSN after the end of the archive", r, []int{1}, "walship", "after the end of the archive")

		full := pgtest.Mkdir(t, filepath.Join(base, "full"))
		writeSegment(t, full, "keep", []byte("mine"))
		snap := snapshot(t, full)
		_, r = backupRestore(t, store, base, "full")
		wantOneLine(t, "a data directory that is not empty", r, []int{1}, "walship", full+" holds keep")
		sameSnapshot(t, "the directory that was not empty", snap, snapshot(t, full))

		// An empty directory of another user's (here root's), which the
		// server's user may write into: its owner could change the
		// restored cluster afterwards. Refused, untouched.
		theirs := filepath.Join(base, "theirs")
		if err := os.Mkdir(theirs, 0o777); err != nil {
			t.Fatal(err)
		}
		os.Chmod(theirs, 0o777)
		_, r = backupRestore(t, store, base, "theirs")
		wantOneLine(t, "a data directory of another user's", r, []int{1}, "walship", theirs+" belongs to root")
		if ents, _ := os.ReadDir(theirs); len(ents) != 0 {
			t.Errorf("the other user's directory holds %v", ents)
		}

		// A byte of the stored base.tar flipped: refused before the data
		// directory holds anything; verify --full names the backup.
		ctx, cancel := ioContext()
		defer cancel()
		key := repo.BackupObject{ID: repo.BackupID(id), Part: repo.BasePart}.Key()
		b := store.store(t)
		rc, err := b.Open(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		data[len(data)*2/3] ^= 0x10
		if err := b.Remove(ctx, key); err != nil {
			t.Fatal(err)
		}
		if err := b.Put(ctx, key, bytes.NewReader(data), int64(len(data))); err != nil {
			t.Fatal(err)
		}
		if lb, ok := store.(localBackend); ok {
			pgtest.Chown(t, filepath.Join(lb.dir, filepath.FromSlash(key))) // the test runs as root
		}
		empty := pgtest.Mkdir(t, filepath.Join(base, "empty"))
		_, r = backupRestore(t, store, base, "empty")
		wantOneLine(t, "a damaged backup object", r, []int{1}, "walship", "damaged backup", "base.tar")
		if ents, _ := os.ReadDir(empty); len(ents) != 0 {
			t.Errorf("after refusing a damaged backup, %s holds %v", empty, ents)
		}
		r = walship(t, runOpts{env: store.env()}, "walship", append(append([]string{"verify"}, store.flags()...), "--full")...)
		if r.code != 1 || !strings.Contains(r.stdout, "PROBLEM "+id+": backup damaged") {
			t.Errorf("walship verify --full of the damaged backup: %s", r)
		}

		// Options that make no sense: usage errors, nothing stored.
		keys := backupKeys(t, store)
		for _, bad := range [][]string{{"--compress-at", "elsewhere"}, {"--checkpoint", "slow"}} {
			args := append(append([]string{"backup", "create"}, store.flags()...), append([]string{"-d", p.ConnString()}, bad...)...)
			wantOneLine(t, "walship backup create "+strings.Join(bad, " "), walship(t, runOpts{env: store.env()}, "walship", args...), []int{2}, "walship", bad[1])
		}

		// Another cluster's server: refused, nothing stored.
		other := newCluster(t, store, base, "other")
		other.Start()
		args := append(append([]string{"backup", "create"}, store.flags()...), "-d", other.ConnString(), "--checkpoint", "fast")
		r = walship(t, runOpts{env: store.env()}, "walship", args...)
		wantOneLine(t, "a backup of another cluster", r, []int{1}, "walship", "another cluster", "database system")
		if got := backupKeys(t, store); len(got) != len(keys) {
			t.Errorf("the refused backup stored objects: %v, before %v", got, keys)
		}
	})
}

// TestBackupInterrupted: a backup stopped half-way (while base.tar
// streams, the tablespace's tar stored already), by SIGTERM or by kill -9,
// ends the server's backup and leaves nothing that list, verify or
// restore would take for a backup, nor any local file (the backup runs
// over the replication protocol: no temporary directory at all). After
// SIGTERM it removes what it stored; after kill -9 the objects it left
// are an interrupted backup's, which verify notes and walship-prune
// removes later.
func TestBackupInterrupted(t *testing.T) {
	pgtest.Require(t)
	base := pgtest.Dir(t)
	store := localBackend{dir: filepath.Join(base, "repo")}
	p := archivingPrimary(t, store, base, "primary")
	ts := tablespaceDir(t, base, "ts")
	p.Query("CREATE TABLESPACE extra LOCATION '" + ts + "'")
	p.Query("CREATE TABLE small TABLESPACE extra AS SELECT generate_series(1, 1000) n")
	p.Pgbench("-i", "-s", "3", "-q")
	switchAndArchive(t, p)

	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
		tmpBefore, _ := filepath.Glob(filepath.Join(os.TempDir(), "walship-backup-*"))
		// The server sends at 2 MB/s, so that the backup takes a while.
		cmd := walshipCmd(t, runOpts{}, "walship", "backup", "create", "--repo", store.dir, "-d", p.ConnString(), "--checkpoint", "fast", "--max-rate", "2M")
		var stderr strings.Builder
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// The tablespace's tar is stored, base.tar is on its way.
		pgtest.Eventually(t, 60*time.Second, "the backup streaming into "+store.dir, func() bool {
			var tsTar, baseTmp bool
			filepath.WalkDir(filepath.Join(store.dir, "backups"), func(_ string, d os.DirEntry, err error) error {
				if err == nil && !d.IsDir() {
					tsTar = tsTar || (strings.HasSuffix(d.Name(), ".tar.lz4") && d.Name() != "base.tar.lz4")
					baseTmp = baseTmp || strings.HasPrefix(d.Name(), ".base.tar.lz4.tmp-")
				}
				return nil
			})
			return tsTar && (baseTmp || writesUnnamedIn(filepath.Join(store.dir, "backups")))
		})
		cmd.Process.Signal(sig)
		if err := cmd.Wait(); err == nil {
			t.Fatalf("walship backup create finished despite %s: %s", sig, stderr.String())
		}
		if keys := backupKeys(t, store); sig == syscall.SIGTERM && len(keys) != 0 {
			t.Errorf("the backup stopped by SIGTERM left %v", keys)
		}
		for _, l := range backupList(t, store) {
			if l.Stored {
				t.Errorf("the backup stopped by %s is listed: %+v", sig, l)
			}
		}
		r := walship(t, runOpts{}, "walship", "verify", "--repo", store.dir)
		if r.code != 0 || (sig == syscall.SIGKILL && !strings.Contains(r.stdout, "no record: interrupted, or running now")) {
			t.Errorf("walship verify after a backup stopped by %s: %s", sig, r)
		}
		_, r = backupRestore(t, store, base, "none-"+strconv.Itoa(int(sig)))
		wantOneLine(t, "a restore with no backup", r, []int{1}, "walship", "holds no base backup taken with walship backup create")
		tmpAfter, _ := filepath.Glob(filepath.Join(os.TempDir(), "walship-backup-*"))
		if len(tmpAfter) > len(tmpBefore) {
			t.Errorf("the backup stopped by %s left %v", sig, tmpAfter)
		}
		// The server ends the backup when the connection goes.
		pgtest.Eventually(t, 30*time.Second, "the server's walsender to end", func() bool {
			return p.Query("SELECT count(*) FROM pg_stat_replication") == "0"
		})
	}
}

// TestBackupEncrypted: in an encrypted repository walship backup create,
// holding the public key only, stores the tars and the manifest encrypted
// (the record, which retention and verify read without a key, stays
// clear); list works without the identity; restore without it is refused
// before anything is written, and with it restores a cluster whose
// restore_command decrypts the WAL with the same identity file.
func TestBackupEncrypted(t *testing.T) {
	pgtest.Require(t)
	base := pgtest.Dir(t)
	store := localBackend{dir: filepath.Join(base, "repo")}
	rcpt, idFile, _ := ageKey(t, base, "k")
	p := archivingPrimary(t, store, base, "primary", "--recipient", rcpt)
	p.Query("CREATE TABLE secret AS SELECT 'attack at dawn ' || g AS s FROM generate_series(1, 5000) g")
	switchAndArchive(t, p)

	args := append(append([]string{"backup", "create"}, store.flags()...), "-d", p.ConnString(), "--checkpoint", "fast")
	r := walship(t, runOpts{}, "walship", args...)
	wantOneLine(t, "a backup into an encrypted repository without a recipient", r, []int{2}, "walship", "encrypted")
	if keys := backupKeys(t, store); len(keys) != 0 {
		t.Errorf("the refused backup stored %v", keys)
	}
	id, _ := backupCreate(t, store, p, "--recipient", rcpt)
	for key, data := range rawObjects(t, store) {
		o, ok := repo.ParseBackupKey(key)
		if !ok {
			continue
		}
		if o.Part == repo.MetaPart {
			if bytes.HasPrefix(data, []byte("walship-age")) {
				t.Errorf("the record %s is encrypted: retention could not read it without a key", key)
			}
		} else if !bytes.HasPrefix(data, []byte("walship-age v2 ")) {
			t.Errorf("%s is not encrypted", key)
		}
	}
	list := backupList(t, store)
	if len(list) == 0 || list[0].ID != id || !list[0].Restorable {
		t.Errorf("walship backup list without the identity: %+v", list)
	}
	p.Query("INSERT INTO secret SELECT 'after the backup' FROM generate_series(1, 100)")
	switchAndArchive(t, p)

	_, r = backupRestore(t, store, base, "nokey")
	wantOneLine(t, "a restore without the identity", r, []int{2}, "walship", "encrypted")
	if _, err := os.Lstat(filepath.Join(base, "nokey")); !os.IsNotExist(err) {
		t.Errorf("the refused restore left %s (%v)", filepath.Join(base, "nokey"), err)
	}
	c, r := backupRestore(t, store, base, "copy", "--identity", idFile, "--start")
	if r.code != 0 || !strings.Contains(r.stdout, "was promoted") {
		t.Fatalf("walship backup restore --identity: %s", r)
	}
	if got := c.Query("SELECT count(*) FROM secret"); got != "5100" {
		t.Errorf("restored %s rows, want 5100", got)
	}
	if cmd := c.Query("SHOW restore_command"); !strings.Contains(cmd, "--identity="+idFile) {
		t.Errorf("restore_command %q does not decrypt with the identity file", cmd)
	}
}

// TestBackupRegister: backups a DBA took by hand with pg_basebackup, in
// plain format and in tar format (uncompressed, gzip, and the server's lz4
// where the server has it), each with its manifest, are recorded with
// walship backup register: list shows them registered (their files stay
// where they are) and restorable, and verify counts them. A backup
// registered already, a directory that holds no backup, or one without
// its manifest, is refused in one line and records nothing.
func TestBackupRegister(t *testing.T) {
	pgtest.Require(t)
	base := pgtest.Dir(t)
	store := localBackend{dir: filepath.Join(base, "repo")}
	p := archivingPrimary(t, store, base, "primary")
	p.Pgbench("-i", "-s", "1", "-q")
	formats := map[string][]string{"plain": {"-Fp"}, "tar": {"-Ft"}, "gzip": {"-Ft", "-z"}}
	if serverCompression(p) == "server-lz4" {
		formats["lz4"] = []string{"-Ft", "--compress=server-lz4"}
	} else {
		t.Logf("the server has no lz4: no backup compressed by the server")
	}
	register := func(dir string) result {
		return walship(t, runOpts{env: store.env()}, "walship", append(append([]string{"backup", "register"}, store.flags()...), dir)...)
	}
	for name, flags := range formats {
		dir := filepath.Join(base, "bb-"+name)
		pgtest.Run(t, pgtest.Tool(t, "pg_basebackup"), append([]string{"-d", p.ConnString(), "-D", dir, "-X", "none", "-c", "fast"}, flags...)...)
		if r := register(dir); r.code != 0 || !strings.HasPrefix(r.stdout, "registered the backup ") {
			t.Errorf("walship backup register of the %s backup: %s", name, r)
		}
	}
	switchAndArchive(t, p)
	list := backupList(t, store)
	registered := 0
	for _, b := range list {
		if b.Registered {
			registered++
			if b.Stored || !b.Restorable || b.ID == "" {
				t.Errorf("a registered backup: %+v, want restorable, not stored, with an ID", b)
			}
		}
	}
	if registered != len(formats) {
		t.Errorf("walship backup list shows %d registered backups, want %d: %+v", registered, len(formats), list)
	}
	r := walship(t, runOpts{env: store.env()}, "walship", append([]string{"verify"}, store.flags()...)...)
	if r.code != 0 {
		t.Errorf("walship verify: %s", r)
	}

	keys := backupKeys(t, store)
	wantOneLine(t, "registering a backup a second time", register(filepath.Join(base, "bb-plain")), []int{1}, "walship", "in the repository already")
	empty := pgtest.Mkdir(t, filepath.Join(base, "empty"))
	wantOneLine(t, "registering an empty directory", register(empty), []int{1}, "walship", "no backup manifest")
	onlyManifest := pgtest.Mkdir(t, filepath.Join(base, "only-manifest"))
	manifest, err := os.ReadFile(filepath.Join(base, "bb-tar", "backup_manifest"))
	if err != nil {
		t.Fatal(err)
	}
	writeSegment(t, onlyManifest, "backup_manifest", manifest)
	wantOneLine(t, "registering a manifest without its backup", register(onlyManifest), []int{1}, "walship", "nor base.tar, base.tar.lz4 or base.tar.gz")
	noManifest := filepath.Join(base, "bb-tar")
	if err := os.Remove(filepath.Join(noManifest, "backup_manifest")); err != nil {
		t.Fatal(err)
	}
	wantOneLine(t, "registering a backup without its manifest", register(noManifest), []int{1}, "walship", "no backup manifest")
	if got := backupKeys(t, store); len(got) != len(keys) {
		t.Errorf("the refused registrations stored objects: %v, before %v", got, keys)
	}
}

// TestBackupOfAClusterConfiguredOutsideItsDataDirectory: Debian keeps a
// cluster's postgresql.conf, pg_hba.conf and pg_ident.conf in
// /etc/postgresql/<version>/<cluster> and starts it with pg_ctl -D on that
// directory (data_directory names the data). Its base backups hold none of
// those files; walship backup restore --start gives the copy the least
// that starts it (local peer connections only) and the copy reaches the
// end of the archive, where it failed before ("could not access the server
// configuration file", exit 4).
func TestBackupOfAClusterConfiguredOutsideItsDataDirectory(t *testing.T) {
	pgtest.Require(t)
	base := pgtest.Dir(t)
	store := localBackend{dir: filepath.Join(base, "repo")}
	p := newCluster(t, store, base, "primary")
	p.Conf("archive_mode = on", commandLine(t, store, "walship-archive"), "archive_timeout = 0")
	etc := pgtest.Mkdir(t, filepath.Join(base, "etc"))
	for _, f := range []string{"postgresql.conf", "pg_hba.conf", "pg_ident.conf"} {
		if err := os.Rename(filepath.Join(p.Data, f), filepath.Join(etc, f)); err != nil {
			t.Fatal(err)
		}
	}
	f, err := os.OpenFile(filepath.Join(etc, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(f, "data_directory = '%s'\nhba_file = '%s/pg_hba.conf'\nident_file = '%s/pg_ident.conf'\n", p.Data, etc, etc)
	f.Close()
	start := pgtest.Command(t, p.Server.Tool("pg_ctl"), "-D", etc, "-l", p.LogFile, "-w", "-t", "120", "start")
	start.Env = append(start.Env, p.Env...)
	if out, err := start.CombinedOutput(); err != nil {
		t.Fatalf("pg_ctl -D %s start: %v\n%s", etc, err, out)
	}
	defer pgtest.RunErr(t, p.Server.Tool("pg_ctl"), "-D", p.Data, "-m", "immediate", "-w", "stop")
	p.Query("CREATE TABLE t AS SELECT generate_series(1, 1000) AS x")
	id, _ := backupCreate(t, store, p)
	p.Query("INSERT INTO t SELECT generate_series(1, 500)")
	switchAndArchive(t, p)

	c, r := backupRestore(t, store, base, "copy", "--start", "--set", "unix_socket_directories="+base)
	if r.code != 0 || !strings.Contains(r.stdout, "restored backup "+id) || !strings.Contains(r.stdout, "was promoted") {
		t.Fatalf("walship backup restore --start of a backup without postgresql.conf: %s", r)
	}
	if !strings.Contains(r.stdout, "the backup holds no postgresql.conf, pg_hba.conf, pg_ident.conf") {
		t.Errorf("the summary does not say what restore wrote: %s", r.stdout)
	}
	if got := c.Query("SELECT count(*) FROM t"); got != "1500" {
		t.Errorf("the copy has %s rows, want 1500", got)
	}
	hba, _ := os.ReadFile(filepath.Join(c.Data, "pg_hba.conf"))
	if strings.Contains(string(hba), "host") || !strings.Contains(string(hba), "peer") {
		t.Errorf("pg_hba.conf of the copy:\n%s", hba)
	}
}

// writesUnnamedIn reports whether some process has an unnamed file
// (O_TMPFILE, not yet linked) open in a directory under dir: an object on
// its way into a local repository.
func writesUnnamedIn(dir string) bool {
	fds, _ := filepath.Glob("/proc/[0-9]*/fd/*")
	for _, fd := range fds {
		if target, err := os.Readlink(fd); err == nil && strings.HasPrefix(target, dir+"/") && strings.HasSuffix(target, " (deleted)") {
			return true
		}
	}
	return false
}

// TestBackupRestoreKilledAndRacing: walship backup restore killed with
// SIGKILL half-way leaves nothing in place in NEWDIR, only its staging
// directory, which no lock holds; the next restore into NEWDIR removes it
// and restores a cluster that starts with every row. Of two restores
// started together into one NEWDIR, one restores and the other is refused
// in one line, touching nothing. Through S3 with 20 ms added to every
// request, so that a restore lasts long enough to be killed half-way.
func TestBackupRestoreKilledAndRacing(t *testing.T) {
	pgtest.Require(t)
	base := pgtest.Dir(t)
	store := newBackend(t, "s3+20ms", base, s3Server(t))
	p := archivingPrimary(t, store, base, "primary")
	p.Pgbench("-i", "-s", "2", "-q")
	id, _ := backupCreate(t, store, p)
	want := p.Query("SELECT count(*) || ':' || sum(abalance) FROM pgbench_accounts")
	switchAndArchive(t, p)
	restored := func(what string, c *pgtest.Cluster, r result) {
		t.Helper()
		if r.code != 0 || !strings.Contains(r.stdout, "restored backup "+id) || !strings.Contains(r.stdout, "was promoted") {
			t.Fatalf("%s: %s", what, r)
		}
		if got := c.Query("SELECT count(*) || ':' || sum(abalance) FROM pgbench_accounts"); got != want {
			t.Errorf("%s: %s, want the primary's %s", what, got, want)
		}
		c.Stop("fast")
	}

	// A restore's staging directory, inside the directory it restores into.
	staging := func(e os.DirEntry) bool { return strings.HasPrefix(e.Name(), ".walship-restore-") }

	// Killed as soon as its staging directory holds a file.
	killed := attach(t, store, base, "killed")
	cmd := walshipCmd(t, runOpts{env: store.env()}, "walship", restoreArgs(store, killed, "--start")...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	staged := func() bool {
		ents, _ := os.ReadDir(killed.Data)
		for _, e := range ents {
			if files, _ := os.ReadDir(filepath.Join(killed.Data, e.Name())); staging(e) && len(files) > 0 {
				return true
			}
		}
		return false
	}
	for deadline := time.Now().Add(2 * time.Minute); !staged(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatal("walship backup restore staged nothing in 2 minutes")
		}
	}
	cmd.Process.Signal(syscall.SIGKILL)
	if err := cmd.Wait(); err == nil {
		t.Fatal("walship backup restore ended before SIGKILL reached it: nothing was tested")
	}
	ents, err := os.ReadDir(killed.Data)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if !staging(e) {
			t.Errorf("the killed restore left %s in place in %s", e.Name(), killed.Data)
		}
	}
	c, r := backupRestore(t, store, base, "killed", "--start")
	if !strings.Contains(r.stderr, "removing what an interrupted restore left") {
		t.Errorf("the restore after the killed one did not say it removed its staging: %s", r)
	}
	restored("the restore after a killed one", c, r)
	if ents, _ := os.ReadDir(c.Data); slices.ContainsFunc(ents, staging) {
		t.Errorf("a staging directory stayed in %s", c.Data)
	}

	// Two at once: at most one goes on.
	twice := attach(t, store, base, "twice")
	var cmds [2]*exec.Cmd
	var outs [2]struct{ stdout, stderr bytes.Buffer }
	for i := range cmds {
		cmds[i] = walshipCmd(t, runOpts{env: store.env()}, "walship", restoreArgs(store, twice, "--start")...)
		cmds[i].Stdout, cmds[i].Stderr = &outs[i].stdout, &outs[i].stderr
	}
	for _, cmd := range cmds {
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
	}
	var won []result
	for i, cmd := range cmds {
		err := cmd.Wait()
		r := result{stdout: outs[i].stdout.String(), stderr: outs[i].stderr.String(), code: cmd.ProcessState.ExitCode()}
		if err == nil {
			won = append(won, r)
			continue
		}
		wantOneLine(t, "a restore into a directory another restore writes into", r, []int{1}, "walship", twice.Data)
		if !strings.Contains(r.stderr, "another walship backup restore is writing into") && !strings.Contains(r.stderr, " holds ") {
			t.Errorf("the restore refused does not say why: %q", r.stderr)
		}
	}
	twice.Running()
	t.Logf("of two restores started together, %d went on", len(won))
	switch len(won) {
	case 2:
		t.Fatalf("two restores into one directory both went on:\n%s\n%s", won[0], won[1])
	case 0: // both looked while the other's staging was there: nothing is left
		if ents, err := os.ReadDir(twice.Data); err == nil && len(ents) > 0 {
			t.Fatalf("two restores refused each other and left %d entries in %s", len(ents), twice.Data)
		}
		c, r := backupRestore(t, store, base, "twice", "--start")
		restored("a restore after two refused each other", c, r)
	default:
		restored("the one of two restores that went on", twice, won[0])
	}
}
