package test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/walship/walship/internal/testenv/pgtest"
	"github.com/walship/walship/repo"
)

// Incremental backups (PostgreSQL 17 and later) with walship backup
// create --incremental, restored by walship backup restore straight from
// the repository. PostgreSQL's own tests of pg_combinebackup
// (src/bin/pg_combinebackup/t) are the checklist; each scenario that
// applies holds with walship's restore in its place:
//
//   - 002_compare_backups (a restore of the chain equals the primary,
//     tablespace included), 006_db_file_copy (CREATE DATABASE STRATEGY
//     file_copy between members), 011_ib_truncation (a relation truncated
//     at its end by VACUUM between members): TestIncremental;
//   - 003_timeline and 008_promote (a parent on another timeline; a server
//     promoted at an arbitrary LSN, then an incremental of it):
//     TestIncrementalTimeline;
//   - 005_integrity (a member missing or damaged, a chain that does not
//     link up) and 009_no_full_file: TestIncremental (a member removed by
//     hand) and backup's unit tests (TestRebuildRefusesDamage);
//   - 001_basic, 004_manifest, 007_wal_level_minimal, 010_hardlink are
//     about pg_combinebackup's options, its output manifest, and a server
//     with wal_level = minimal, which takes no replication connection.

// incremental is one primary backed up incrementally into a store.
type incremental struct {
	t       *testing.T
	base    string
	store   archiveBackend
	srv     pgtest.Server
	p       *pgtest.Cluster
	create  []string // flags of backup create (the recipient)
	restore []string // flags of backup restore (the identity)
}

// newIncremental starts a primary of srv archiving into store, encrypted
// when enc, with summarize_wal on.
func newIncremental(t *testing.T, srv pgtest.Server, kind string, enc bool) *incremental {
	base := pgtest.Dir(t)
	store := newBackend(t, kind, base, s3Server(t))
	in := &incremental{t: t, base: base, store: store, srv: srv}
	var archive []string
	if enc {
		rcpt, idFile, _ := ageKey(t, base, "k")
		pgtest.Chown(t, idFile)
		archive = []string{"--recipient", rcpt}
		// An incremental backup reads its parent's manifest: the identity.
		in.create, in.restore = []string{"--recipient", rcpt, "--identity", idFile}, []string{"--identity", idFile}
	}
	in.p = pgtest.NewCluster(t, base, "primary", pgtest.InitOptions{Server: &srv})
	in.p.Env = store.env()
	in.p.Conf("archive_mode = on", commandLine(t, store, "walship-archive", archive...), "archive_timeout = 0", "summarize_wal = on")
	in.p.Start()
	return in
}

// backup runs walship backup create on c and returns the backup's ID.
func (in *incremental) backup(c *pgtest.Cluster, flags ...string) string {
	in.t.Helper()
	id, summary := backupCreate(in.t, in.store, c, append(append([]string{}, in.create...), flags...)...)
	in.t.Logf("%s", summary)
	return id
}

// restoreStart restores into base/name and starts the copy (promoted at
// the target).
func (in *incremental) restoreStart(name string, flags ...string) (*pgtest.Cluster, result) {
	in.t.Helper()
	c, r := backupRestore(in.t, in.store, in.base, name, append(append([]string{"--start", "--pg-bin", in.srv.Bin}, in.restore...), flags...)...)
	c.Server = in.srv
	return c, r
}

// fingerprint is every user table of the database db on c: its name, its
// rows counted and digested, and the databases of the cluster.
func fingerprint(t *testing.T, c *pgtest.Cluster, db string) string {
	t.Helper()
	sql := `SELECT coalesce(string_agg(table_name || '=' || (xpath('/row/f/text()', query_to_xml(format(
		'SELECT count(*) || ''/'' || md5(coalesce(string_agg(t::text, '','' ORDER BY t::text), '''')) AS f FROM %I.%I t',
		table_schema, table_name), false, true, '')))[1]::text, ' ' ORDER BY table_name), '')
		FROM information_schema.tables WHERE table_schema = 'public' AND table_type = 'BASE TABLE'`
	out := pgtest.Run(t, pgtest.Tool(t, "psql"), "-X", "-q", "-At", "-h", c.Socket, "-p", fmt.Sprint(c.Port), "-U", "postgres", "-d", db, "-c", sql)
	return strings.TrimSpace(out) + " dbs=" + c.Query("SELECT string_agg(datname, ',' ORDER BY datname) FROM pg_database")
}

