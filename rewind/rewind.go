// Package rewind turns an old primary into a standby of the server that
// took over from it, without a new base backup: it checks that the two
// belong together, runs pg_rewind with --restore-target-wal so that the WAL
// the old primary no longer has comes from the walship archive, keeps the
// old primary's own configuration (pg_rewind copies the source's), writes
// the standby configuration for the server's version and, if asked, starts
// the server and waits until it streams.
//
// Nothing in the data directory changes before every precondition holds;
// pg_rewind itself changes nothing before it reports what it must copy,
// and walship reports plainly when a failure came after that point.
package rewind

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/walship/walship/pgdata"
	"github.com/walship/walship/pgserver"
	"github.com/walship/walship/repo"
	"github.com/walship/walship/wal"
)

// Options say what to rewind onto what.
type Options struct {
	DataDir         string // the target: the old primary's data directory
	SourceServer    string // libpq connection string of the source (the new primary)
	PrimaryConnInfo string // primary_conninfo for the standby; default SourceServer
	SlotName        string // primary_slot_name for the standby; default none
	PGBin           string // directory of pg_rewind, pg_controldata, pg_ctl, postgres; "" finds them
	ConfigFile      string // the target's main configuration file, when not DataDir/postgresql.conf
	RestoreBin      string // the walship-restore program
	RestoreArgs     []string
	Repo            *repo.Repo // the repository RestoreArgs name, to check its identity; may be nil
	DryRun          bool       // report what would happen, change nothing
	Progress        bool       // show pg_rewind's progress and every WAL file fetched
	Start           bool       // start the target and wait until it streams
	StartLog        string     // pg_ctl -l; default pgserver.StartLog(DataDir, "walship-rewind-start")
	StartTimeout    time.Duration
	Out             io.Writer // steps, progress and the summary
}

// Result is what a run did.
type Result struct {
	Rewind        RewindOutput
	NoRewind      bool     // nothing to rewind: the target only had to be configured
	Checkpoint    bool     // CHECKPOINT was run on the source
	KeptConf      []string // configuration files put back after pg_rewind (relative to the data directory)
	WroteConf     []string // what the standby configuration consists of
	Streaming     bool
	StreamTLI     uint32
	ReplayLag     int64
	Elapsed       time.Duration
	SourceTLI     uint32
	TargetTLI     uint32
	CrashedTarget bool
}

type runner struct {
	o        Options
	res      Result
	t0       time.Time
	ver      pgdata.Version // the target's, and its pg_rewind's
	bin      string         // the directory of pg_rewind and its installation
	ctl      pgdata.Control
	src      *Source
	mainConf string // "" when it is DataDir/postgresql.conf
	conf     ConfSet
	tempCmd  string // restore_command for pg_rewind
	standby  []pgdata.Setting
	// restoreCmd is the standby's restore_command.
	restoreCmd string
}

// program is the path of one of the target installation's programs.
func (r *runner) program(name string) string { return filepath.Join(r.bin, name) }

// Run rewinds and reconfigures the target. Every error is a *StepError.
func Run(ctx context.Context, o Options) (*Result, error) {
	if o.Out == nil {
		o.Out = io.Discard
	}
	if o.PrimaryConnInfo == "" {
		o.PrimaryConnInfo = o.SourceServer
	}
	if o.StartTimeout <= 0 {
		o.StartTimeout = 5 * time.Minute
	}
	abs, err := filepath.Abs(o.DataDir)
	if err != nil {
		return nil, stepErr(StepTarget, err, "give -D the old primary's data directory")
	}
	o.DataDir = abs
	r := &runner{o: o, t0: time.Now()}
	if err := r.run(ctx); err != nil {
		return &r.res, err
	}
	r.res.Elapsed = time.Since(r.t0)
	r.summary()
	return &r.res, nil
}

