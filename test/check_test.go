package test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/walship/walship/internal/testenv/pgtest"
)

// checkLines splits walship check's output into its findings.
func checkLines(r result) []string {
	return strings.Split(strings.TrimRight(r.stdout, "\n"), "\n")
}

// finding returns walship check's line for one check with status
// ("CRITICAL switch: ..."), or "".
func finding(r result, status, check string) string {
	for _, l := range checkLines(r) {
		if strings.HasPrefix(l, status+" "+check+": ") {
			return l
		}
	}
	return ""
}

// wantFinding fails the test unless walship check reported check with
// status, saying each of wants.
func wantFinding(t *testing.T, what string, r result, status, check string, wants ...string) {
	t.Helper()
	l := finding(r, status, check)
	if l == "" {
		t.Errorf("%s: no %s %s finding in:\n%s\nstderr: %s", what, status, check, r.stdout, r.stderr)
		return
	}
	for _, w := range wants {
		if !strings.Contains(l, w) {
			t.Errorf("%s: %q does not say %q", what, l, w)
		}
	}
}

// wantAllOK checks that walship check exited 0 with only OK lines, among
// them one for each of checks.
func wantAllOK(t *testing.T, what string, r result, checks ...string) {
	t.Helper()
	if r.code != 0 || r.stderr != "" {
		t.Errorf("%s: %s, want exit 0", what, r)
	}
	for _, l := range checkLines(r) {
		if !strings.HasPrefix(l, "OK ") {
			t.Errorf("%s: %q is not OK", what, l)
		}
	}
	for _, c := range checks {
		if finding(r, "OK", c) == "" {
			t.Errorf("%s: no OK %s finding in:\n%s", what, c, r.stdout)
		}
	}
}

