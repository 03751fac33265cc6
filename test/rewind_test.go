package test

import (
	"bufio"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/walship/walship/internal/testenv/pgtest"
	"github.com/walship/walship/pgdata"
	"github.com/walship/walship/wal"
)

// hashTree hashes the names, permissions and contents of every file under
// dir (symbolic links by their target).
func hashTree(t *testing.T, dir string) string {
	t.Helper()
	h := sha256.New()
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		info, err := d.Info()
		if err != nil {
			return err
		}
		fmt.Fprintf(h, "%s %v\n", rel, info.Mode())
		switch {
		case info.Mode()&fs.ModeSymlink != 0:
			l, _ := os.Readlink(p)
			fmt.Fprintf(h, "-> %s\n", l)
		case info.Mode().IsRegular():
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			defer f.Close()
			io.Copy(h, f)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%x", h.Sum(nil))
}

// confFiles reads the files a rewind must leave as they were.
func confFiles(t *testing.T, c *pgtest.Cluster) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, n := range []string{"postgresql.conf", "pg_hba.conf", "pg_ident.conf"} {
		data, err := os.ReadFile(filepath.Join(c.Data, n))
		if err != nil {
			t.Fatal(err)
		}
		out[n] = string(data)
	}
	return out
}

// walshipRewind runs walship-rewind as the server's user; code is its exit
// status (-1 when killed by a signal).
func walshipRewind(t *testing.T, args ...string) (out string, code int) {
	t.Helper()
	out, err := pgtest.RunErr(t, pgtest.Bin(t, "walship-rewind"), args...)
	var ee *exec.ExitError
	switch {
	case err == nil:
		return out, 0
	case errors.As(err, &ee):
		return out, ee.ExitCode()
	}
	t.Fatalf("walship-rewind: %v\n%s", err, out)
	return "", 0
}

func timeline(t *testing.T, c *pgtest.Cluster) uint32 {
	t.Helper()
	n, err := wal.ParseName(c.Query("SELECT pg_walfile_name(pg_current_wal_lsn())"))
	if err != nil {
		t.Fatal(err)
	}
	return n.Timeline
}

// controlData runs pg_controldata on a stopped cluster.
func controlData(t *testing.T, c *pgtest.Cluster) pgdata.Control {
	t.Helper()
	ctl, err := pgdata.ParseControlData(pgtest.Run(t, pgtest.Tool(t, "pg_controldata"), "-D", c.Data))
	if err != nil {
		t.Fatal(err)
	}
	return ctl
}

