package rewind

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/walship/walship/pgdata"
	"github.com/walship/walship/pgserver"
	"github.com/walship/walship/wal"
)

// tempMarker ends the temporary restore_command line, so that a leftover
// from a killed run is recognisable.
const tempMarker = "# walship-rewind: temporary, for pg_rewind --restore-target-wal"

// rewind runs pg_rewind with a temporary restore_command in the target's
// postgresql.auto.conf, and puts the target's configuration files back
// afterwards, whatever happens.
func (r *runner) rewind(ctx context.Context) (err error) {
	if r.ver.Major < 13 {
		return stepErr(StepTools, fmt.Errorf("%w: pg_rewind %s has no --restore-target-wal (13 and later), so it cannot fetch WAL from the archive", ErrVersion, r.ver),
			"rebuild the target from a base backup of the source (pg_basebackup -R)")
	}
	if r.o.DryRun && r.res.CrashedTarget {
		r.say(StepRewind, "dry run stops here: pg_rewind --dry-run cannot look past the target's unfinished crash recovery (the real run lets pg_rewind run it first)")
		return nil
	}
	dir := r.o.DataDir
	walBefore := map[string]bool{}
	if ents, err := os.ReadDir(filepath.Join(dir, "pg_wal")); err == nil {
		for _, e := range ents {
			walBefore[e.Name()] = true
		}
	}
	snap, err := TakeSnapshot(r.conf)
	if err != nil {
		return stepErr(StepConfig, fmt.Errorf("saving the target's configuration: %w", err), "fix the files' permissions; nothing was changed")
	}
	defer func() { err = r.afterRewind(snap, walBefore, err) }()

	auto := filepath.Join(dir, "postgresql.auto.conf")
	orig, _ := snap.Content(auto)
	temp := string(orig)
	if temp != "" && !strings.HasSuffix(temp, "\n") {
		temp += "\n"
	}
	temp += "restore_command = " + pgdata.QuoteConfValue(r.tempCmd) + " " + tempMarker + "\n"
	if err := writeFileAtomic(auto, []byte(temp), fileMode(auto, 0o600)); err != nil {
		return stepErr(StepConfig, fmt.Errorf("setting the temporary restore_command: %w", err), "check that the data directory is writable")
	}
	args := []string{"-D", dir}
	if r.mainConf != "" {
		args = append(args, "-c", "config_file="+r.mainConf)
	}
	out, err := pgserver.Output(ctx, r.program("postgres"), append(args, "-C", "restore_command")...)
	if err != nil {
		return stepErr(StepConfig, fmt.Errorf("postgres -C restore_command: %w", err), "fix the target's configuration so that the server can start")
	}
	if got := strings.TrimSpace(out); got != r.tempCmd {
		return stepErr(StepConfig, fmt.Errorf("the target's configuration does not pick up the temporary restore_command from postgresql.auto.conf (postgres -C restore_command prints %q)", got),
			"remove whatever overrides restore_command after postgresql.auto.conf")
	}

	mode := ""
	if r.o.DryRun {
		mode = " --dry-run"
	}
	r.say(StepRewind, "--restore-target-wal%s, with restore_command = walship-restore set in postgresql.auto.conf for the run only", mode)
	// The source's password goes into pg_rewind's environment, never its
	// arguments, which every local user sees in ps.
	source, password := pgserver.ForChild(r.o.SourceServer)
	args = []string{"--target-pgdata=" + dir, "--source-server=" + source, "--restore-target-wal", "--progress"}
	if r.o.DryRun {
		args = append(args, "--dry-run")
	}
	if r.mainConf != "" {
		args = append(args, "--config-file="+r.mainConf)
	}
	o := &r.res.Rewind
	show := func(line string) {
		if r.o.Progress || o.isError(line) {
			r.detail("%s", line)
		}
	}
	runErr := runPgRewind(ctx, r.program("pg_rewind"), args, password, o, show)
	if ctx.Err() != nil {
		return r.rewindFailed(fmt.Errorf("%w while pg_rewind ran", ErrInterrupted))
	}
	if runErr != nil {
		text := o.ErrorText()
		if text == "" {
			text = runErr.Error()
		}
		return r.rewindFailed(fmt.Errorf("%w: %s", ErrRewindFailed, text))
	}
	if o.NoRewind {
		r.res.NoRewind = true
	}
	return nil
}

func (o *RewindOutput) isError(line string) bool {
	return len(o.Errors) > 0 && o.Errors[len(o.Errors)-1] == line
}