func (r *runner) say(step, format string, a ...any) {
	fmt.Fprintf(r.o.Out, "%s: %s\n", step, fmt.Sprintf(format, a...))
}

func (r *runner) detail(format string, a ...any) {
	fmt.Fprintf(r.o.Out, "    %s\n", fmt.Sprintf(format, a...))
}

func (r *runner) run(ctx context.Context) error {
	if err := r.checkTarget(ctx); err != nil {
		return err
	}
	if err := r.checkSource(ctx); err != nil {
		return err
	}
	if err := r.checkRepo(ctx); err != nil {
		return err
	}
	// Every precondition holds. From here on things change: the source's
	// checkpoint, then the target.
	if !r.src.InRecovery && r.src.ControlTLI < r.src.TLI {
		r.detail("the source was promoted recently: its control file still shows timeline %d; running CHECKPOINT so that pg_rewind sees timeline %d", r.src.ControlTLI, r.src.TLI)
		src, err := Checkpoint(ctx, r.o.SourceServer)
		if err != nil {
			return stepErr(StepSource, err, "run CHECKPOINT on the source as a superuser (or a member of pg_checkpoint), then run walship-rewind again")
		}
		r.src, r.res.Checkpoint = src, true
	}
	if r.res.NoRewind {
		r.say(StepRewind, "not needed: the target is on the source's timeline %d and behind it (target at %s, source at %s)",
			r.src.TLI, max(r.ctl.Checkpoint, r.ctl.MinRecovery), r.src.LSN)
	} else if err := r.rewind(ctx); err != nil {
		return err
	}
	if r.o.DryRun {
		return nil
	}
	if err := r.writeStandby(); err != nil {
		return err
	}
	if r.o.Start {
		return r.start(ctx)
	}
	return nil
}

// checkTarget checks the data directory, finds the tools and reads the
// control file: the target must be stopped, owned by us, and rewindable.
func (r *runner) checkTarget(ctx context.Context) error {
	dir := r.o.DataDir
	v, err := pgdata.DataDirVersion(dir)
	if err != nil {
		return stepErr(StepTarget, err, "give -D the old primary's data directory")
	}
	r.ver = v
	if err := checkOwner(dir); err != nil {
		return stepErr(StepTarget, err, "run walship-rewind as the user that owns the data directory and runs the server (sudo -u postgres walship-rewind ...)")
	}
	pid, alive, err := pgdata.PostmasterPID(dir)
	if err != nil {
		return stepErr(StepTarget, err, "remove the damaged postmaster.pid if no server runs on this data directory")
	}
	if alive {
		return stepErr(StepTarget, fmt.Errorf("%w: postmaster.pid names process %d, which is alive", ErrRunning, pid),
			fmt.Sprintf("stop it first (pg_ctl -D %s stop -m fast); it must not be started as a primary again before walship-rewind", dir))
	}
	bin, err := pgserver.FindProgram(ctx, r.o.PGBin, "pg_rewind", v, "pg_controldata", "pg_ctl", "postgres")
	if err != nil {
		return stepErr(StepTools, err, fmt.Sprintf("install the PostgreSQL %s server programs or give --pg-bin the directory that holds its pg_rewind", v))
	}
	r.bin = filepath.Dir(bin)
	out, err := pgserver.Output(ctx, r.program("pg_controldata"), "-D", dir)
	if err == nil {
		r.ctl, err = pgdata.ParseControlData(out)
	}
	if err != nil {
		return stepErr(StepTarget, fmt.Errorf("reading the control file: %w", err), "check that the data directory is intact")
	}
	c := r.ctl
	if !c.WalLogHints && c.ChecksumVersion == 0 {
		return stepErr(StepTarget, fmt.Errorf("%w (pg_controldata: wal_log_hints setting off, data page checksum version 0)", ErrNoHints),
			"pg_rewind cannot rewind this server safely: rebuild it from a new base backup of the source (pg_basebackup -R), and set wal_log_hints = on or initdb --data-checksums for next time")
	}
	if err := r.findConf(); err != nil {
		return err
	}
	state := c.State
	if pid != 0 {
		state += fmt.Sprintf(", stale postmaster.pid (process %d is gone)", pid)
	}
	sums := "data checksums on"
	if c.ChecksumVersion == 0 {
		sums = "wal_log_hints on"
	}
	r.res.TargetTLI = c.TLI()
	r.say(StepTarget, "%s: PostgreSQL %s, system %d, timeline %d, %s, %s", dir, v, c.SysID, c.TLI(), state, sums)
	if !c.CleanShutdown() {
		r.res.CrashedTarget = true
		r.detail("the target was not shut down cleanly (%s): pg_rewind finishes its crash recovery in single-user mode first", c.State)
	}
	return nil
}

