package test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/walship/walship/internal/testenv/pgtest"
	"github.com/walship/walship/repo"
	"github.com/walship/walship/wal"
)

// TestArchiveRepush checks archive_command's promise for a file archived
// before: the same content again is success without touching the object,
// other content under the name is refused with one clear line and the
// stored object stays exactly as it was.
func TestArchiveRepush(t *testing.T) {
	a := startArchiving(t)
	name, orig := a.switchSegment(t)
	obj := objectPath(t, a.repo, name, repo.CodecLZ4)
	stored, err := os.ReadFile(obj)
	if err != nil {
		t.Fatalf("archived object: %v", err)
	}
	before := snapshot(t, a.repo)
	copyDir := filepath.Join(a.base, "copy")
	path := writeSegment(t, copyDir, name, orig)

	wantOK(t, "re-push of identical content", walship(t, runOpts{}, "walship-archive", "--repo", a.repo, path, name))
	wantOK(t, "re-push of identical content with the repository's --compress lz4",
		walship(t, runOpts{}, "walship-archive", "--repo", a.repo, "--compress", "lz4", path, name))
	// Identical content asked to be stored uncompressed: the repository
	// stores lz4 (walship.json), so the flag is refused, and nothing is
	// stored a second time.
	wantOneLine(t, "re-push with --compress none into an lz4 repository",
		walship(t, runOpts{}, "walship-archive", "--repo", a.repo, "--compress", "none", path, name),
		[]int{2}, "walship-archive", name, "compression lz4", "not none")
	sameSnapshot(t, "after identical re-pushes", before, snapshot(t, a.repo))

	changed := bytes.Clone(orig)
	changed[len(changed)/2] ^= 0xFF
	writeSegment(t, copyDir, name, changed)
	for _, args := range [][]string{{}, {"--compress", "lz4"}} {
		r := walship(t, runOpts{}, "walship-archive", append(append([]string{"--repo", a.repo}, args...), path, name)...)
		wantOneLine(t, fmt.Sprintf("re-push of different content %v", args), r, []int{1}, "walship-archive", name, "different content")
	}
	sameSnapshot(t, "after refused re-pushes", before, snapshot(t, a.repo))
	if now, _ := os.ReadFile(obj); !bytes.Equal(now, stored) {
		t.Errorf("stored object %s changed after a refused re-push", obj)
	}
	if got := restored(t, a.repo, name); !bytes.Equal(got, orig) {
		t.Errorf("restored %s differs from the segment the server wrote (%d bytes, want %d)", name, len(got), len(orig))
	}
	if failed := a.pg.Int("SELECT failed_count FROM pg_stat_archiver"); failed != 0 {
		t.Errorf("server's failed_count = %d, want 0", failed)
	}
}