// TestCheckHealthyPrimaryAndStandby: on every backend, walship check of a
// primary archiving through walship-archive, with a base backup, is OK
// (exit 0) including a forced switch that reaches the repository; so is
// the check of a streaming standby of it, without a switch and with its
// replay against the archive. walship metrics of the primary parses with
// Prometheus' text parser and carries the repository's and the server's
// values.
func TestCheckHealthyPrimaryAndStandby(t *testing.T) {
	forEachBackend(t, func(t *testing.T, base string, store archiveBackend) {
		p := newCluster(t, store, base, "primary")
		p.Conf("archive_mode = on", commandLine(t, store, "walship-archive"), "archive_timeout = 60")
		p.Start()
		p.Pgbench("-i", "-s", "1", "-q")
		s := p.BaseBackup(base, "standby")
		s.Env = store.env()
		s.Conf(commandLine(t, store, "walship-restore"), fmt.Sprintf("primary_conninfo = 'host=%s port=%d user=postgres'", p.Socket, p.Port))
		s.Touch("standby.signal")
		s.Start()
		switchAndArchive(t, p)

		run := func(c *pgtest.Cluster, args ...string) result {
			return walshipBounded(t, runOpts{env: store.env()}, "walship",
				append(append([]string{"check"}, store.flags()...), append([]string{"-d", c.ConnString()}, args...)...)...)
		}
		r := run(p)
		wantAllOK(t, "walship check of the primary", r, "server", "archive_mode", "archive_command", "destination", "switch",
			"archiver", "backlog", "identity", "age", "backup", "gaps")
		wantFinding(t, "the primary", r, "OK", "switch", "reached the repository")
		if finding(r, "OK", "replay") != "" {
			t.Errorf("a primary has no replay finding:\n%s", r.stdout)
		}
		t.Logf("walship check of the primary:\n%s", r.stdout)

		lsn := p.Query("SELECT pg_current_wal_lsn()")
		s.WaitQuery("SELECT pg_last_wal_replay_lsn() >= '"+lsn+"'::pg_lsn", "t", 60*time.Second)
		r = run(s)
		wantAllOK(t, "walship check of the standby", r, "server", "archive_mode", "archive_command", "destination", "identity", "age", "backup", "gaps", "replay")
		wantFinding(t, "the standby", r, "OK", "server", "standby of system")
		if strings.Contains(r.stdout, " switch: ") || strings.Contains(r.stdout, " archiver: ") {
			t.Errorf("a standby that does not archive is not switched, nor its archiver read:\n%s", r.stdout)
		}
		t.Logf("walship check of the standby:\n%s", r.stdout)

		// walship metrics -d -D into a file, as the systemd timer runs it.
		out := filepath.Join(base, "walship.prom")
		r = walshipBounded(t, runOpts{env: store.env()}, "walship", append(append([]string{"metrics"}, store.flags()...),
			"-d", p.ConnString(), "-D", p.Data, "-o", out)...)
		wantOK(t, "walship metrics", r)
		data, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		parser := expfmt.NewTextParser(model.UTF8Validation)
		mfs, err := parser.TextToMetricFamilies(bytes.NewReader(data))
		if err != nil {
			t.Fatalf("the metrics do not parse: %v\n%s", err, data)
		}
		segs := storedSegments(t, store)
		last := segs[len(segs)-1]
		gauge := func(name string, labels ...string) float64 {
			t.Helper()
			v, ok := gaugeValue(mfs, name, labels...)
			if !ok {
				t.Errorf("no %s%v in:\n%s", name, labels, data)
			}
			return v
		}
		for _, tc := range []struct {
			name   string
			labels []string
			want   float64
		}{
			{"walship_repository_up", nil, 1},
			{"walship_server_up", nil, 1},
			{"walship_segments", []string{"timeline", "1"}, float64(len(segs))},
			{"walship_last_archived_lsn", []string{"timeline", "1"}, float64(last.StartLSN(segSize) + segSize)},
			{"walship_missing_segments", nil, 0},
			{"walship_second_writers", nil, 0},
			{"walship_backups", nil, 1},
			{"walship_newest_backup_restorable", nil, 1},
			{"walship_server_ready_files", nil, float64(readyFiles(t, p))},
			{"walship_check_status", nil, 0},
			{"walship_check", []string{"check", "archive_command"}, 0},
		} {
			if got := gauge(tc.name, tc.labels...); got != tc.want {
				t.Errorf("%s%v = %v, want %v", tc.name, tc.labels, got, tc.want)
			}
		}
		if age := time.Since(time.Unix(int64(gauge("walship_last_archived_timestamp_seconds", "timeline", "1")), 0)); age < 0 || age > 5*time.Minute {
			t.Errorf("walship_last_archived_timestamp_seconds is %s old", age)
		}
		if fi, err := os.Stat(out); err != nil || fi.Mode().Perm() != 0o644 {
			t.Errorf("metrics file: %v, %v; want mode 0644 (node_exporter reads it)", fi, err)
		}
	})
}

// readyFiles counts the .ready files in c's pg_wal/archive_status.
func readyFiles(t *testing.T, c *pgtest.Cluster) int {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(c.Data, "pg_wal", "archive_status"))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".ready") {
			n++
		}
	}
	return n
}

func gaugeValue(mfs map[string]*dto.MetricFamily, name string, labels ...string) (float64, bool) {
	mf := mfs[name]
	if mf == nil {
		return 0, false
	}
next:
	for _, m := range mf.Metric {
		for i := 0; i+1 < len(labels); i += 2 {
			found := false
			for _, lp := range m.Label {
				found = found || (lp.GetName() == labels[i] && lp.GetValue() == labels[i+1])
			}
			if !found {
				continue next
			}
		}
		return m.GetGauge().GetValue(), true
	}
	return 0, false
}

// checkOf runs walship check of c on the local repository repoDir.
func checkOf(t *testing.T, c *pgtest.Cluster, repoDir string, args ...string) result {
	t.Helper()
	return walshipBounded(t, runOpts{}, "walship", append([]string{"check", "--repo", repoDir, "-d", c.ConnString()}, args...)...)
}