// findConf locates the main configuration file and the files to keep.
func (r *runner) findConf() error {
	dir := r.o.DataDir
	main := r.o.ConfigFile
	if main == "" {
		main = pgdata.MainConfFile(dir) // config_file from postmaster.opts
	}
	if main != "" && !filepath.IsAbs(main) {
		main = filepath.Join(dir, main)
	}
	if main == filepath.Join(dir, "postgresql.conf") {
		main = ""
	}
	check := main
	if check == "" {
		check = filepath.Join(dir, "postgresql.conf")
	}
	if _, err := os.Stat(check); err != nil {
		return stepErr(StepTarget, fmt.Errorf("no configuration file: %w", err),
			"give --config-file the server's postgresql.conf (on Debian /etc/postgresql/<version>/main/postgresql.conf)")
	}
	if main != "" && r.ver.Major < 15 {
		return stepErr(StepTools, fmt.Errorf("%w: the configuration is in %s, outside the data directory, and pg_rewind %s has no --config-file (15 and later)", ErrVersion, main, r.ver),
			"copy the configuration into the data directory for the rewind, or use pg_rewind 15 or later")
	}
	set, err := FindConf(dir, main)
	if err != nil {
		return stepErr(StepConfig, err, "fix the target's configuration files")
	}
	r.mainConf, r.conf = main, set
	return nil
}

// checkSource connects to the source and checks that it is the same
// system, in a state pg_rewind can copy from.
func (r *runner) checkSource(ctx context.Context) error {
	next := "check that the new primary runs and that --source-server reaches it (host, port, user; a password from PGPASSWORD or ~/.pgpass)"
	src, err := InspectSource(ctx, r.o.SourceServer)
	if err != nil {
		return stepErr(StepSource, err, next)
	}
	r.src = src
	r.res.SourceTLI = src.TLI
	what := pgserver.Redact(r.o.SourceServer)
	if src.SysID != r.ctl.SysID {
		err := wal.Cluster{SystemID: r.ctl.SysID}.Check("the source "+what, wal.Cluster{SystemID: src.SysID}, "the target")
		return stepErr(StepSource, fmt.Errorf("source and target are different database systems: %w", err),
			"give --source-server the server that took over from this one (its promoted standby), not another cluster")
	}
	if src.Version.Text != r.ver.Text {
		return stepErr(StepSource, fmt.Errorf("%w: the source runs PostgreSQL %s, the target is %s", ErrVersion, src.Version, r.ver),
			"pg_rewind works between servers of the same major version only: rebuild the target from a base backup")
	}
	role := "primary"
	if src.InRecovery {
		role = "standby (in recovery)"
		if r.ver.Major < 14 {
			return stepErr(StepSource, fmt.Errorf("%w: the source %s is a standby and pg_rewind %s copies only from a primary (14 and later copy from a standby)", ErrVersion, what, r.ver),
				"give --source-server the primary")
		}
	}
	r.say(StepSource, "%s: %s on timeline %d at %s, same system, PostgreSQL %s", what, role, src.TLI, src.LSN, src.Version)
	if src.InRecovery {
		r.detail("the source is a standby: pg_rewind copies from it, and the target will stream from it (cascading replication)")
	}
	if src.TLI == r.ctl.TLI() {
		end := max(r.ctl.Checkpoint, r.ctl.MinRecovery)
		if end > src.LSN {
			return stepErr(StepSource, fmt.Errorf("%w %d: the target's WAL reaches %s, the source is at %s", ErrTargetAhead, src.TLI, end, src.LSN),
				"the source has not taken over yet: promote it (pg_ctl promote) or give --source-server the server that did")
		}
		r.res.NoRewind = true
	}
	return nil
}