// rewindFailed words a pg_rewind failure by whether it had started
// changing the target.
func (r *runner) rewindFailed(err error) error {
	o := &r.res.Rewind
	if o.Copying {
		return &StepError{Step: StepRewind, Changed: true,
			Err:  fmt.Errorf("failed after pg_rewind started changing the target's data files: %w", err),
			Next: "the data directory is probably unusable: rebuild this server from a new base backup of the source (pg_basebackup -R), as pg_rewind's documentation advises"}
	}
	next := "the target's data files were not changed and its configuration is as it was: fix the cause and run walship-rewind again"
	if o.CrashRecovery {
		next = "the target's data files were not changed (except for the crash recovery pg_rewind ran) and its configuration is as it was: fix the cause and run walship-rewind again"
	}
	text := o.ErrorText()
	if strings.Contains(text, "could not restore file") || strings.Contains(text, "could not open file") {
		next = "the WAL pg_rewind needs is neither in the target's pg_wal nor in the repository: check that the old primary archived into this repository (--repo); " + next
	}
	return &StepError{Step: StepRewind, Err: fmt.Errorf("failed before changing the target: %w", err), Next: next}
}

// afterRewind puts the configuration back, removes the WAL files fetched
// for a dry run or a failed one, and reports.
func (r *runner) afterRewind(snap *Snapshot, walBefore map[string]bool, err error) error {
	o := &r.res.Rewind
	changed, rerr := snap.Restore()
	if r.o.DryRun || (err != nil && !o.Copying) {
		for _, f := range o.Restored {
			if !walBefore[f.Name] {
				os.Remove(filepath.Join(r.o.DataDir, "pg_wal", f.Name))
			}
		}
	}
	if rerr != nil {
		next := fmt.Sprintf("put the target's configuration files back by hand before starting it: remove the line ending in %q from postgresql.auto.conf", tempMarker)
		if err == nil {
			step := StepStandby // rewound, but not yet a proper standby
			if r.o.DryRun {
				step = StepConfig
			}
			return &StepError{Step: step, Err: fmt.Errorf("putting the target's configuration back: %w", rerr), Next: next}
		}
		var se *StepError
		if errors.As(err, &se) {
			se.Next += "; also " + next + " (" + rerr.Error() + ")"
		}
		return err
	}
	if err == nil && !r.o.DryRun {
		for _, p := range changed {
			rel, _ := filepath.Rel(r.o.DataDir, p)
			r.res.KeptConf = append(r.res.KeptConf, rel)
		}
	}
	return err
}

func fileMode(path string, def fs.FileMode) fs.FileMode {
	if fi, err := os.Stat(path); err == nil {
		return fi.Mode().Perm()
	}
	return def
}

// writeStandby writes the standby configuration for the target's version
// (pgserver.Recovery): standby.signal and postgresql.auto.conf for 12 and
// later, recovery.conf with standby_mode = on before.
func (r *runner) writeStandby() error {
	names := make([]string, len(r.standby))
	for i, s := range r.standby {
		names[i] = s.Name
		if s.Name == "recovery_target_timeline" {
			names[i] += " = 'latest'"
		}
	}
	rc := pgserver.Recovery{Version: r.ver, Standby: true, Settings: r.standby, Header: "# Written by walship-rewind: this server is a standby.\n"}
	if _, err := rc.Write(r.o.DataDir); err != nil {
		return stepErr(StepStandby, err, "the target is rewound but not configured as a standby: write its standby configuration by hand before starting it, or it starts as a second primary")
	}
	if r.ver.Major < 12 {
		r.res.WroteConf = []string{"recovery.conf: standby_mode = 'on', " + strings.Join(names, ", ")}
	} else {
		r.res.WroteConf = []string{"standby.signal", "postgresql.auto.conf: " + strings.Join(names, ", ")}
	}
	return nil
}

// start starts the target with pg_ctl and waits until it streams from the
// source.
func (r *runner) start(ctx context.Context) error {
	dir := r.o.DataDir
	logFile := r.o.StartLog
	if logFile == "" {
		logFile = pgserver.StartLog(dir, "walship-rewind-start")
	}
	next := fmt.Sprintf("see the server log %s; the target is rewound and configured as a standby: fix the cause and start it with pg_ctl -D %s start", logFile, dir)
	opts := ""
	if r.mainConf != "" {
		opts = "-c config_file=" + pgserver.ShellQuote(r.mainConf)
	}
	if err := pgserver.Start(ctx, r.program("pg_ctl"), dir, logFile, opts); err != nil {
		return stepErr(StepStart, err, next)
	}
	r.say(StepStart, "pg_ctl start (server log %s); waiting until it streams from the source", logFile)
	var last error
	_, err := pgserver.WaitFor(ctx, dir, logFile, r.o.StartTimeout, func(ctx context.Context, pf *pgdata.PIDFile, _ string) (string, bool, error) {
		st, err := r.standbyStatus(ctx, pf)
		if err == nil && st.status == "streaming" {
			r.res.Streaming, r.res.StreamTLI = true, st.tli
			lag := "unknown"
			if src, err := InspectSource(ctx, r.o.SourceServer); err == nil {
				r.res.ReplayLag = max(int64(src.LSN)-int64(st.replay), 0)
				lag = fmt.Sprintf("%d bytes (source at %s, target replayed %s)", r.res.ReplayLag, src.LSN, st.replay)
			}
			r.say(StepStart, "streaming from the source on timeline %d; replay lag %s", st.tli, lag)
			return "", true, nil
		}
		if err == nil {
			err = fmt.Errorf("WAL receiver status %q", st.status)
			if st.status == "" {
				err = errors.New("no WAL receiver yet")
			}
		}
		last = err
		return "", false, nil
	}, nil)
	switch {
	case err == nil:
		return nil
	case ctx.Err() != nil:
		return stepErr(StepStart, fmt.Errorf("%w while waiting for streaming", ErrInterrupted), "the server runs as a standby; check pg_stat_wal_receiver on it")
	case errors.Is(err, pgserver.ErrStopped):
		return stepErr(StepStart, fmt.Errorf("%w: the server stopped after it started (%v; %v)", ErrNotStreaming, last, err), next)
	}
	return stepErr(StepStart, fmt.Errorf("%w after %s: %v", ErrNotStreaming, r.o.StartTimeout, last),
		fmt.Sprintf("see the server log %s: the server runs as a standby; check primary_conninfo and that the source allows replication connections (pg_hba.conf)", logFile))
}

