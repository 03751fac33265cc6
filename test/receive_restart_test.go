package test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/walship/walship/catalog"
	"github.com/walship/walship/internal/testenv/pgtest"
	"github.com/walship/walship/wal"
)

// The receiver killed with SIGKILL mid-segment, three times, while a
// client commits with it as the synchronous standby; each time a new
// receiver resumes where the repository's data ends. Afterwards no
// segment is missing, none is stored twice, archive_command (storing the
// same segments) never found other content, and a restore to the latest
// holds every acknowledged row.
func TestReceiveRestart(t *testing.T) {
	forEachBackend(t, func(t *testing.T, base string, store archiveBackend) {
		p := syncPrimary(t, store, base, "p", pgtest.InitOptions{})
		backupCreate(t, store, p)
		makeSync(t, p, "walship")
		rcv := startReceiver(t, store, base, p, "--synchronous")
		waitSync(t, p)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		w := startWriter(ctx, t, p, 1, 7)
		for i := range 3 {
			n := w.count() + 40 + 30*i
			pgtest.Eventually(t, 2*time.Minute, "commits", func() bool { return w.count() >= n })
			rcv.kill()
			if i == 0 {
				// Monitoring: the receiver down, then back.
				wantReceiverCheck(t, store, p, 2, "CRITICAL receiver: walship receive is not connected (slot walship)", "walship_receiver_connected 0")
			}
			rcv = startReceiver(t, store, base, p, "--synchronous")
			if i == 0 {
				waitSync(t, p)
				wantReceiverCheck(t, store, p, -1, "OK receiver: walship receive is connected (walship, sync, slot walship)", "walship_receiver_connected 1")
			}
		}
		n := w.count() + 40
		pgtest.Eventually(t, 2*time.Minute, "commits after the last restart", func() bool { return w.count() >= n })
		for _, line := range strings.Split(rcv.logText(), "\n") {
			if strings.Contains(line, "resuming") {
				t.Logf("%s", line)
			}
		}
		killServer(t, p)
		acked := w.wait()
		rcv.stopOK()
		if strings.Contains(rcv.logText(), "other content") {
			t.Errorf("the receiver found other content under a name")
		}
		wantNoGaps(t, store)
		if log := p.Log(); strings.Contains(log, "different content") || strings.Contains(log, "archive command failed") {
			t.Errorf("archive_command failed beside the receiver")
		}
		restoreInPlace(t, store, base, p, acked)
	})
}