// checkRepo checks that the repository belongs to the target's system and
// that walship-restore, as pg_rewind and the standby will run it, answers.
func (r *runner) checkRepo(ctx context.Context) error {
	next := "give --repo (and --config, or the S3 flags) the archive the old and the new primary archive into"
	if r.o.Repo != nil {
		id, ok, err := r.o.Repo.Identity(ctx)
		if err != nil {
			return stepErr(StepRepo, fmt.Errorf("%w: %w", ErrRepo, err), next)
		}
		if ok {
			if err := id.Cluster().Check("the target", r.ctl.Cluster(), r.o.Repo.String()); err != nil {
				return stepErr(StepRepo, fmt.Errorf("%w: %w", ErrRepo, err), next)
			}
		}
	}
	bin := r.o.RestoreBin
	if fi, err := os.Stat(bin); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
		return stepErr(StepRepo, fmt.Errorf("%w: no walship-restore program at %s", ErrRepo, bin), "install walship-restore next to walship-rewind or give --restore-bin")
	}
	// For pg_rewind: a read failure must stop it rather than look like a
	// missing file, prefetching stays off whatever a config file says (it
	// is off for pg_rewind's final paths anyway), and --verbose logs each
	// restored file, which walship counts.
	tempArgs := append(append([]string{}, r.o.RestoreArgs...), "--on-error=abort", "--prefetch=0", "--verbose")
	if err := probeRestore(ctx, bin, tempArgs); err != nil {
		return stepErr(StepRepo, fmt.Errorf("%w: %w", ErrRepo, err), next)
	}
	r.tempCmd = pgserver.RestoreCommand(bin, tempArgs)
	r.restoreCmd = pgserver.RestoreCommand(bin, r.o.RestoreArgs)
	r.standby = pgserver.StandbySettings(r.o.PrimaryConnInfo, r.o.SlotName, r.restoreCmd)
	// pg_rewind reads the value back through a buffer of 1024 bytes.
	if len(r.tempCmd) > 1000 {
		return stepErr(StepRepo, fmt.Errorf("%w: the restore_command for pg_rewind would be %d characters, more than pg_rewind reads (1023)", ErrRepo, len(r.tempCmd)),
			"use shorter paths, or put the settings in a --config file")
	}
	where := "repository"
	if r.o.Repo != nil {
		where = r.o.Repo.String()
	}
	r.say(StepRepo, "%s: walship-restore answers (%s)", where, bin)
	return nil
}

// probeRestore runs walship-restore for a history file that cannot exist:
// the answer must be "not found" (exit 1). Anything else means the
// command line or the repository is broken.
func probeRestore(ctx context.Context, bin string, args []string) error {
	tmp, err := os.MkdirTemp("", "walship-rewind-probe-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	cmd := exec.CommandContext(ctx, bin, append(append([]string{}, args...), "FFFFFFFF.history", filepath.Join(tmp, "probe"))...)
	cmd.Env = pgserver.Env(false, "")
	out, err := cmd.CombinedOutput()
	var ee interface{ ExitCode() int }
	if err == nil || (errors.As(err, &ee) && ee.ExitCode() == 1) {
		return nil
	}
	return fmt.Errorf("walship-restore does not answer as a restore_command should (%v): %s", err, pgserver.FirstLine(string(out)))
}