// TestCheckBinaryNotOnPath is the README's archive_command with
// walship-archive not on the server's PATH: the shell exits 127 for every
// segment, which pg_stat_archiver does not count. walship check is
// CRITICAL (exit 2), says the binary is not on the server's PATH, and that
// the switched segment never arrived while no failure was counted.
func TestCheckBinaryNotOnPath(t *testing.T) {
	pgtest.Require(t)
	base := pgtest.Dir(t)
	repoDir := filepath.Join(base, "repo")
	p := pgtest.NewCluster(t, base, "primary", pgtest.InitOptions{})
	p.Conf("archive_mode = on", "archive_command = 'walship-archive --repo "+repoDir+" %p %f'")
	p.Env = []string{"PATH=/usr/bin:/bin"}
	p.Start()
	p.Query("SELECT pg_switch_wal()")
	pgtest.Eventually(t, 30*time.Second, "the archiver to fail with exit code 127", func() bool {
		return strings.Contains(p.Log(), "exit code 127")
	})

	r := checkOf(t, p, repoDir, "--timeout", "5s")
	if r.code != 2 {
		t.Errorf("walship check: %s, want exit 2 (CRITICAL)", r)
	}
	wantFinding(t, "binary not on PATH", r, "CRITICAL", "archive_command", "walship-archive is not on the server's PATH (/usr/bin:/bin)", "127")
	wantFinding(t, "binary not on PATH", r, "CRITICAL", "switch", "was not in "+repoDir+" after 5s", "no failure", "127")
	if !strings.HasPrefix(r.stdout, "CRITICAL ") {
		t.Errorf("the first line is not the worst finding:\n%s", r.stdout)
	}
	if n := pgStat(p, "failed_count"); n != 0 {
		t.Errorf("pg_stat_archiver.failed_count = %d: the premise (exit 127 is not counted) does not hold", n)
	}
	t.Logf("walship check:\n%s", r.stdout)
}