// visibilityWrong counts the tuples of c's database that the visibility
// map says are visible to all but are not (pg_visibility's
// pg_check_visible, over every table): a stale map makes index-only
// scans return rows they should not.
func visibilityWrong(t *testing.T, c *pgtest.Cluster) string {
	t.Helper()
	c.Query("CREATE EXTENSION IF NOT EXISTS pg_visibility")
	return c.Query(`SELECT coalesce(sum((SELECT count(*) FROM pg_check_visible(c.oid))), 0) FROM pg_class c WHERE relkind IN ('r', 'm', 't')`)
}

type listedChain struct {
	ID         string `json:"id"`
	Type       string `json:"type"`
	Parent     string `json:"parent"`
	Restorable bool   `json:"restorable"`
	Reason     string `json:"reason"`
}

func (in *incremental) list() map[string]listedChain {
	in.t.Helper()
	r := walship(in.t, runOpts{env: in.store.env()}, "walship", append(append([]string{"backup", "list"}, in.store.flags()...), "--json")...)
	var l []listedChain
	if err := json.Unmarshal([]byte(r.stdout), &l); r.code != 0 || err != nil {
		in.t.Fatalf("walship backup list --json: %s (%v)", r, err)
	}
	out := map[string]listedChain{}
	for _, b := range l {
		out[b.ID] = b
	}
	return out
}

// TestIncremental: a full backup and three incrementals with writes
// between them (a table truncated, a table dropped, one created, a
// database created with file_copy, a relation cut at its end by VACUUM, a
// tablespace), restored to the latest and to a point between two members:
// each copy holds exactly the primary's data at its target. An interrupted
// incremental leaves nothing listed; a member removed by hand is reported
// by verify and refused by restore. On 17 and 18, each on a local and an
// S3 repository, encrypted and not.
func TestIncremental(t *testing.T) {
	for _, c := range []struct {
		major int
		kind  string
		enc   bool
	}{{17, "local", false}, {17, "s3", true}, {18, "local", true}, {18, "s3", false}} {
		name := fmt.Sprintf("pg%d/%s", c.major, c.kind)
		if c.enc {
			name += "/encrypted"
		}
		t.Run(name, func(t *testing.T) {
			pgtest.Require(t)
			incrementalLife(t, newIncremental(t, pgtest.Major(t, c.major), c.kind, c.enc))
		})
	}
}