// TestArchiveRefusesOtherCluster points a second cluster (its own initdb,
// so another system identifier) at the archive of a first one, on every
// backend. The first cluster's identity file is in the archive; every
// attempt of the second is refused with one line naming both system
// identifiers, its segment and the archive; the server keeps the WAL and
// retries; and the archive is left exactly as the first cluster made it,
// its WAL still served.
func TestArchiveRefusesOtherCluster(t *testing.T) {
	forEachBackend(t, func(t *testing.T, base string, store archiveBackend) {
		a := &archiving{base: base, pg: newCluster(t, store, base, "primary")}
		a.pg.Conf("archive_mode = on", commandLine(t, store, "walship-archive"))
		a.pg.Start()
		name, orig := a.switchSegment(t)
		sysA := sysID(t, a.pg)
		id, identity := readIdentity(t, store)
		if id.SystemID != sysA || id.SegSize != segSize || id.Layout != repo.LayoutWalship {
			t.Errorf("identity file in %s: %s, want system %d, 16MB segments, walship layout", store, identity, sysA)
		}
		before := store.objects(t)

		b := newCluster(t, store, base, "other")
		b.Conf("archive_mode = on", commandLine(t, store, "walship-archive"))
		b.Start()
		sysB := sysID(t, b)
		if sysA == sysB {
			t.Fatalf("both clusters have system identifier %d", sysA)
		}
		b.Query("CREATE TABLE t AS SELECT generate_series(1, 1000) i")
		segB := b.Query("SELECT pg_walfile_name(pg_current_wal_lsn())")
		b.Query("SELECT pg_switch_wal()")

		var first int64
		pgtest.Eventually(t, 60*time.Second, "the second cluster's first failed archive attempt", func() bool {
			first = pgStat(b, "failed_count")
			return first > 0
		})
		pgtest.Eventually(t, 60*time.Second, "the second cluster to retry", func() bool {
			return pgStat(b, "failed_count") > first
		})
		if got := b.Query("SELECT coalesce(last_failed_wal, '') FROM pg_stat_archiver"); got != segB {
			t.Errorf("last_failed_wal = %q, want %q", got, segB)
		}
		if got := pgStat(b, "archived_count"); got != 0 {
			t.Errorf("second cluster archived_count = %d, want 0", got)
		}
		if _, err := os.Stat(filepath.Join(b.Data, "pg_wal", "archive_status", segB+".ready")); err != nil {
			t.Errorf("the server should keep %s waiting for archiving: %v", segB, err)
		}
		line := logLine(b.Log(), "walship-archive: ")
		for _, w := range []string{strconv.FormatUint(sysA, 10), strconv.FormatUint(sysB, 10), segB, store.String()} {
			if !strings.Contains(line, w) {
				t.Errorf("server log line of walship-archive = %q, want one naming %s", line, w)
			}
		}

		// The archive holds the first cluster's WAL and nothing else,
		// exactly as it was.
		sameObjects(t, store.String()+" after the refused cluster", before, store.objects(t))
		if _, now := readIdentity(t, store); !bytes.Equal(now, identity) {
			t.Errorf("identity file changed:\n%s\nwas:\n%s", now, identity)
		}
		segs := storedSegments(t, store)
		if archivedA := pgStat(a.pg, "archived_count"); int64(len(segs)) != archivedA {
			t.Errorf("%s holds %d segments, the first cluster archived %d", store, len(segs), archivedA)
		}
		for _, n := range segs {
			data, err := readWAL(t, store, n)
			if err != nil {
				t.Errorf("reading %s: %v", n, err)
				continue
			}
			if h, err := wal.ParseLongHeader(data); err != nil || h.SysID != sysA {
				t.Errorf("%s in %s: header %+v, %v; want system %d", n, store, h, err, sysA)
			}
		}
		if l := leftovers(t, store); len(l) > 0 {
			t.Errorf("%s holds files that are no WAL of the first cluster: %v", store, l)
		}
		// The first cluster's WAL is still served, to walship-restore as
		// the server runs it and in the test's process.
		if got := restoreFrom(t, store, name); !bytes.Equal(got, orig) {
			t.Errorf("restored %s of the first cluster differs from what it wrote", name)
		}
		if data, err := readWAL(t, store, mustName(t, name)); err != nil || !bytes.Equal(data, orig) {
			t.Errorf("%s in %s differs from what the first cluster wrote (%v)", name, store, err)
		}
	})
}