type receiverStatus struct {
	status string
	tli    uint32
	replay wal.LSN
}

// standbyStatus asks the started target about its WAL receiver, connecting
// with the source's connection settings at the address in postmaster.pid.
func (r *runner) standbyStatus(ctx context.Context, pf *pgdata.PIDFile) (receiverStatus, error) {
	conn, err := pgserver.ConnectLocal(ctx, pf, r.o.SourceServer)
	if err != nil {
		return receiverStatus{}, err
	}
	defer conn.Close(context.Background())
	var st receiverStatus
	var status, replay *string
	var tli *int64
	err = conn.QueryRow(ctx, `SELECT (SELECT status FROM pg_stat_wal_receiver), (SELECT received_tli FROM pg_stat_wal_receiver),
		pg_last_wal_replay_lsn()::text`).Scan(&status, &tli, &replay)
	if err != nil {
		return st, err
	}
	if status != nil {
		st.status = *status
	}
	if tli != nil {
		st.tli = uint32(*tli)
	}
	if replay != nil {
		st.replay, _ = wal.ParseLSN(*replay)
	}
	return st, nil
}

// summary prints what was done (or, in a dry run, what would be).
func (r *runner) summary() {
	res := &r.res
	o := &res.Rewind
	var lines []string
	if o.HaveDivergence {
		lines = append(lines, fmt.Sprintf("servers diverged at %s on timeline %d; target %s from the last common checkpoint at %s on timeline %d",
			o.Diverged, o.DivergedTLI, map[bool]string{true: "would be rewound", false: "rewound"}[r.o.DryRun], o.Checkpoint, o.CheckpointTLI))
	}
	if res.NoRewind {
		lines = append(lines, "no rewind was needed: the target's WAL ends before the source's timeline branched off")
	}
	if len(o.Restored) > 0 || o.HaveDivergence {
		var names []string
		for _, f := range o.Restored {
			names = append(names, f.Name)
		}
		verb := "fetched"
		if r.o.DryRun {
			verb = "to fetch (fetched for the dry run, then removed)"
		}
		l := fmt.Sprintf("WAL from the archive %s: %d files, %s", verb, len(o.Restored), mib(o.RestoredBytes()))
		if len(names) > 0 {
			l += " (" + strings.Join(names, ", ") + ")"
		}
		lines = append(lines, l)
	}
	if o.Copying {
		verb := "copied"
		if r.o.DryRun {
			verb = "would copy"
		}
		lines = append(lines, fmt.Sprintf("pg_rewind %s %d MB of the source's %d MB", verb, o.CopyMB, o.TotalMB))
	}
	if r.o.DryRun {
		lines = append(lines, "then: keep the target's own configuration files, write standby.signal and the standby settings, "+
			fmt.Sprintf("restore_command = %s", r.restoreCmd))
		fmt.Fprintf(r.o.Out, "dry run finished in %s; nothing was changed in %s\n", res.Elapsed.Round(time.Millisecond), r.o.DataDir)
	} else {
		if len(res.KeptConf) > 0 {
			lines = append(lines, "kept the target's own "+strings.Join(res.KeptConf, ", ")+" (pg_rewind had copied the source's)")
		}
		lines = append(lines, "standby configuration: "+strings.Join(res.WroteConf, "; "))
		if res.Streaming {
			lines = append(lines, fmt.Sprintf("streaming from the source on timeline %d, replay lag %d bytes", res.StreamTLI, res.ReplayLag))
		} else {
			lines = append(lines, "start it with pg_ctl start: it streams from "+pgserver.Redact(r.o.PrimaryConnInfo)+" and restores from the archive")
		}
		fmt.Fprintf(r.o.Out, "done in %s: %s is a standby of %s\n", res.Elapsed.Round(time.Millisecond), r.o.DataDir, pgserver.Redact(r.o.SourceServer))
	}
	for _, l := range lines {
		r.detail("%s", l)
	}
}