func incrementalLife(t *testing.T, in *incremental) {
	p := in.p
	ts := tablespaceDir(t, in.base, "ts")
	p.Query("CREATE TABLESPACE extra LOCATION '" + ts + "'")
	p.Pgbench("-i", "-s", "2", "-q")
	p.Query("CREATE TABLE cut AS SELECT g AS n, md5(g::text) AS s FROM generate_series(1, 20000) g")
	p.Query("CREATE TABLE gone AS SELECT g AS n FROM generate_series(1, 5000) g")
	p.Query("CREATE TABLE far (n int, s text) TABLESPACE extra")
	p.Query("INSERT INTO far SELECT g, md5(g::text) FROM generate_series(1, 3000) g")
	// 011_ib_truncation: one row a page, the last pages cut by VACUUM later.
	p.Query("CREATE TABLE shrink (id int, data text STORAGE PLAIN) WITH (autovacuum_enabled = false)")
	p.Query("INSERT INTO shrink SELECT i, repeat('0123456789ABCDEF0123456789ABCDEF', 128) FROM generate_series(1, 40) i")
	p.Query("VACUUM shrink")

	full := in.backup(p)
	p.Pgbench("-c", "2", "-j", "1", "-t", "200", "-n")
	p.Query("TRUNCATE cut")
	p.Query("INSERT INTO cut SELECT g, 'again' FROM generate_series(1, 100) g")
	p.Query("DELETE FROM shrink WHERE id > 25")
	p.Query("VACUUM (TRUNCATE) shrink")
	p.Query("INSERT INTO far SELECT g, 'more' FROM generate_series(1, 500) g")
	inc1 := in.backup(p, "--incremental")

	p.Pgbench("-c", "2", "-j", "1", "-t", "200", "-n")
	p.Query("DROP TABLE gone")
	p.Query("CREATE TABLE born AS SELECT g AS n FROM generate_series(1, 7000) g")
	p.Query("CREATE DATABASE other STRATEGY file_copy")
	pgtest.Run(t, pgtest.Tool(t, "psql"), "-X", "-q", "-h", p.Socket, "-p", fmt.Sprint(p.Port), "-U", "postgres", "-d", "other",
		"-c", "CREATE TABLE there AS SELECT g AS n FROM generate_series(1, 1234) g")
	switchAndArchive(t, p)
	between, betweenOther := fingerprint(t, p, "postgres"), fingerprint(t, p, "other")
	mark := p.Query("SELECT pg_current_wal_lsn()")

	p.Pgbench("-c", "2", "-j", "1", "-t", "200", "-n")
	p.Query("UPDATE far SET s = 'changed' WHERE n % 7 = 0")
	inc2 := in.backup(p, "--incremental")
	p.Pgbench("-c", "2", "-j", "1", "-t", "200", "-n")
	inc3 := in.backup(p, "--incremental-or-full")
	p.Query("INSERT INTO born SELECT g FROM generate_series(1, 10) g")
	switchAndArchive(t, p)
	latest, latestOther := fingerprint(t, p, "postgres"), fingerprint(t, p, "other")

	list := in.list()
	for id, want := range map[string]string{full: "", inc1: full, inc2: inc1, inc3: inc2} {
		b := list[id]
		typ := "incremental"
		if want == "" {
			typ = "full"
		}
		if b.Type != typ || b.Parent != want || !b.Restorable {
			t.Errorf("backup list: %s is %+v, want %s on %q, restorable", id, b, typ, want)
		}
	}

	c, r := in.restoreStart("latest", "-T", ts+"="+filepath.Join(in.base, "ts-latest"))
	if r.code != 0 || !strings.Contains(r.stdout, "restored backup "+inc3) || !strings.Contains(r.stdout, "rebuilt from 4 backups") {
		t.Fatalf("restore to the latest: %s", r)
	}
	if got := fingerprint(t, c, "postgres"); got != latest {
		t.Errorf("restored to the latest:\n%s\nwant the primary's\n%s", got, latest)
	}
	if got := fingerprint(t, c, "other"); got != latestOther {
		t.Errorf("restored to the latest, database other:\n%s\nwant\n%s", got, latestOther)
	}
	if got := c.Query("SELECT pg_relation_size('shrink') / current_setting('block_size')::int"); got != "25" {
		t.Errorf("the truncated relation has %s blocks, want 25", got)
	}
	if n := visibilityWrong(t, c); n != "0" {
		t.Errorf("restored to the latest, the visibility map says %s tuples are visible to all that are not", n)
	}
	c.Stop("fast")

	c, r = in.restoreStart("between", "--target-lsn", mark, "-T", ts+"="+filepath.Join(in.base, "ts-between"))
	if r.code != 0 || !strings.Contains(r.stdout, "restored backup "+inc1) || !strings.Contains(r.stdout, "rebuilt from 2 backups") {
		t.Fatalf("restore to %s, between %s and %s: %s", mark, inc1, inc2, r)
	}
	if got := fingerprint(t, c, "postgres"); got != between {
		t.Errorf("restored to %s:\n%s\nwant the primary's then\n%s", mark, got, between)
	}
	if got := fingerprint(t, c, "other"); got != betweenOther {
		t.Errorf("restored to %s, database other:\n%s\nwant\n%s", mark, got, betweenOther)
	}
	if n := visibilityWrong(t, c); n != "0" {
		t.Errorf("restored to %s, the visibility map says %s tuples are visible to all that are not", mark, n)
	}
	c.Stop("fast")

	r = walship(t, runOpts{env: in.store.env()}, "walship", append(append([]string{"verify", "--full"}, in.store.flags()...), in.restore...)...)
	if r.code != 0 {
		t.Errorf("walship verify --full: %s", r)
	}

	// An incremental stopped half-way leaves nothing listed.
	args := append(append(append([]string{"backup", "create"}, in.store.flags()...), in.create...),
		"-d", p.ConnString(), "--checkpoint", "fast", "--incremental", "--max-rate", "32k")
	cmd := walshipCmd(t, runOpts{env: in.store.env()}, "walship", args...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pgtest.Eventually(t, 60*time.Second, "the interrupted incremental to claim its ID", func() bool {
		for _, k := range backupKeys(t, in.store) {
			if strings.HasSuffix(k, "/"+repo.ClaimPart.String()+".lz4") {
				return true
			}
		}
		return false
	})
	time.Sleep(time.Second)
	cmd.Process.Signal(syscall.SIGTERM)
	cmd.Wait()
	if after := in.list(); len(after) != len(list) {
		t.Errorf("after an interrupted incremental backup list shows %d backups, %d before", len(after), len(list))
	}

	ctx, cancel := ioContext()
	defer cancel()
	// A member below the newest damaged (a byte of inc1's tar changed):
	// restore of inc3 refuses in one line naming it, NEWDIR as it was.
	b := in.store.store(t)
	key := repo.BackupObject{ID: repo.BackupID(inc1), Part: repo.BasePart}.Key()
	replace := func(data []byte) {
		t.Helper()
		if err := b.Remove(ctx, key); err != nil {
			t.Fatal(err)
		}
		if err := b.Put(ctx, key, bytes.NewReader(data), int64(len(data))); err != nil {
			t.Fatal(err)
		}
		if lb, ok := in.store.(localBackend); ok {
			pgtest.Chown(t, filepath.Join(lb.dir, filepath.FromSlash(key))) // the test runs as root
		}
	}
	rc, err := b.Open(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	orig, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		t.Fatal(err)
	}
	bad := bytes.Clone(orig)
	bad[len(bad)*2/3] ^= 0x10
	replace(bad)
	_, r = backupRestore(t, in.store, in.base, "damaged",
		append([]string{"--backup", inc3, "-T", ts + "=" + filepath.Join(in.base, "ts-damaged")}, in.restore...)...)
	wantOneLine(t, "a restore of a chain with a damaged member", r, []int{1}, "walship", "damaged backup", inc1)
	for _, d := range []string{"damaged", "ts-damaged"} {
		if _, err := os.Lstat(filepath.Join(in.base, d)); !os.IsNotExist(err) {
			t.Errorf("the refused restore left %s (%v)", filepath.Join(in.base, d), err)
		}
	}
	replace(orig)

	// A member removed by hand: verify says so, restore refuses.
	if err := in.store.store(t).Remove(ctx, repo.BackupObject{ID: repo.BackupID(inc2), Part: repo.BasePart}.Key()); err != nil {
		t.Fatal(err)
	}
	r = walship(t, runOpts{env: in.store.env()}, "walship", append([]string{"verify"}, in.store.flags()...)...)
	if r.code != 1 || !strings.Contains(r.stdout, inc2) || !strings.Contains(r.stdout, inc3) {
		t.Errorf("walship verify with %s's base.tar removed: %s, want exit 1 naming %s and %s, which builds on it", inc2, r, inc2, inc3)
	}
	_, r = backupRestore(t, in.store, in.base, "broken", append([]string{"--backup", inc3}, in.restore...)...)
	wantOneLine(t, "a restore of a chain missing a member", r, []int{1}, "walship", inc2)
	if _, err := os.Lstat(filepath.Join(in.base, "broken")); !os.IsNotExist(err) {
		t.Errorf("the refused restore left %s (%v)", filepath.Join(in.base, "broken"), err)
	}
	// To the latest, restore takes the newest backup it can restore, and
	// says which newer one it passed over.
	_, r = backupRestore(t, in.store, in.base, "fallback", append([]string{"-T", ts + "=" + filepath.Join(in.base, "ts-fallback")}, in.restore...)...)
	if r.code != 0 || !strings.Contains(r.stdout, "restored backup "+inc1) || !strings.Contains(r.stderr, "backup "+inc3+" is newer but cannot be restored") {
		t.Errorf("a restore to the latest with %s's chain broken: %s, want %s restored and a warning", inc3, r, inc1)
	}
}