// dropOldWAL removes from a stopped cluster's pg_wal every segment before
// the one its latest checkpoint's redo starts in: WAL pg_rewind needs back
// to the last common checkpoint, which then only the archive has.
func dropOldWAL(t *testing.T, c *pgtest.Cluster) (removed []string) {
	t.Helper()
	ctl := controlData(t, c)
	redoSeg := ctl.Redo.SegNo(ctl.SegSize)
	ents, err := os.ReadDir(filepath.Join(c.Data, "pg_wal"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		n, err := wal.ParseName(e.Name())
		if err != nil || n.Kind != wal.KindSegment || n.SegNo(ctl.SegSize) >= redoSeg {
			continue
		}
		if err := os.Remove(filepath.Join(c.Data, "pg_wal", e.Name())); err != nil {
			t.Fatal(err)
		}
		removed = append(removed, e.Name())
	}
	return removed
}

// waitReplayed waits until standby s has replayed everything primary p wrote.
func waitReplayed(t *testing.T, p, s *pgtest.Cluster) {
	t.Helper()
	lsn := p.Query("SELECT pg_current_wal_lsn()")
	s.WaitQuery("SELECT pg_last_wal_replay_lsn() >= '"+lsn+"'", "t", 60*time.Second)
}

// newPrimaryStandby makes primary a (data checksums) and its streaming
// standby b (pg_basebackup -R), both archiving into one repository: a with
// archive_mode = on, b with archive_mode = always, so that whichever is
// primary archives its WAL. Their archive_commands differ, so that a
// rewound server visibly keeps its own.
func newPrimaryStandby(t *testing.T, base, repoDir string) (a, b *pgtest.Cluster) {
	t.Helper()
	a = pgtest.NewCluster(t, base, "a", pgtest.InitOptions{Checksums: true})
	a.Conf("archive_mode = on", pgtest.ArchiveCommand(t, repoDir), "wal_keep_size = 0")
	a.Start()
	a.Query("CREATE TABLE t (id serial PRIMARY KEY, who text NOT NULL, pad text)")
	a.Query("INSERT INTO t (who, pad) SELECT 'common', repeat('x', 200) FROM generate_series(1, 2000)")
	b = a.BaseBackup(base, "b", "-R")
	b.Conf("archive_mode = always", pgtest.ArchiveCommand(t, repoDir, "--op-timeout=29s"), pgtest.RestoreCommand(t, repoDir))
	b.Start()
	b.WaitQuery("SELECT status FROM pg_stat_wal_receiver", "streaming", 60*time.Second)
	return a, b
}

// diverge is a failover: standby s is promoted while the old primary p
// keeps running and commits rows s never sees, spread over a few segments,
// then p stops (in stopMode) and loses from its pg_wal the WAL back to the
// last common checkpoint. It returns the tag of p's divergent rows.
func diverge(t *testing.T, round int, p, s *pgtest.Cluster, stopMode string) string {
	t.Helper()
	// The last common checkpoint, then a new segment for the divergence.
	p.Query("CHECKPOINT")
	p.Query("SELECT pg_switch_wal()")
	// Enough pages that the standby's checkpoint after promotion, spread
	// over checkpoint_timeout, is still running when walship-rewind starts.
	p.Query(fmt.Sprintf("INSERT INTO t (who, pad) SELECT 'before-%d', repeat('z', 400) FROM generate_series(1, 8000)", round))
	waitReplayed(t, p, s)
	s.Promote()
	s.Query(fmt.Sprintf("INSERT INTO t (who) SELECT 'new-primary-%d' FROM generate_series(1, 300)", round))

	lost := fmt.Sprintf("lost-%d", round)
	for i := 0; i < 2; i++ {
		p.Query(fmt.Sprintf("INSERT INTO t (who, pad) SELECT '%s', repeat('y', 500) FROM generate_series(1, 1000)", lost))
		p.Query("SELECT pg_switch_wal()")
	}
	last := p.Query("SELECT pg_walfile_name(pg_current_wal_lsn() - 1)")
	p.WaitQuery("SELECT coalesce(last_archived_wal >= '"+last+"', false) FROM pg_stat_archiver", "t", 60*time.Second)
	p.Query("CHECKPOINT")
	p.Stop(stopMode)
	removed := dropOldWAL(t, p) // often none: the checkpoints recycled them already
	t.Logf("round %d: removed %d old segments from %s's pg_wal", round, len(removed), p.Name)
	return lost
}

// failback rewinds old primary p into a standby of s with walship-rewind
// and checks everything the operator relies on.
func failback(t *testing.T, round int, p, s *pgtest.Cluster, repoDir, lost string, crashed bool) {
	t.Helper()
	src := s.ConnString()
	conf := confFiles(t, p)
	archiveCmd := strings.TrimPrefix(pgtest.ArchiveCommand(t, repoDir), "archive_command = ")
	if p.Name == "b" {
		archiveCmd = strings.TrimPrefix(pgtest.ArchiveCommand(t, repoDir, "--op-timeout=29s"), "archive_command = ")
	}
	archiveCmd = strings.Trim(archiveCmd, "'")

	// A dry run reports and changes nothing.
	before := hashTree(t, p.Data)
	out, code := walshipRewind(t, "--repo", repoDir, "-D", p.Data, "--source-server", src, "--dry-run", "--progress")
	if code != 0 {
		t.Fatalf("round %d: dry run exit %d:\n%s", round, code, out)
	}
	if after := hashTree(t, p.Data); after != before {
		t.Errorf("round %d: the dry run changed %s\n%s", round, p.Data, out)
	}
	if !strings.Contains(out, "running CHECKPOINT") {
		t.Errorf("round %d: walship-rewind did not checkpoint the freshly promoted source:\n%s", round, out)
	}
	if crashed {
		if !strings.Contains(out, "crash recovery") {
			t.Errorf("round %d: dry run of a crashed target does not mention crash recovery:\n%s", round, out)
		}
	} else if !strings.Contains(out, "servers diverged at") || !strings.Contains(out, "fetched for the dry run") {
		t.Errorf("round %d: dry run does not report the divergence and the WAL to fetch:\n%s", round, out)
	}

	if round == 1 {
		// Without the archive, pg_rewind cannot find the WAL it needs.
		s.Query("CHECKPOINT")
		o, err := pgtest.RunErr(t, pgtest.Tool(t, "pg_rewind"), "--dry-run", "-D", p.Data, "--source-server", src)
		if err == nil || !strings.Contains(o, "could not open file") || !strings.Contains(o, "pg_wal/") {
			t.Fatalf("pg_rewind without the archive: err = %v, want a missing WAL file:\n%s", err, o)
		}
	}

	out, code = walshipRewind(t, "--repo", repoDir, "-D", p.Data, "--source-server", src, "--progress", "--start", "--start-log", p.LogFile)
	t.Logf("round %d: walship-rewind -D %s --source-server %s:\n%s", round, p.Name, s.Name, out)
	if code != 0 {
		t.Fatalf("round %d: walship-rewind exit %d", round, code)
	}
	if !p.Running() {
		t.Fatalf("round %d: %s does not run after --start", round, p.Name)
	}
	if !strings.Contains(out, "fetched 0000") {
		t.Errorf("round %d: walship-rewind fetched no WAL from the archive, yet %s's pg_wal lacked it", round, p.Name)
	}

	// A streams from B on B's timeline.
	want := fmt.Sprintf("streaming %d", timeline(t, s))
	if got := p.Query("SELECT status || ' ' || received_tli FROM pg_stat_wal_receiver"); got != want {
		t.Errorf("round %d: %s's WAL receiver = %q, want %q", round, p.Name, got, want)
	}
	s.Query(fmt.Sprintf("INSERT INTO t (who) VALUES ('after-%d')", round))
	waitReplayed(t, s, p)
	if n := p.Int("SELECT count(*) FROM t WHERE who = '" + lost + "'"); n != 0 {
		t.Errorf("round %d: %d of the old primary's divergent rows survived the rewind", round, n)
	}
	if got, want := p.Query("SELECT count(*) FROM t"), s.Query("SELECT count(*) FROM t"); got != want {
		t.Errorf("round %d: rewound %s has %s rows, the new primary %s", round, p.Name, got, want)
	}
	if n := p.Int(fmt.Sprintf("SELECT count(*) FROM t WHERE who = 'new-primary-%d'", round)); n != 300 {
		t.Errorf("round %d: rewound %s has %d of the new primary's 300 rows", round, p.Name, n)
	}

	// It kept its own settings; the only restore_command is the standby's.
	if got := p.Query("SHOW port"); got != strconv.Itoa(p.Port) {
		t.Errorf("round %d: port = %s, want its own %d", round, got, p.Port)
	}
	if got := p.Query("SHOW archive_command"); got != archiveCmd {
		t.Errorf("round %d: archive_command = %q, want its own %q", round, got, archiveCmd)
	}
	for name, want := range conf {
		if data, _ := os.ReadFile(filepath.Join(p.Data, name)); string(data) != want {
			t.Errorf("round %d: %s differs from the target's own", round, name)
		}
	}
	auto, _ := os.ReadFile(filepath.Join(p.Data, "postgresql.auto.conf"))
	var restoreLines []string
	for _, l := range strings.Split(string(auto), "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), "restore_command") {
			restoreLines = append(restoreLines, l)
		}
	}
	rc := p.Query("SHOW restore_command")
	if len(restoreLines) != 1 || strings.Contains(string(auto), "walship-rewind: temporary") ||
		!strings.Contains(rc, "walship-restore") || !strings.Contains(rc, "--repo="+repoDir) || strings.Contains(rc, "--on-error") {
		t.Errorf("round %d: restore_command = %q; postgresql.auto.conf:\n%s", round, rc, auto)
	}
	if got := p.Query("SHOW recovery_target_timeline"); got != "latest" {
		t.Errorf("round %d: recovery_target_timeline = %q", round, got)
	}
	if pc := p.Query("SHOW primary_conninfo"); !strings.Contains(pc, fmt.Sprintf("port=%d", s.Port)) {
		t.Errorf("round %d: primary_conninfo = %q, want the new primary's port %d", round, pc, s.Port)
	}
}

