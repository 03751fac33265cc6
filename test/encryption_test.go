package test

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/walship/walship/internal/testenv/pgtest"
	"github.com/walship/walship/repo"
)

// ageKey makes an age key pair: the identity file (mode 0600, owned by the
// server's user) in dir, and the recipient.
func ageKey(t *testing.T, dir, name string, more ...*age.X25519Identity) (recipient, identityFile string, id *age.X25519Identity) {
	t.Helper()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	identityFile = filepath.Join(dir, name+".key")
	text := "# walship test key\n" + id.String() + "\n"
	for _, m := range more {
		text += m.String() + "\n"
	}
	if err := os.WriteFile(identityFile, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	pgtest.Chown(t, identityFile)
	return id.Recipient().String(), identityFile, id
}

// rawObjects reads every stored object of the archive below the repo
// layer, as stored.
func rawObjects(t *testing.T, store archiveBackend) map[string][]byte {
	t.Helper()
	ctx, cancel := ioContext()
	defer cancel()
	out := map[string][]byte{}
	for key := range store.objects(t) {
		if strings.HasSuffix(key, "/") || strings.Contains(key, "://") {
			continue
		}
		rc, err := store.store(t).Open(ctx, key)
		if err != nil {
			t.Fatalf("reading %s: %v", key, err)
		}
		data, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		out[key] = data
	}
	return out
}

// TestEncryptedArchivePITRAndRotation, on every backend: a primary that
// holds only the public keys archives encrypted (no stored object holds a
// clear row), the key is rotated half-way, and a PITR with an identity file
// that holds both keys reaches the restore point; one that holds only the
// old key stops with FATAL at the first segment of the new one, naming the
// key it needs, instead of ending early.
func TestEncryptedArchivePITRAndRotation(t *testing.T) {
	forEachBackend(t, func(t *testing.T, base string, store archiveBackend) {
		oldRcpt, oldFile, oldID := ageKey(t, base, "old")
		newRcpt, _, newID := ageKey(t, base, "new")
		_, bothFile, _ := ageKey(t, base, "both", oldID, newID)
		_ = newRcpt

		p := archivingPrimary(t, store, base, "primary", "--recipient", oldRcpt)
		p.Pgbench("-i", "-s", "2", "-q")
		backup := p.BaseBackup(base, "restored")
		oldOnly := p.BaseBackup(base, "oldonly")
		backup.Env, oldOnly.Env = store.env(), store.env()
		const secret = "walship-clear-text-canary"
		p.Query("CREATE TABLE canary AS SELECT '" + secret + "'::text || g AS s FROM generate_series(1, 2000) g")
		p.Query("SELECT pg_switch_wal()")

		// Rotation: new segments go to the new key only.
		p.Conf(commandLine(t, store, "walship-archive", "--recipient", newRcpt))
		p.Query("SELECT pg_reload_conf()")
		time.Sleep(500 * time.Millisecond)
		p.Pgbench("-c", "2", "-t", "500", "-n")
		p.Query("CREATE TABLE marker AS SELECT count(*) AS n, sum(abalance) AS s FROM pgbench_accounts")
		want := p.Query("SELECT n || ':' || s FROM marker")
		p.Query("SELECT pg_create_restore_point('before_damage')")
		p.Query("DROP TABLE pgbench_history")
		lastSeg := p.Query("SELECT pg_walfile_name(pg_current_wal_lsn())")
		p.Query("SELECT pg_switch_wal()")
		p.WaitQuery("SELECT last_archived_wal >= '"+lastSeg+"' FROM pg_stat_archiver", "t", 120*time.Second)
		if failed := pgStat(p, "failed_count"); failed != 0 {
			t.Errorf("pg_stat_archiver.failed_count = %d, want 0\n%s", failed, p.Log())
		}

		id, _ := readIdentity(t, store)
		if id.Encryption == nil || len(id.Encryption.Recipients) != 1 || id.Encryption.Recipients[0] != repo.Fingerprint(oldRcpt) {
			t.Errorf("identity file records encryption %+v, want the first key's fingerprint", id.Encryption)
		}
		newFP := repo.Fingerprint(newRcpt)
		sawNew := false
		for key, data := range rawObjects(t, store) {
			if bytes.Contains(data, []byte(secret)) {
				t.Errorf("%s holds clear text", key)
			}
			if key != repo.IdentityKey && !bytes.HasPrefix(data, []byte("walship-age v2 ")) {
				t.Errorf("%s is not an encrypted object", key)
			}
			sawNew = sawNew || bytes.Contains(data[:min(len(data), 200)], []byte("keys="+newFP))
		}
		if !sawNew {
			t.Error("no object is encrypted to the new key after the rotation")
		}

		restoreToPoint(t, backup, commandLine(t, store, "walship-restore", "--identity", bothFile), want, 180*time.Second)
		if got := backup.Query("SELECT count(*) FROM canary"); got != "2000" {
			t.Errorf("restored canary rows = %s, want 2000", got)
		}

		oldOnly.Conf(commandLine(t, store, "walship-restore", "--identity", oldFile), "archive_mode = off",
			"recovery_target_name = 'before_damage'")
		oldOnly.Touch("recovery.signal")
		oldOnly.StartNoWait()
		wantStoppedInRecovery(t, oldOnly, "no identity given decrypts", newFP)
	})
}

// TestEncryptedTamperAbortsRecovery flips bytes in the middle of an
// encrypted object a point-in-time recovery needs: authentication fails
// and the recovery stops with FATAL.
func TestEncryptedTamperAbortsRecovery(t *testing.T) {
	d := damageArchiveWith(t, nil, nil, 1, flipMiddle, func(base string) ([]string, []string) {
		r, f, _ := ageKey(t, base, "key")
		return []string{"--recipient", r}, []string{"--identity", f}
	})
	wantRecoveryAborted(t, d, d.backups[0])
}

// TestEncryptedWarmStandby: an archive-only warm standby reads an encrypted
// repository with its identity file, applies each segment as it arrives,
// and holds every row when a trigger file promotes it. Without the
// identity, a standby keeps asking (exit 1, a line naming the key) instead
// of ending recovery. An archiver without the recipient is refused.
func TestEncryptedWarmStandby(t *testing.T) {
	pgtest.Require(t)
	base := pgtest.Dir(t)
	repoDir := filepath.Join(base, "repo")
	rcpt, keyFile, _ := ageKey(t, base, "key")
	p := pgtest.NewCluster(t, base, "primary", pgtest.InitOptions{})
	p.Conf("archive_mode = on", pgtest.ArchiveCommand(t, repoDir, "--recipient", rcpt), "archive_timeout = 0")
	p.Start()
	p.Query("CREATE TABLE t (id int)")
	p.Query("INSERT INTO t SELECT generate_series(1, 1000)")

	trigger := filepath.Join(base, "promote.trigger")
	s := p.BaseBackup(base, "warm")
	s.Conf(pgtest.RestoreCommand(t, repoDir, "--standby", "--trigger", trigger, "--identity", keyFile),
		"recovery_prefetch = off", "hot_standby = on", "archive_mode = off")
	s.Touch("recovery.signal")
	s.Start()
	blind := p.BaseBackup(base, "blind")
	blind.Conf(pgtest.RestoreCommand(t, repoDir), "archive_mode = off", "wal_retrieve_retry_interval = '100ms'")
	blind.Touch("standby.signal")
	blind.StartNoWait()

	p.Query("INSERT INTO t SELECT generate_series(1, 500)")
	switchAndArchive(t, p)
	want := p.Query("SELECT count(*) FROM t")
	s.WaitQuery("SELECT count(*) FROM t", want, 60*time.Second)

	writeTrigger(t, trigger, "")
	s.WaitQuery("SELECT pg_is_in_recovery()", "f", 60*time.Second)
	if got := s.Query("SELECT count(*) FROM t"); got != want {
		t.Errorf("promoted standby has %s rows, want %s", got, want)
	}

	pgtest.Eventually(t, 60*time.Second, "the standby without a key to ask again", func() bool {
		return strings.Count(blind.Log(), "walship-restore: ") >= 3
	})
	if line := logLine(blind.Log(), "walship-restore: "); !strings.Contains(line, "no identity was given") || !strings.Contains(line, repo.Fingerprint(rcpt)) {
		t.Errorf("walship-restore's line without a key = %q, want that no identity was given and the key's fingerprint", line)
	}
	if strings.Contains(blind.Log(), "FATAL") {
		t.Errorf("the standby without a key ended; log:\n%s", blind.Log())
	}

	// The same file archived again by hand without the recipient: refused.
	name := p.Query("SELECT pg_walfile_name(pg_current_wal_lsn())")
	p.Query("SELECT pg_switch_wal()")
	path := filepath.Join(p.Data, "pg_wal", name)
	r := walship(t, runOpts{}, "walship-archive", "--repo", repoDir, path, name)
	wantOneLine(t, "a clear push into an encrypted repository", r, []int{2}, "walship-archive", "encrypted", "--recipient")
}