// TestArchiveObjectModes checks that the repository is private to the
// server's user: objects 0600, directories 0700, all owned by that user.
func TestArchiveObjectModes(t *testing.T) {
	a := startArchiving(t)
	a.switchSegment(t)
	// A backup history file (text, stored uncompressed) too.
	a.pg.Query("SELECT pg_backup_start('modes', true); SELECT pg_backup_stop()")
	a.switchSegment(t)
	uid, gid := serverUser(t)
	kinds := map[string]int{}
	err := filepath.WalkDir(a.repo, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		want := fs.FileMode(0o600)
		if fi.IsDir() {
			want = fs.ModeDir | 0o700
		}
		if fi.Mode() != want {
			t.Errorf("%s: mode %v, want %v", path, fi.Mode(), want)
		}
		st := fi.Sys().(*syscall.Stat_t)
		if st.Uid != uid || st.Gid != gid {
			t.Errorf("%s: owned by %d:%d, want the server's user %d:%d", path, st.Uid, st.Gid, uid, gid)
		}
		rel, _ := filepath.Rel(a.repo, path)
		if n, _, _, ok := repo.ParseKey(filepath.ToSlash(rel)); ok {
			kinds[n.Kind.String()]++
		} else if !fi.IsDir() {
			kinds[rel]++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(kinds) < 3 {
		t.Errorf("repository holds %v, want segments, a backup history file and %s", kinds, repo.IdentityKey)
	}
	t.Logf("checked %v", kinds)
}

// TestArchiveKilled kills walship-archive at random points of storing a real
// segment into a fresh repository: afterwards the object is either absent
// or complete, nothing but dot-files is partial, and the next run stores
// the segment so that it restores byte-identical.
func TestArchiveKilled(t *testing.T) {
	a := startArchiving(t)
	name, orig := a.switchSegment(t)
	sys := sysID(t, a.pg)
	a.pg.Stop("fast")
	path := writeSegment(t, filepath.Join(a.base, "src"), name, orig)

	// A run, timed: from start to exit, and from the moment the segment's
	// directory appears in the fresh repository (the store begins) to exit.
	segDir := func(repoDir string) string { return filepath.Dir(objectPath(t, repoDir, name, repo.CodecLZ4)) }
	type timing struct{ total, store time.Duration }
	startRun := func(repoDir string) (*exec.Cmd, chan error) {
		cmd := walshipCmd(t, runOpts{}, "walship-archive", "--repo", repoDir, path, name)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		return cmd, done
	}
	// waitDir polls for dir until it exists or the run ends.
	waitDir := func(dir string, done chan error) (ended bool, err error) {
		for {
			select {
			case err := <-done:
				return true, err
			default:
			}
			if _, err := os.Stat(dir); err == nil {
				return false, nil
			}
			time.Sleep(200 * time.Microsecond)
		}
	}

	// Undisturbed runs, to know how long a run and its store take (the
	// medians of three).
	var totals, stores []time.Duration
	for i := range 3 {
		probe := filepath.Join(a.base, fmt.Sprintf("probe%d", i))
		begin := time.Now()
		_, done := startRun(probe)
		ended, err := waitDir(segDir(probe), done)
		seen := time.Now()
		if !ended {
			err = <-done
		}
		if err != nil {
			t.Fatalf("undisturbed run: %v", err)
		}
		totals, stores = append(totals, time.Since(begin)), append(stores, time.Since(seen))
		if got := restored(t, probe, name); !bytes.Equal(got, orig) {
			t.Fatalf("undisturbed run: restored %s differs from the original", name)
		}
	}
	slices.Sort(totals)
	slices.Sort(stores)
	typical := timing{totals[1], max(stores[1], time.Millisecond)}

	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, seed>>1))
	t.Logf("typical run %v, of which storing %v; random seed %d", typical.total, typical.store, seed)
	const runs = 30
	var absent, complete, finished, dotFiles int
	for i := range runs {
		repoDir := filepath.Join(a.base, fmt.Sprintf("repo%02d", i))
		cmd, done := startRun(repoDir)
		// Even runs: killed anywhere in a typical run. Odd runs: killed
		// while the object is being stored, where a partial file could
		// become visible (the rest of a run is start-up, reading and lz4).
		ended, err := false, error(nil)
		if i%2 == 0 {
			time.Sleep(time.Duration(rng.Int64N(int64(typical.total))))
		} else if ended, err = waitDir(segDir(repoDir), done); !ended {
			time.Sleep(time.Duration(rng.Int64N(int64(typical.store))))
		}
		if !ended {
			cmd.Process.Signal(syscall.SIGKILL)
			err = <-done
		}
		if err == nil {
			finished++
		}

		have := false
		for rel, st := range snapshot(t, repoDir) {
			base := filepath.Base(rel)
			switch {
			case st.mode.IsDir():
			case strings.HasPrefix(base, "."):
				dotFiles++
			case rel == repo.IdentityKey:
				var id repo.Identity
				data, _ := os.ReadFile(filepath.Join(repoDir, rel))
				if err := json.Unmarshal(data, &id); err != nil || id.SystemID != sys || id.SegSize != segSize {
					t.Errorf("run %d: partial or wrong identity file %q (%v)", i, data, err)
				}
			case filepath.Join(repoDir, rel) == objectPath(t, repoDir, name, repo.CodecLZ4):
				have = true
				if got, err := decodeObject(t, repoDir, name); err != nil || !bytes.Equal(got, orig) {
					t.Errorf("run %d: visible object %s is not the complete segment: %d bytes, %v", i, rel, len(got), err)
				}
			default:
				t.Errorf("run %d: unexpected file %s in the repository", i, rel)
			}
		}
		if have {
			complete++
		} else {
			absent++
		}

		wantOK(t, fmt.Sprintf("run %d: archiving again after the kill", i), walship(t, runOpts{}, "walship-archive", "--repo", repoDir, path, name))
		if got, err := decodeObject(t, repoDir, name); err != nil || !bytes.Equal(got, orig) {
			t.Errorf("run %d: after the second run the object is not the segment: %d bytes, %v", i, len(got), err)
		}
		if i%10 == 9 { // and now and then through the binary as PostgreSQL would
			if got := restored(t, repoDir, name); !bytes.Equal(got, orig) {
				t.Errorf("run %d: walship-restore gives other bytes than the segment", i)
			}
		}
	}
	t.Logf("%d kills: %d left no object, %d a complete one (%d runs finished first); %d temporary dot-files left", runs, absent, complete, finished, dotFiles)
}