// The store unreachable for a while (a local repository whose stream/
// directory the receiver may not write): a synchronous commit waits
// (SyncRep) and returns once the store is back; an asynchronous receiver's
// slot keeps the WAL written meanwhile, and releases it once it is stored.
// Nothing is lost: a restore to the latest holds every acknowledged row.
func TestReceiveStoreDown(t *testing.T) {
	pgtest.Require(t)
	base := pgtest.Dir(t)
	store := localBackend{dir: filepath.Join(base, "repo")}
	p := syncPrimary(t, store, base, "p", pgtest.InitOptions{})
	backupCreate(t, store, p)
	makeSync(t, p, "walship")
	rcv := startReceiver(t, store, base, p, "--synchronous")
	waitSync(t, p)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w := startWriter(ctx, t, p, 1, 3)
	pgtest.Eventually(t, time.Minute, "commits", func() bool { return w.count() >= 20 })
	pieces := filepath.Join(store.dir, "stream")
	down := func() {
		t.Helper()
		if err := os.Chmod(pieces, 0o500); err != nil {
			t.Fatal(err)
		}
	}
	up := func() {
		t.Helper()
		if err := os.Chmod(pieces, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	down()
	p.WaitQuery("SELECT count(*) > 0 FROM pg_stat_activity WHERE wait_event = 'SyncRep'", "t", time.Minute)
	n := w.count()
	up()
	pgtest.Eventually(t, time.Minute, "the waiting commit to return once the store is back", func() bool { return w.count() > n+5 })
	cancel()
	acked := w.wait()

	// Asynchronous: the slot holds the WAL the store does not have yet.
	rcv.stopOK()
	makeSync(t, p, "")
	rcv = startReceiver(t, store, base, p, "--flush-interval", "100ms")
	p.WaitQuery("SELECT state FROM pg_stat_replication WHERE application_name = 'walship'", "streaming", time.Minute)
	down()
	before := p.Query("SELECT pg_current_wal_lsn()")
	ctx, cancel = context.WithCancel(context.Background())
	defer cancel()
	w = startWriter(ctx, t, p, 100000, 5) // past any id the first writer used
	pgtest.Eventually(t, time.Minute, "asynchronous commits", func() bool { return w.count() >= 30 })
	cancel()
	acked = append(acked, w.wait()...)
	after := p.Query("SELECT pg_current_wal_lsn()")
	time.Sleep(time.Second) // ten flush intervals, each a failed store
	if held := p.Query("SELECT restart_lsn <= '" + before + "'::pg_lsn FROM pg_replication_slots WHERE slot_name = 'walship'"); held != "t" {
		t.Errorf("the slot's restart_lsn moved past %s while the store was down", before)
	}
	up()
	p.WaitQuery("SELECT restart_lsn >= '"+after+"'::pg_lsn FROM pg_replication_slots WHERE slot_name = 'walship'", "t", time.Minute)
	killServer(t, p)
	rcv.stopOK()
	restoreInPlace(t, store, base, p, acked)
}

// wantReceiverCheck runs walship check (no switch) and metrics with the
// receiver's slot: check's receiver line and exit status (code; -1: not
// checked, another finding may warn) and a metrics line.
func wantReceiverCheck(t *testing.T, store archiveBackend, p *pgtest.Cluster, code int, line, metric string) {
	t.Helper()
	args := append([]string{"check"}, store.flags()...)
	r := walship(t, runOpts{env: store.env()}, "walship", append(args, "-d", p.ConnString(), "--slot", "walship", "--no-switch")...)
	if !strings.Contains(r.stdout, line) || (code >= 0 && r.code != code) {
		t.Errorf("walship check --slot walship: %s; want a line %q", r, line)
	}
	args = append([]string{"metrics"}, store.flags()...)
	r = walship(t, runOpts{env: store.env()}, "walship", append(args, "-d", p.ConnString(), "--slot", "walship")...)
	if !strings.Contains(r.stdout, "\n"+metric+"\n") || !strings.Contains(r.stdout, "walship_receiver_lag_bytes ") ||
		!strings.Contains(r.stdout, "walship_receiver_slot_retained_bytes ") {
		t.Errorf("walship metrics --slot walship: %s; want %q and the lag and retained WAL", r, metric)
	}
}

// An archive-only standby (standby.signal, walship-restore --standby)
// follows the repository while walship receive is the primary's
// synchronous standby; the primary is killed; pg_ctl promote ends the
// standby's wait, walship-restore hands it the streamed tail, and the
// promoted standby holds every acknowledged row.
func TestReceiveStandbyPromotion(t *testing.T) {
	pgtest.Require(t)
	base := pgtest.Dir(t)
	store := localBackend{dir: filepath.Join(base, "repo")}
	p := syncPrimary(t, store, base, "p", pgtest.InitOptions{})
	p.Query("SELECT pg_switch_wal()")
	st := p.BaseBackup(base, "standby")
	st.Env = store.env()
	st.Conf(commandLine(t, store, "walship-restore", "--standby"), "recovery_prefetch = off", "hot_standby = on",
		"archive_mode = off", "recovery_target_timeline = 'latest'", "synchronous_standby_names = ''")
	st.Touch("standby.signal")
	st.Start()
	makeSync(t, p, "walship")
	rcv := startReceiver(t, store, base, p, "--synchronous")
	waitSync(t, p)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w := startWriter(ctx, t, p, 1, 11)
	pgtest.Eventually(t, time.Minute, "commits", func() bool { return w.count() >= 150 })
	killServer(t, p)
	acked := w.wait()
	rcv.stopOK()
	st.Promote()
	wantAcked(t, st, acked, "on the promoted standby")
}

// An encrypted repository: the receiver stores pieces and segments
// encrypted like walship-archive's objects, and reads its own pieces back
// when it starts again, so it takes --identity besides --recipient; with
// the public key alone it refuses at once (exit 2, one line) instead of
// failing at its first restart. Killed mid-segment and restarted, it
// resumes; a restore to the latest holds every acknowledged row.
func TestReceiveEncrypted(t *testing.T) {
	pgtest.Require(t)
	base := pgtest.Dir(t)
	store := localBackend{dir: filepath.Join(base, "repo")}
	rcpt, idFile, _ := ageKey(t, base, "k")
	p := pgtest.NewCluster(t, base, "p", pgtest.InitOptions{SegSizeMB: 1})
	p.Conf("archive_mode = on", commandLine(t, store, "walship-archive", "--recipient", rcpt), "archive_timeout = 0", "wal_keep_size = 0")
	p.Start()
	p.Query("CREATE TABLE t (id int PRIMARY KEY, pad text)")
	backupCreate(t, store, p, "--recipient", rcpt)

	args := append(append([]string{"receive"}, store.flags()...), "-d", p.ConnString(), "--slot", "walship", "--create-slot", "--recipient", rcpt)
	wantOneLine(t, "a receiver with the public key only", walship(t, runOpts{}, "walship", args...), []int{2}, "walship", "encrypted", "identity")

	makeSync(t, p, "walship")
	keys := []string{"--synchronous", "--recipient", rcpt, "--identity", idFile}
	rcv := startReceiver(t, store, base, p, keys...)
	waitSync(t, p)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w := startWriter(ctx, t, p, 1, 11)
	for i := range 2 {
		n := w.count() + 40 + 30*i
		pgtest.Eventually(t, 2*time.Minute, "commits", func() bool { return w.count() >= n })
		rcv.kill()
		rcv = startReceiver(t, store, base, p, keys...)
	}
	n := w.count() + 40
	pgtest.Eventually(t, 2*time.Minute, "commits after the last restart", func() bool { return w.count() >= n })
	if !strings.Contains(rcv.logText(), "resuming") {
		t.Errorf("the restarted receiver did not say where it resumed")
	}
	killServer(t, p)
	acked := w.wait()
	rcv.stopOK()
	// Nothing in clear: every stored object of WAL, piece or segment, is
	// age-encrypted.
	stored := 0
	for key := range store.objects(t) {
		if !strings.HasPrefix(key, "stream/") && !strings.HasPrefix(key, "wal/") || strings.HasSuffix(key, "/") || strings.HasPrefix(filepath.Base(key), ".") {
			continue // not WAL, a directory, or what a killed writer left
		}
		data, err := os.ReadFile(filepath.Join(store.dir, key))
		if err != nil {
			t.Fatal(err)
		}
		if stored++; !bytes.HasPrefix(data, []byte("walship-age")) {
			t.Errorf("%s is stored in clear", key)
		}
	}
	if stored == 0 {
		t.Errorf("no WAL object in %s", store.dir)
	}
	restoreInPlace(t, store, base, p, acked, "--identity", idFile)
}

// An asynchronous receiver stores what it received at most every
// --flush-interval: with an hour, what it received stays unreported as
// flushed; SIGTERM stores it, tells the server (the slot moves on) and
// exits 0.
func TestReceiveSIGTERMStoresWhatItHolds(t *testing.T) {
	pgtest.Require(t)
	base := pgtest.Dir(t)
	store := localBackend{dir: filepath.Join(base, "repo")}
	p := syncPrimary(t, store, base, "p", pgtest.InitOptions{})
	backupCreate(t, store, p)
	rcv := startReceiver(t, store, base, p, "--flush-interval", "1h")
	p.WaitQuery("SELECT state FROM pg_stat_replication WHERE application_name = 'walship'", "streaming", time.Minute)
	// The first second's status may report what came before; then rows
	// that stay in one segment.
	time.Sleep(1500 * time.Millisecond)
	p.Query("INSERT INTO t SELECT g, 'x' FROM generate_series(1, 50) g")
	lsn := p.Query("SELECT pg_current_wal_flush_lsn()")
	p.WaitQuery("SELECT write_lsn >= '"+lsn+"' FROM pg_stat_replication WHERE application_name = 'walship'", "t", time.Minute)
	if got := p.Query("SELECT flush_lsn < '" + lsn + "' FROM pg_stat_replication WHERE application_name = 'walship'"); got != "t" {
		t.Errorf("the receiver reported WAL flushed before its flush interval: flush_lsn >= %s", lsn)
	}
	if code := rcv.stop(); code != 0 {
		t.Fatalf("walship receive exited %d after SIGTERM, want 0", code)
	}
	if got := p.Query("SELECT restart_lsn >= '" + lsn + "' FROM pg_replication_slots WHERE slot_name = 'walship'"); got != "t" {
		t.Errorf("after SIGTERM the slot's restart_lsn is %s, want at least %s: the server was not told what was stored",
			p.Query("SELECT restart_lsn FROM pg_replication_slots WHERE slot_name = 'walship'"), lsn)
	}
	ctx, cancel := ioContext()
	defer cancel()
	c, err := catalog.Scan(ctx, store.repo(t))
	if err != nil {
		t.Fatal(err)
	}
	want, err := wal.ParseLSN(lsn)
	if err != nil {
		t.Fatal(err)
	}
	r := store.repo(t)
	id, _, _ := r.Identity(ctx)
	// Stored as pieces, or (the rows completed a segment) whole.
	tail, ok := c.NewestStreamed()
	if _, err := r.Find(ctx, want.SegmentOfEnd(1, id.SegSize)); err != nil && (!ok || tail.EndLSN(id.SegSize) < want) {
		t.Errorf("after SIGTERM the repository's streamed data ends at %v (found %v), want at least %s", tail, ok, lsn)
	}
}

// A receiver streaming from a standby that is promoted follows the switch
// in the stream, without a restart: the server ends timeline 1, the
// receiver stores 00000002.history and goes on with timeline 2. The
// promoted server archives the same history file and segments into the
// repository: one content per name. A restore to the latest holds every
// row written on timeline 2.
func TestReceiveFollowsPromotionInStream(t *testing.T) {
	pgtest.Require(t)
	base := pgtest.Dir(t)
	store := localBackend{dir: filepath.Join(base, "repo")}
	p := syncPrimary(t, store, base, "p", pgtest.InitOptions{})
	backupCreate(t, store, p)
	st := p.BaseBackup(base, "st")
	st.Env = store.env()
	st.Conf("primary_conninfo = '"+p.ConnString()+"'", "hot_standby = on", "recovery_prefetch = off",
		"archive_mode = on", commandLine(t, store, "walship-archive"), "archive_timeout = 0")
	st.Touch("standby.signal")
	st.Start()
	p.WaitQuery("SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'", "1", time.Minute)
	rcv := startReceiver(t, store, base, st, "--flush-interval", "100ms")
	st.WaitQuery("SELECT state FROM pg_stat_replication WHERE application_name = 'walship'", "streaming", time.Minute)
	p.Query("INSERT INTO t SELECT g, 'before' FROM generate_series(1, 100) g")
	st.WaitQuery("SELECT count(*) FROM t", "100", time.Minute)
	p.Stop("fast")
	st.Promote()
	st.WaitQuery("SELECT pg_is_in_recovery()", "f", time.Minute)
	st.Query("INSERT INTO t SELECT g, 'after' FROM generate_series(101, 300) g")
	st.Query("SELECT pg_switch_wal()")
	st.Query("INSERT INTO t SELECT g, 'after' FROM generate_series(301, 400) g")
	end := st.Query("SELECT pg_current_wal_flush_lsn()")
	st.WaitQuery("SELECT flush_lsn >= '"+end+"' FROM pg_stat_replication WHERE application_name = 'walship'", "t", time.Minute)
	log := rcv.logText()
	if !strings.Contains(log, "timeline switch from=1 to=2") {
		t.Errorf("the receiver did not follow the switch in the stream (no \"timeline switch\" line)")
	}
	if strings.Contains(log, "connecting again") || strings.Contains(log, "cannot stream") {
		t.Errorf("the receiver reconnected instead of following the switch in the stream")
	}
	rcv.stopOK()
	st.Stop("fast")
	scanOnce(t, store)
	ctx, cancel := ioContext()
	defer cancel()
	if h, err := wal.ParseName("00000002.history"); err != nil {
		t.Fatal(err)
	} else if _, err := store.repo(t).Find(ctx, h); err != nil {
		t.Errorf("00000002.history: %v", err)
	}
	if log := st.Log(); strings.Contains(log, "different content") || strings.Contains(log, "archive command failed") {
		t.Errorf("the promoted server's archive_command failed beside the receiver")
	}
	c2 := restoreLatest(t, store, base, "copy", st.Port)
	if got := c2.Query("SELECT count(*) FROM t"); got != "400" {
		t.Errorf("restored to the latest: %s rows, want 400", got)
	}
}

// Two receivers on one slot (a warm spare): the server lets one stream,
// the second keeps trying, writes nothing meanwhile, and takes over when
// the first is killed; synchronous commits go on, nothing is stored twice
// or with other content, and a restore to the latest holds every
// acknowledged row.
func TestReceiveWarmSpare(t *testing.T) {
	base := pgtest.Dir(t)
	store := newBackend(t, "local", base, nil)
	p := syncPrimary(t, store, base, "p", pgtest.InitOptions{})
	backupCreate(t, store, p)
	makeSync(t, p, "walship")
	first := startReceiver(t, store, base, p, "--synchronous")
	waitSync(t, p)
	spare := startReceiver(t, store, base, p, "--synchronous")
	pgtest.Eventually(t, time.Minute, "the spare refused a busy slot", func() bool {
		return strings.Contains(spare.logText(), "cannot stream from the server; trying again")
	})
	streaming := func(r *receiverProc) bool { return strings.Contains(r.logText(), "walship: streaming ") }
	if streaming(spare) {
		t.Errorf("the spare streamed while the slot was busy:\n%s", tail(spare.logText(), 2000))
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w := startWriter(ctx, t, p, 1, 11)
	n := w.count() + 50
	pgtest.Eventually(t, 2*time.Minute, "commits through the first receiver", func() bool { return w.count() >= n })
	if streaming(spare) {
		t.Errorf("the spare streamed while the slot was busy:\n%s", tail(spare.logText(), 2000))
	}
	first.kill()
	n = w.count() + 50
	pgtest.Eventually(t, 2*time.Minute, "commits through the spare", func() bool { return w.count() >= n })
	p.WaitQuery("SELECT count(*) FROM pg_stat_replication WHERE application_name = 'walship' AND sync_state = 'sync'", "1", time.Minute)
	if !streaming(spare) {
		t.Errorf("the spare never streamed")
	}
	killServer(t, p)
	acked := w.wait()
	spare.stopOK()
	for _, r := range []*receiverProc{first, spare} {
		if strings.Contains(r.logText(), "other content") {
			t.Errorf("a receiver found other content under a name")
		}
	}
	wantNoGaps(t, store)
	restoreInPlace(t, store, base, p, acked)
}
