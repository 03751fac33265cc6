package rewind

import (
	"bufio"
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// A pg_rewind 15 run with walship-restore --verbose as restore_command
// (the restore lines come from walship-restore on the same stderr).
const rewindTranscript = `pg_rewind: connected to server
pg_rewind: executing "/usr/lib/postgresql/15/bin/postgres" for target server to complete crash recovery
pg_rewind: servers diverged at WAL location 0/4021518 on timeline 1
2024-01-02 03:04:05.678 UTC [4242] walship-restore: restored file=000000010000000000000004 from=wal/0000000100000000/000000010000000000000004.lz4 bytes=16777216
2024-01-02 03:04:05.712 UTC [4243] walship-restore: DEBUG: not in the archive file=00000002.history
2024-01-02 03:04:05.750 UTC [4244] walship-restore: restored file=000000010000000000000003 from=wal/0000000100000000/000000010000000000000003.lz4 bytes=16777216
pg_rewind: rewinding from last common checkpoint at 0/3000060 on timeline 1
pg_rewind: reading source file list
pg_rewind: reading target file list
pg_rewind: reading WAL in target
pg_rewind: need to copy 67 MB (total source directory size is 86 MB)
    0/69494 kB (0%) copied` + "\r" + `69494/69494 kB (100%) copied
pg_rewind: creating backup label and updating control file
pg_rewind: syncing target data directory
pg_rewind: Done!
`

func feed(t *testing.T, o *RewindOutput, text string) []string {
	t.Helper()
	var shown []string
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Split(scanLinesOrCR)
	for sc.Scan() {
		if s := o.Line(sc.Text()); s != "" {
			shown = append(shown, s)
		}
	}
	return shown
}

func TestRewindOutput(t *testing.T) {
	var o RewindOutput
	shown := feed(t, &o, rewindTranscript)
	if !o.HaveDivergence || o.Diverged != 0x4021518 || o.DivergedTLI != 1 || o.Checkpoint != 0x3000060 || o.CheckpointTLI != 1 {
		t.Errorf("divergence: %+v", o)
	}
	if !o.CrashRecovery || !o.Copying || o.CopyMB != 67 || o.TotalMB != 86 || !o.Done || o.NoRewind || o.SameTimeline {
		t.Errorf("flags: %+v", o)
	}
	want := []Restored{{"000000010000000000000004", 16 << 20}, {"000000010000000000000003", 16 << 20}}
	if !reflect.DeepEqual(o.Restored, want) || o.RestoredBytes() != 32<<20 {
		t.Errorf("restored %v", o.Restored)
	}
	if len(o.Errors) != 0 {
		t.Errorf("errors %v", o.Errors)
	}
	for _, s := range shown {
		if strings.Contains(s, "walship-restore:") {
			t.Errorf("a raw walship-restore log line is shown: %q", s)
		}
	}
	if !reflect.DeepEqual(shown[3:5], []string{
		"fetched 000000010000000000000004 from the archive (16.0 MiB; 1 so far)",
		"fetched 000000010000000000000003 from the archive (16.0 MiB; 2 so far)"}) {
		t.Errorf("shown %q", shown)
	}
	if !reflect.DeepEqual(shown[len(shown)-5:len(shown)-3], []string{"0/69494 kB (0%) copied", "69494/69494 kB (100%) copied"}) {
		t.Errorf("progress lines %q", shown)
	}
}

func TestRewindOutputFailures(t *testing.T) {
	var o RewindOutput
	feed(t, &o, `pg_rewind: servers diverged at WAL location 0/4021518 on timeline 1
2024-01-02 03:04:05.678 UTC [4242] walship-restore: 000000010000000000000003: s3 GetObject: connection refused (aborting recovery: the archive cannot be read)
pg_rewind: error: restore_command failed: child process exited with exit code 255
`)
	if o.Copying {
		t.Error("Copying before any need to copy")
	}
	want := "000000010000000000000003: s3 GetObject: connection refused (aborting recovery: the archive cannot be read); restore_command failed: child process exited with exit code 255"
	if got := o.ErrorText(); got != want {
		t.Errorf("ErrorText\n got %q\nwant %q", got, want)
	}

	o = RewindOutput{}
	feed(t, &o, "pg_rewind: source and target cluster are on the same timeline\npg_rewind: no rewind required\n")
	if !o.SameTimeline || !o.NoRewind || o.HaveDivergence {
		t.Errorf("no rewind: %+v", o)
	}

	o = RewindOutput{}
	feed(t, &o, "pg_rewind: fatal: could not open file \"/d/pg_wal/000000010000000000000003\": No such file or directory\n")
	if got := o.ErrorText(); !strings.HasPrefix(got, "could not open file") {
		t.Errorf("PostgreSQL 13's fatal: %q", got)
	}
}

func TestRewindFailedWording(t *testing.T) {
	r := &runner{}
	r.res.Rewind = RewindOutput{Errors: []string{`pg_rewind: error: could not restore file "000000010000000000000003" from archive`}}
	err := r.rewindFailed(ErrRewindFailed)
	var se *StepError
	if !errors.As(err, &se) || se.Changed || !strings.Contains(se.Next, "not changed") || !strings.Contains(se.Next, "--repo") {
		t.Errorf("before copying: %v", err)
	}
	r.res.Rewind.Copying = true
	err = r.rewindFailed(ErrRewindFailed)
	if !errors.As(err, &se) || !se.Changed || !strings.Contains(se.Next, "base backup") || !strings.Contains(se.Error(), "started changing") {
		t.Errorf("after copying started: %v", err)
	}
}

// TestRunPgRewindCancel: when the context ends, pg_rewind gets SIGTERM and
// runPgRewind returns once it has exited.
func TestRunPgRewindCancel(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "pg_rewind")
	script := "#!/bin/sh\ntrap 'echo \"pg_rewind: error: got SIGTERM\"; exit 1' TERM\necho 'pg_rewind: servers diverged at WAL location 0/3000000 on timeline 1'\nwhile :; do sleep 0.05; done\n"
	if err := os.WriteFile(bin, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var o RewindOutput
	done := make(chan error, 1)
	go func() {
		done <- runPgRewind(ctx, bin, nil, "", &o, func(s string) {
			if strings.Contains(s, "diverged") {
				cancel()
			}
		})
	}()
	select {
	case err := <-done:
		if err == nil {
			t.Error("no error from a pg_rewind that was stopped")
		}
	case <-time.After(30 * time.Second):
		t.Fatal("runPgRewind did not return after the context ended")
	}
	if !o.HaveDivergence || o.ErrorText() != "got SIGTERM" {
		t.Errorf("output %+v", o)
	}
}