// damagedArchive is a cluster archived into a repository, base backups
// taken before a segment that recovery needs after reaching a consistent
// state, and that segment's stored object damaged.
type damagedArchive struct {
	base         string
	repo         string
	seg          string // the damaged segment
	backups      []*pgtest.Cluster
	restoreFlags []string // for walship-restore, beside --repo
}

// damageArchive archives with compress, takes n base backups, writes the
// segment seg and one more after them, then applies damage to seg's object.
func damageArchive(t *testing.T, compress string, n int, damage func(t *testing.T, obj string)) *damagedArchive {
	t.Helper()
	return damageArchiveWith(t, []string{"--compress", compress}, nil, n, damage)
}

// damageArchiveWith is damageArchive with walship-archive's flags and the
// flags walship-restore needs to read the archive (keys, say); keys makes
// them in the test's directory.
func damageArchiveWith(t *testing.T, archiveFlags, restoreFlags []string, n int, damage func(t *testing.T, obj string), keys ...func(base string) (archive, restore []string)) *damagedArchive {
	t.Helper()
	pgtest.Require(t)
	base := pgtest.Dir(t)
	d := &damagedArchive{base: base, repo: filepath.Join(base, "repo"), restoreFlags: restoreFlags}
	for _, k := range keys {
		a, r := k(base)
		archiveFlags, d.restoreFlags = append(archiveFlags, a...), append(d.restoreFlags, r...)
	}
	compress := "lz4"
	for i, f := range archiveFlags {
		if f == "--compress" && i+1 < len(archiveFlags) {
			compress = archiveFlags[i+1]
		}
	}
	p := pgtest.NewCluster(t, base, "primary", pgtest.InitOptions{})
	p.Conf("archive_mode = on", pgtest.ArchiveCommand(t, d.repo, archiveFlags...))
	p.Start()
	p.Query("CREATE TABLE t (i int)")
	for i := range n {
		d.backups = append(d.backups, p.BaseBackup(base, fmt.Sprintf("backup%d", i)))
	}
	// The backups end with a segment switch. The next segment gets a few
	// MB of WAL, more than recovery decodes ahead (wal_decode_buffer_size),
	// so the server is consistent before it asks for seg: answering "not
	// found" for seg would end recovery there, silently.
	p.Query("INSERT INTO t SELECT generate_series(1, 50000)")
	p.Query("SELECT pg_switch_wal()")
	p.Query("INSERT INTO t SELECT generate_series(1, 1000)")
	d.seg = p.Query("SELECT pg_walfile_name(pg_current_wal_lsn())")
	p.Query("SELECT pg_switch_wal()")
	p.WaitQuery("SELECT last_archived_wal >= '"+d.seg+"' FROM pg_stat_archiver", "t", 60*time.Second)
	p.Stop("immediate")
	c := repo.CodecLZ4
	if compress == "none" {
		c = repo.CodecNone
	}
	damage(t, objectPath(t, d.repo, d.seg, c))
	return d
}

// flipMiddle inverts a few bytes in the middle of a file, in place.
func flipMiddle(t *testing.T, path string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for i := len(data) / 2; i < len(data)/2+16; i++ {
		data[i] ^= 0xFF
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// truncateHalf cuts a file to half its length, in place.
func truncateHalf(t *testing.T, path string) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, fi.Size()/2); err != nil {
		t.Fatal(err)
	}
}