// TestCheckReadOnlyRepository: the repository's directories lose their
// write permission; walship-archive fails (and pg_stat_archiver counts
// it). walship check is CRITICAL: the switched segment never arrives and
// the archiver is failing.
func TestCheckReadOnlyRepository(t *testing.T) {
	a := startArchiving(t)
	a.switchSegment(t)
	err := filepath.WalkDir(a.repo, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			err = os.Chmod(p, 0o555)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	r := checkOf(t, a.pg, a.repo, "--timeout", "5s")
	if r.code != 2 {
		t.Errorf("walship check: %s, want exit 2 (CRITICAL)", r)
	}
	wantFinding(t, "read-only repository", r, "CRITICAL", "switch", "was not in "+a.repo, "failed")
	wantFinding(t, "read-only repository", r, "CRITICAL", "archiver", "archive_command fails")
	wantFinding(t, "read-only repository", r, "OK", "archive_command")
	t.Logf("walship check:\n%s", r.stdout)
}

// TestCheckStuckBacklog: archive_command hangs (a slow mount, a lock), so
// .ready files pile up, nothing fails and nothing is archived. walship
// check is CRITICAL about the backlog older than --max-age, uncounted by
// pg_stat_archiver, and about the switch.
func TestCheckStuckBacklog(t *testing.T) {
	pgtest.Require(t)
	base := pgtest.Dir(t)
	repoDir := filepath.Join(base, "repo")
	p := pgtest.NewCluster(t, base, "primary", pgtest.InitOptions{})
	p.Conf("archive_mode = on", fmt.Sprintf("archive_command = 'sleep 3600; %s --repo %s %%p %%f'", pgtest.Bin(t, "walship-archive"), repoDir))
	p.Start()
	for range 3 {
		p.Query("CREATE TABLE IF NOT EXISTS filler (i int); INSERT INTO filler SELECT generate_series(1, 1000)")
		p.Query("SELECT pg_switch_wal()")
	}
	time.Sleep(3 * time.Second) // older than --max-age
	r := checkOf(t, p, repoDir, "--timeout", "3s", "--max-age", "2s")
	if r.code != 2 {
		t.Errorf("walship check: %s, want exit 2 (CRITICAL)", r)
	}
	wantFinding(t, "stuck backlog", r, "CRITICAL", "backlog", "file(s) waiting to be archived", "more than 2s", "counts no failure", "hangs")
	wantFinding(t, "stuck backlog", r, "CRITICAL", "switch", "archive_command ran all that time without finishing", "it hangs")
	wantFinding(t, "stuck backlog", r, "OK", "archive_command", pgtest.Bin(t, "walship-archive"))
	if n := readyFiles(t, p); n < 3 {
		t.Errorf("%d .ready files, want the backlog of at least 3", n)
	}
	t.Logf("walship check:\n%s", r.stdout)
}

// TestCheckStaleArchive: the server is re-pointed at another repository
// (a reload), and goes on archiving there. The repository it left goes
// stale: walship check --no-switch is CRITICAL about its age (the server
// has finished segments since that it lacks) and names where the server
// archives now; with the switch, the server reports the segment archived
// but it is not in the repository.
func TestCheckStaleArchive(t *testing.T) {
	a := startArchiving(t)
	a.pg.BaseBackup(a.base, "backup")
	a.switchSegment(t)
	other := filepath.Join(a.base, "other")
	a.pg.Conf(pgtest.ArchiveCommand(t, other))
	a.pg.Query("SELECT pg_reload_conf()")
	// Once the archiver has reread its configuration, segments go to the
	// other repository.
	pgtest.Eventually(t, 30*time.Second, "a segment archived into "+other, func() bool {
		a.switchSegment(t)
		_, err := os.Stat(filepath.Join(other, "walship.json"))
		return err == nil
	})
	last, _ := a.switchSegment(t)
	if segmentSet(t, localBackend{a.repo})[last] {
		t.Fatalf("%s is in %s after the reload", last, a.repo)
	}
	time.Sleep(2 * time.Second)
	r := checkOf(t, a.pg, a.repo, "--no-switch", "--max-age", "2s")
	if r.code != 2 {
		t.Errorf("walship check --no-switch: %s, want exit 2 (CRITICAL)", r)
	}
	wantFinding(t, "stale archive", r, "CRITICAL", "age", "more than 2s", "has finished", "segment(s) since", "that are not in the repository")
	wantFinding(t, "stale archive", r, "CRITICAL", "destination", "archives into "+other+", not into "+a.repo)
	if finding(r, "OK", "switch") != "" || finding(r, "CRITICAL", "switch") != "" {
		t.Errorf("--no-switch switched:\n%s", r.stdout)
	}
	t.Logf("walship check --no-switch:\n%s", r.stdout)

	r = checkOf(t, a.pg, a.repo, "--timeout", "20s")
	wantFinding(t, "stale archive, switched", r, "CRITICAL", "switch", "the server reports", "archived, but it is not in "+a.repo)
	// Within --max-age the repository is not stale, but still not fed.
	r = checkOf(t, a.pg, a.repo, "--no-switch")
	wantFinding(t, "stale archive, default --max-age", r, "OK", "age")
	if r.code != 2 {
		t.Errorf("walship check: %s, want exit 2 (the repository finding)", r)
	}
}

// TestPITRCopyPollution is the story of a restored PITR copy that keeps
// the primary's archive_mode and archive_command, as pg_basebackup copied
// them, on every backend: walship-restore warns at the start of its
// recovery; once promoted it archives timeline 2 into the primary's
// repository, and the primary, still on timeline 1, is warned by
// walship-archive for each segment it archives past timeline 2's switch
// point; walship verify reports a PROBLEM naming both timelines and when
// the second writer started, and walship check a CRITICAL second_writer.
func TestPITRCopyPollution(t *testing.T) {
	forEachBackend(t, func(t *testing.T, base string, store archiveBackend) {
		p := archivingPrimary(t, store, base, "primary")
		p.Query("CREATE TABLE t (i int)")
		copyOf := p.BaseBackup(base, "pitr-copy")
		copyOf.Env = store.env()
		p.Query("INSERT INTO t SELECT generate_series(1, 1000)")
		p.Query("SELECT pg_create_restore_point('before_mistake')")
		p.Query("INSERT INTO t SELECT generate_series(1, 1000)")
		switchAndArchive(t, p)

		// The README's PITR lines, without archive_mode = off.
		copyOf.Conf(commandLine(t, store, "walship-restore"), "recovery_target_name = 'before_mistake'", "recovery_target_action = 'promote'")
		copyOf.Touch("recovery.signal")
		copyOf.Start()
		copyOf.WaitQuery("SELECT pg_is_in_recovery()", "f", 120*time.Second)
		if log := copyOf.Log(); !strings.Contains(log, "walship-restore") || !strings.Contains(log, "archives into the same repository once promoted") ||
			!strings.Contains(log, "archive_mode = off") {
			t.Errorf("walship-restore did not warn the PITR copy; its log:\n%s", log)
		}
		// The copy archives timeline 2 into the primary's repository.
		tl2 := copyOf.Query("SELECT pg_walfile_name(pg_current_wal_lsn())")
		if !strings.HasPrefix(tl2, "00000002") {
			t.Fatalf("the promoted copy writes %s, want timeline 2", tl2)
		}
		switchAndArchive(t, copyOf)
		if n := mustName(t, tl2); !segmentSet(t, store)[n.String()] {
			t.Fatalf("%s of the copy is not in %s", n, store)
		}
		// Past --tail-grace 1s between the history file's and the next
		// segment's modification times, which S3 stores in whole seconds.
		time.Sleep(2500 * time.Millisecond)
		// The primary goes on with timeline 1.
		if strings.Contains(p.Log(), "branched off") {
			t.Fatalf("walship-archive warned before timeline 2 existed:\n%s", p.Log())
		}
		p.Query("INSERT INTO t SELECT generate_series(1, 1000)")
		seg1 := p.Query("SELECT pg_walfile_name(pg_current_wal_lsn())")
		switchAndArchive(t, p)
		warning := ""
		for _, l := range strings.Split(p.Log(), "\n") {
			if strings.Contains(l, "walship-archive: WARNING: ") && strings.Contains(l, "branched off") {
				warning = l
				break
			}
		}
		for _, want := range []string{"walship-archive", seg1, "timeline 1", "timeline 2", "00000002.history"} {
			if !strings.Contains(warning, want) {
				t.Errorf("walship-archive's warning %q does not say %q; the primary's log:\n%s", warning, want, p.Log())
			}
		}
		if n := pgStat(p, "failed_count"); n != 0 {
			t.Errorf("the primary failed to archive %d times: the warning must not stop archiving", n)
		}
		if !segmentSet(t, store)[seg1] {
			t.Errorf("%s was not archived", seg1)
		}

		r := walship(t, runOpts{env: store.env()}, "walship", append(append([]string{"verify"}, store.flags()...), "--tail-grace", "1s")...)
		problem := logLine(r.stdout, "PROBLEM ")
		if r.code != 1 {
			t.Errorf("walship verify: %s, want exit 1", r)
		}
		for _, want := range []string{"timeline 1 is still being archived after timeline 2 branched off", "since 20", seg1} {
			if !strings.Contains(problem, want) {
				t.Errorf("walship verify's PROBLEM %q does not say %q:\n%s", problem, want, r.stdout)
			}
		}
		r = walship(t, runOpts{env: store.env()}, "walship", append([]string{"verify"}, store.flags()...)...)
		if r.code != 0 {
			t.Errorf("walship verify with the default --tail-grace (10m): %s, want 0: the copy began a second ago", r)
		}
		r = walshipBounded(t, runOpts{env: store.env()}, "walship", append(append([]string{"check"}, store.flags()...),
			"-d", p.ConnString(), "--tail-grace", "1s")...)
		wantFinding(t, "the primary beside the copy", r, "CRITICAL", "second_writer", "timeline 1", "timeline 2")
		t.Logf("walship verify:\n%s\nwalship check:\n%s", problem, r.stdout)
	})
}