// TestRewindFailbackRoundTrips is the seed story: A streams to B; B is
// promoted while A goes on writing; walship-rewind makes A a streaming
// standby of B with WAL only the archive still has. Then the switch back
// (A promoted, B rewound, B stopped by a crash this time), and a second
// round trip.
func TestRewindFailbackRoundTrips(t *testing.T) {
	pgtest.Require(t)
	base := pgtest.Dir(t)
	repoDir := filepath.Join(base, "repo")
	a, b := newPrimaryStandby(t, base, repoDir)

	lost := diverge(t, 1, a, b, "fast")
	failback(t, 1, a, b, repoDir, lost, false)

	lost = diverge(t, 2, b, a, "immediate")
	failback(t, 2, b, a, repoDir, lost, true)

	lost = diverge(t, 3, a, b, "fast")
	failback(t, 3, a, b, repoDir, lost, false)

	lost = diverge(t, 4, b, a, "fast")
	failback(t, 4, b, a, repoDir, lost, false)

	// Seed 004's clean switchover: the primary shuts down cleanly, its
	// standby receives everything and is promoted. Nothing diverged: the
	// old primary only needs its standby configuration.
	waitReplayed(t, a, b)
	a.Stop("fast")
	end := controlData(t, a).Checkpoint
	b.WaitQuery("SELECT pg_last_wal_receive_lsn() > '"+end.String()+"'", "t", 60*time.Second)
	b.Promote()
	b.Query("INSERT INTO t (who) VALUES ('switchover')")
	before := hashTree(t, a.Data)
	out, code := walshipRewind(t, "--repo", repoDir, "-D", a.Data, "--source-server", b.ConnString(), "--dry-run")
	if code != 0 || !strings.Contains(out, "no rewind was needed") || hashTree(t, a.Data) != before {
		t.Errorf("switchover dry run: exit %d, target unchanged %v:\n%s", code, hashTree(t, a.Data) == before, out)
	}
	out, code = walshipRewind(t, "--repo", repoDir, "-D", a.Data, "--source-server", b.ConnString(), "--start", "--start-log", a.LogFile)
	t.Logf("switchover: walship-rewind -D a --source-server b:\n%s", out)
	if code != 0 || !strings.Contains(out, "no rewind was needed") {
		t.Fatalf("switchover: exit %d", code)
	}
	a.Running()
	want := fmt.Sprintf("streaming %d", timeline(t, b))
	if got := a.Query("SELECT status || ' ' || received_tli FROM pg_stat_wal_receiver"); got != want {
		t.Errorf("switchover: a's WAL receiver = %q, want %q", got, want)
	}
	waitReplayed(t, b, a)
	if got, want := a.Query("SELECT count(*) FROM t"), b.Query("SELECT count(*) FROM t"); got != want {
		t.Errorf("switchover: a has %s rows, b %s", got, want)
	}
}

