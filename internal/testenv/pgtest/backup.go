package pgtest

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// LowLevelBackup copies the running cluster c into base/name the way a DBA
// does without pg_basebackup: in one session pg_backup_start (13 and 14:
// pg_start_backup, non-exclusive), a copy of the data directory,
// pg_backup_stop waiting for the WAL to be archived (13 and 14:
// pg_stop_backup), and its label file written as backup_label. The server
// archives the backup history file (.backup) as for pg_basebackup. The
// copy holds no WAL: it comes from the archive.
func (c *Cluster) LowLevelBackup(base, name, label string) *Cluster {
	c.t.Helper()
	b := Attach(c.t, base, name)
	b.Server = c.Server
	start, stop := "pg_backup_start('%s', true)", "pg_backup_stop(true)"
	if c.Server.Major < 15 {
		start, stop = "pg_start_backup('%s', true, false)", "pg_stop_backup(false, true)"
	}
	// psql holds the session open in a shell escape while the copy is made:
	// the shell says it started, then waits for the copy to be done.
	work := Mkdir(c.t, filepath.Join(base, "."+name+"-backup"))
	started, copied := filepath.Join(work, "started"), filepath.Join(work, "copied")
	labelFile := filepath.Join(work, "backup_label")
	script := filepath.Join(work, "backup.sql")
	sql := fmt.Sprintf("SELECT 1 FROM "+start+";\n"+
		"\\! touch %s; while [ ! -e %s ]; do sleep 0.05; done\n"+
		"\\o %s\nSELECT labelfile FROM "+stop+";\n\\o\n",
		strings.ReplaceAll(label, "'", "''"), started, copied, labelFile)
	if err := os.WriteFile(script, []byte(sql), 0o644); err != nil {
		c.t.Fatal(err)
	}
	cmd := Command(c.t, Tool(c.t, "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-At", "-h", c.Socket,
		"-p", strconv.Itoa(c.Port), "-U", "postgres", "-d", "postgres", "-f", script)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	finish := func() error { // lets psql go on and waits for it
		f, err := os.Create(copied)
		if err == nil {
			f.Close()
		}
		select {
		case err := <-done:
			return err
		case <-time.After(120 * time.Second):
			cmd.Process.Kill()
			<-done
			return errors.New("psql still runs 120s after the copy (the stop waits until the WAL is archived: does archiving fail?)")
		}
	}
	deadline := time.Now().Add(120 * time.Second)
	for {
		if _, err := os.Stat(started); err == nil {
			break
		}
		select {
		case err := <-done:
			c.t.Fatalf("low-level backup of %s: psql ended before the copy: %v\n%s", c.Name, err, out.String())
		default:
		}
		if time.Now().After(deadline) {
			finish()
			c.t.Fatalf("low-level backup of %s: %s did not start within 120s\n%s", c.Name, start, out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	copyErr := copyDataDir(c.Data, b.Data)
	if err := finish(); err != nil {
		c.t.Fatalf("low-level backup of %s: %v\n%s", c.Name, err, out.String())
	}
	if copyErr != nil {
		c.t.Fatalf("low-level backup of %s: copying the data directory: %v", c.Name, copyErr)
	}
	labelText, err := os.ReadFile(labelFile)
	if err != nil || !strings.Contains(string(labelText), "START WAL LOCATION:") {
		c.t.Fatalf("low-level backup of %s: no label file from %s (%v): %q\n%s", c.Name, stop, err, labelText, out.String())
	}
	// psql ends the value with a newline of its own.
	labelText = []byte(strings.TrimRight(string(labelText), "\n") + "\n")
	if err := os.WriteFile(filepath.Join(b.Data, "backup_label"), labelText, 0o600); err != nil {
		c.t.Fatal(err)
	}
	if err := chownTree(c.t, b.Data); err != nil {
		c.t.Fatal(err)
	}
	os.RemoveAll(work)
	// The copy carries c's port and socket settings; give it its own.
	b.Conf()
	return b
}

// skipInBackup are the entries of a data directory a base backup leaves
// out, or keeps only as empty directories (as pg_basebackup does).
var (
	skipInBackup = map[string]bool{"postmaster.pid": true, "postmaster.opts": true, "backup_label": true,
		"tablespace_map": true, "backup_manifest": true, "standby.signal": true, "recovery.signal": true,
		"pg_internal.init": true}
	emptyInBackup = map[string]bool{"pg_wal": true, "pg_dynshmem": true, "pg_notify": true, "pg_replslot": true,
		"pg_serial": true, "pg_snapshots": true, "pg_stat_tmp": true, "pg_subtrans": true}
)

// copyDataDir copies the data directory of a running server: files that
// vanish meanwhile are left out, as the server allows during a backup.
func copyDataDir(src, dst string) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		rel, _ := filepath.Rel(src, path)
		top, _, _ := strings.Cut(rel, string(filepath.Separator))
		if skipInBackup[d.Name()] || strings.HasPrefix(d.Name(), "pgsql_tmp") {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			if err := os.MkdirAll(target, 0o700); err != nil {
				return err
			}
			if emptyInBackup[top] && rel == top {
				if top == "pg_wal" {
					if err := os.Mkdir(filepath.Join(target, "archive_status"), 0o700); err != nil {
						return err
					}
				}
				return filepath.SkipDir
			}
			return nil
		}
		if emptyInBackup[top] || !d.Type().IsRegular() {
			return nil
		}
		return copyFile(path, target)
	})
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// chownTree gives every file under dir to the server's user.
func chownTree(t testing.TB, dir string) error {
	cred := Credential(t)
	if cred == nil {
		return nil
	}
	return filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(path, int(cred.Uid), int(cred.Gid))
	})
}