// wantRecoveryAborted runs archive recovery (recovery.signal, default
// --on-error) of b and checks that the damaged segment stops it with FATAL
// instead of letting it end early: the server goes down without ever
// leaving recovery.
func wantRecoveryAborted(t *testing.T, d *damagedArchive, b *pgtest.Cluster) {
	t.Helper()
	b.Conf(pgtest.RestoreCommand(t, d.repo, d.restoreFlags...), "archive_mode = off")
	b.Touch("recovery.signal")
	b.StartNoWait()
	pgtest.Eventually(t, 120*time.Second, "the server to stop after the restore_command failure", func() bool {
		if out, err := b.QueryErr("SELECT pg_is_in_recovery()"); err == nil && out == "f" {
			t.Fatalf("recovery finished short of the damaged segment %s; log:\n%s", d.seg, b.Log())
		}
		return strings.Contains(b.Log(), "could not restore file") && !b.Running()
	})
	log := b.Log()
	consistent := strings.Index(log, "consistent recovery state reached")
	fatal := strings.Index(log, `FATAL:  could not restore file "`+d.seg+`" from archive`)
	if fatal < 0 {
		t.Errorf("server log lacks PostgreSQL's FATAL about restoring %s", d.seg)
	}
	if consistent < 0 || consistent > fatal {
		// Then an early end of recovery would not go unnoticed, and the
		// test would not show what it means to.
		t.Errorf("the server was not consistent before it asked for %s", d.seg)
	}
	if line := logLine(log, "walship-restore: "); !strings.Contains(line, d.seg) || !strings.Contains(line, "corrupt") {
		t.Errorf("walship-restore's line in the server log = %q, want one naming %s as corrupt", line, d.seg)
	}
	for _, bad := range []string{"archive recovery complete", "selected new timeline ID", "database system is ready to accept connections"} {
		if strings.Contains(log, bad) {
			t.Errorf("server log shows %q: recovery ended instead of stopping", bad)
		}
	}
	if _, err := os.Stat(filepath.Join(b.Data, "pg_wal", "00000002.history")); err == nil {
		t.Errorf("the server switched to a new timeline")
	}
}

// logLine is the first line of log starting with prefix.
func logLine(log, prefix string) string {
	for _, l := range strings.Split(log, "\n") {
		if strings.HasPrefix(l, prefix) {
			return l
		}
	}
	return ""
}

// TestRestoreCorruptAbortsRecovery damages the lz4 object of a segment that
// a point-in-time recovery needs: the recovery must stop with FATAL rather
// than end early at the damaged segment. The same damaged object seen by a
// standby (standby.signal) is "not there yet": the server stays up and
// keeps asking.
func TestRestoreCorruptAbortsRecovery(t *testing.T) {
	d := damageArchive(t, "lz4", 2, flipMiddle)
	wantRecoveryAborted(t, d, d.backups[0])

	s := d.backups[1]
	s.Conf(pgtest.RestoreCommand(t, d.repo), "archive_mode = off", "wal_retrieve_retry_interval = '100ms'")
	s.Touch("standby.signal")
	s.Start()
	pgtest.Eventually(t, 60*time.Second, "the standby to ask for "+d.seg+" again after the corrupt answer", func() bool {
		return strings.Count(s.Log(), "walship-restore: ") >= 3
	})
	if line := logLine(s.Log(), "walship-restore: "); !strings.Contains(line, d.seg) || !strings.Contains(line, "corrupt") {
		t.Errorf("walship-restore's line in the standby's log = %q, want one naming %s as corrupt", line, d.seg)
	}
	if !s.Running() {
		t.Fatalf("the standby stopped; log:\n%s", s.Log())
	}
	if got := s.Query("SELECT pg_is_in_recovery()"); got != "t" {
		t.Errorf("standby pg_is_in_recovery() = %s, want t", got)
	}
	if strings.Contains(s.Log(), "could not restore file") {
		t.Errorf("the standby treated the corrupt object as fatal; log:\n%s", s.Log())
	}
}

// TestRestoreTruncatedPlainAbortsRecovery is the same for an uncompressed
// object (--compress none) cut short.
func TestRestoreTruncatedPlainAbortsRecovery(t *testing.T) {
	d := damageArchive(t, "none", 1, truncateHalf)
	wantRecoveryAborted(t, d, d.backups[0])
}