// TestRewindRefusesBadInput: every bad input is one clear error, a non-zero
// exit, and a target exactly as it was.
func TestRewindRefusesBadInput(t *testing.T) {
	pgtest.Require(t)
	base := pgtest.Dir(t)
	repoDir := filepath.Join(base, "repo")
	p := pgtest.NewCluster(t, base, "p", pgtest.InitOptions{Checksums: true})
	p.Conf("archive_mode = on", pgtest.ArchiveCommand(t, repoDir))
	p.Start()
	p.Query("CREATE TABLE t AS SELECT 1 AS x")
	s := p.BaseBackup(base, "s", "-R")
	s.Conf(pgtest.RestoreCommand(t, repoDir))
	s.Start()
	s.WaitQuery("SELECT status FROM pg_stat_wal_receiver", "streaming", 60*time.Second)
	// s2 stops following p early: it stays behind on p's timeline.
	s2 := p.BaseBackup(base, "s2", "-R")
	s2.Start()
	s2.WaitQuery("SELECT status FROM pg_stat_wal_receiver", "streaming", 60*time.Second)
	s2.Stop("fast")
	s.Promote()
	p.Query("INSERT INTO t SELECT 2")
	other := pgtest.NewCluster(t, base, "other", pgtest.InitOptions{}) // no checksums, wal_log_hints off
	other.Start()

	refuse := func(name string, target *pgtest.Cluster, source string, hashAll bool, want ...string) {
		t.Helper()
		hash := func() string {
			if hashAll {
				return hashTree(t, target.Data)
			}
			return fmt.Sprint(confFiles(t, target))
		}
		before := hash()
		out, code := walshipRewind(t, "--repo", repoDir, "-D", target.Data, "--source-server", source, "--start")
		if code != 1 {
			t.Errorf("%s: exit %d, want 1:\n%s", name, code, out)
		}
		lines := strings.Split(strings.TrimSpace(out), "\n")
		last := lines[len(lines)-1]
		t.Logf("%s: exit %d: %s", name, code, last)
		if !strings.HasPrefix(linePrefixRE.ReplaceAllString(last, ""), "walship-rewind: ") {
			t.Errorf("%s: the last line is not walship-rewind's error: %q", name, last)
		}
		for _, w := range append(want, "; ") { // "; " separates what to do next
			if !strings.Contains(last, w) {
				t.Errorf("%s: error %q does not contain %q", name, last, w)
			}
		}
		if hash() != before {
			t.Errorf("%s: the target changed", name)
		}
		if _, err := os.Stat(filepath.Join(target.Data, "standby.signal")); err == nil {
			t.Errorf("%s: standby.signal written", name)
		}
	}

	refuse("running target", p, s.ConnString(), false, "check target:", "is running", "pg_ctl -D "+p.Data+" stop")
	p.Stop("fast")
	refuse("source from another cluster", p, other.ConnString(), true, "check source:", "different database systems")
	s2.Start() // a standby whose primary is gone, behind the target
	refuse("source behind the target on its timeline", p, s2.ConnString(), true, "check source:", "ahead of the source on the same timeline 1", "promote")
	s2.Stop("fast")
	refuse("unreachable source", p, fmt.Sprintf("host=%s port=%d user=postgres dbname=postgres", base, pgtest.FreePort(t)), true,
		"check source:", "unreachable", "--source-server")
	other.Stop("fast")
	refuse("target without wal_log_hints or checksums", other, s.ConnString(), true, "check target:", "wal_log_hints", "base backup")

	// SIGTERM while pg_rewind runs: the temporary restore_command goes, the
	// target is as it was. A stand-in pg_rewind shows the setting it was
	// given and waits.
	fake := pgtest.Mkdir(t, filepath.Join(base, "fakebin"))
	for _, prog := range []string{"pg_controldata", "pg_ctl", "postgres"} {
		if err := os.Symlink(pgtest.Tool(t, prog), filepath.Join(fake, prog)); err != nil {
			t.Fatal(err)
		}
	}
	version := strings.TrimSpace(pgtest.Run(t, pgtest.Tool(t, "pg_rewind"), "--version"))
	script := fmt.Sprintf(`#!/bin/sh
if [ "$1" = --version ]; then echo '%s'; exit 0; fi
for a; do case "$a" in --target-pgdata=*) d="${a#--target-pgdata=}";; esac; done
echo "pg_rewind: arguments: $*"
echo "pg_rewind: PGPASSWORD=$PGPASSWORD"
echo "pg_rewind: temporary restore_command: $(%s/postgres -D "$d" -C restore_command)"
exec sleep 60
`, version, fake)
	if err := os.WriteFile(filepath.Join(fake, "pg_rewind"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	before := hashTree(t, p.Data)
	// A password in --source-server reaches pg_rewind through its
	// environment, never its arguments (every local user sees those in
	// ps); trust authentication lets it be any.
	const secret = "s3cr3t-pw-77"
	cmd := pgtest.Command(t, pgtest.Bin(t, "walship-rewind"), "--repo", repoDir, "-D", p.Data, "--source-server", s.ConnString()+" password="+secret, "--pg-bin", fake, "--progress")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	seen := make(chan string, 1)
	var transcript strings.Builder
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			transcript.WriteString(sc.Text() + "\n")
			if strings.Contains(sc.Text(), "temporary restore_command:") {
				seen <- sc.Text()
			}
		}
		close(seen)
	}()
	select {
	case line, ok := <-seen:
		if !ok || !strings.Contains(line, "walship-restore") || !strings.Contains(line, "--on-error=abort") {
			t.Fatalf("pg_rewind did not see walship-restore as restore_command: %q", line)
		}
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		t.Fatal("walship-rewind never ran pg_rewind")
	}
	cmd.Process.Signal(syscall.SIGTERM)
	for range seen { // read to the end before Wait
	}
	for _, l := range strings.Split(transcript.String(), "\n") {
		if strings.Contains(l, "pg_rewind: arguments:") && (strings.Contains(l, secret) || !strings.Contains(l, "--source-server=")) {
			t.Errorf("pg_rewind's arguments: %q, want the source without its password", l)
		}
	}
	if !strings.Contains(transcript.String(), "pg_rewind: PGPASSWORD="+secret+"\n") {
		t.Errorf("pg_rewind did not get the password in its environment:\n%s", transcript.String())
	}
	err = cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGTERM {
		t.Errorf("walship-rewind after SIGTERM: %v, want death by SIGTERM\n%s", err, transcript.String())
	}
	if after := hashTree(t, p.Data); after != before {
		auto, _ := os.ReadFile(filepath.Join(p.Data, "postgresql.auto.conf"))
		t.Errorf("SIGTERM during pg_rewind left the target changed; postgresql.auto.conf:\n%s", auto)
	}
}
