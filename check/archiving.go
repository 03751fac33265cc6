package check

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/walship/walship/pgdata"
	"github.com/walship/walship/pgserver"
	"github.com/walship/walship/repo"
	"github.com/walship/walship/storage"
	"github.com/walship/walship/wal"
)

// archiving says when the server archives: now (a primary with
// archive_mode on, or any server with always), or only once promoted (a
// standby with on).
func archiving(s *Server) (now, promoted bool) {
	mode := s.Settings["archive_mode"]
	on, _ := pgdata.ParseBool(mode)
	switch {
	case mode == "always":
		return true, true
	case !on:
		return false, false
	case s.Standby:
		return false, true
	}
	return true, true
}

// checkServer looks at the server's archive settings, forces a switch,
// and reads its archiver and backlog.
func checkServer(ctx context.Context, conn *pgx.Conn, rep *Report, r *repo.Repo, o Options) {
	s := rep.Server
	role := "primary"
	if s.Standby {
		role = "standby"
	}
	rep.add("server", OK, "%s of system %d (PostgreSQL %s), timeline %d, at %s", role, s.SystemID,
		pgdata.VersionFromNum(s.Version), s.Timeline, s.LSN)
	now, promoted := archiving(s)
	mode := s.Settings["archive_mode"]
	switch {
	case now && s.Standby:
		rep.add("archive_mode", OK, "archive_mode = %s: this standby archives what it receives", mode)
	case now:
		rep.add("archive_mode", OK, "archive_mode = %s", mode)
	case promoted:
		rep.add("archive_mode", OK, "archive_mode = %s: the primary archives; this standby will once promoted", mode)
	case s.Standby:
		rep.add("archive_mode", Warning, "archive_mode = %s: once promoted this server archives nothing", orUnset(mode))
	default:
		rep.add("archive_mode", Critical, "archive_mode = %s: the server archives nothing", orUnset(mode))
	}
	if !now && !promoted {
		return
	}
	// A standby that archives only once promoted: what is wrong is for
	// later, a warning.
	bad := Critical
	if !now {
		bad = Warning
	}
	configured := checkCommand(rep, s, r, o, bad)
	if !now {
		return
	}
	if configured && o.Switch && !s.Standby {
		checkSwitch(ctx, conn, rep, r, o)
	}
	checkArchiver(rep, s)
	checkBacklog(rep, s, o)
}

func orUnset(v string) string {
	if v == "" {
		return "(unreadable)"
	}
	return v
}

// checkCommand checks that archive_command runs a walship-archive that
// exists into r. It reports whether archiving is configured at all
// (worth forcing a switch for).
func checkCommand(rep *Report, s *Server, r *repo.Repo, o Options, bad Status) bool {
	if lib := s.Settings["archive_library"]; lib != "" {
		rep.add("archive_command", Warning, "archive_library = %q: the server archives through that module, not archive_command", lib)
		return true
	}
	line, ok := s.Settings["archive_command"]
	if !ok {
		rep.add("archive_command", Warning, "archive_command cannot be read by this role (it needs superuser or pg_read_all_settings, which pg_monitor has)")
		return true
	}
	if strings.TrimSpace(line) == "" {
		rep.add("archive_command", bad, "archive_command is empty: nothing is archived and WAL piles up in pg_wal")
		return false
	}
	cmd, ok := pgserver.ParseArchiveCommand(line)
	if !ok {
		rep.add("archive_command", Warning, "archive_command %q does not run %s: only the segment switch can tell whether it archives into %s", line, pgserver.ArchiveProgram, r)
		return true
	}
	dataDir := o.DataDir
	if dataDir == "" {
		dataDir = s.Settings["data_directory"]
	}
	env, envErr := serverEnv(s, dataDir)
	path, getenv := os.Getenv("PATH"), func(string) string { return "" }
	if envErr == nil {
		path, getenv = env["PATH"], func(k string) string { return env[k] }
	}
	if prog, err := lookPath(cmd.Program, path, dataDir); err != nil {
		if envErr != nil && !strings.Contains(cmd.Program, "/") {
			rep.add("archive_command", Warning, "archive_command runs %s: %v (the server's environment could not be read: %v; this is walship check's own PATH)", cmd.Program, err, envErr)
		} else {
			rep.add("archive_command", bad, "archive_command runs %s: %v: the shell fails with exit status 127, which pg_stat_archiver does not count as a failure", cmd.Program, err)
		}
	} else {
		rep.add("archive_command", OK, "archive_command runs %s", prog)
	}
	loc, err := cmd.Repository(getenv, dataDir)
	switch {
	case err != nil:
		rep.add("destination", Warning, "cannot tell which repository archive_command archives into: %v", err)
	case !storage.SameLocation(loc, r.String(), dataDir):
		rep.add("destination", bad, "archive_command archives into %s, not into %s", loc, r)
	default:
		rep.add("destination", OK, "archive_command archives into %s", r)
	}
	return true
}

// checkSwitch forces a segment switch and waits for the segment in r.
func checkSwitch(ctx context.Context, conn *pgx.Conn, rep *Report, r *repo.Repo, o Options) {
	s := rep.Server
	before, readyBefore := s.Archiver, s.Ready
	busyBefore := archiverBusy(ctx, conn)
	seg, err := switchSegment(ctx, conn)
	if err != nil {
		rep.add("switch", Warning, "could not force a segment switch: %v (the role needs EXECUTE on pg_create_restore_point and pg_switch_wal)", err)
		return
	}
	start := o.Now()
	deadline := start.Add(o.Timeout)
	reported := false // the server says it archived seg
	var lastErr error
	for {
		_, err := r.Find(ctx, seg)
		if err == nil {
			rep.add("switch", OK, "forced a segment switch: %s reached the repository in %s", seg, o.Now().Sub(start).Round(time.Millisecond))
			refresh(ctx, conn, s)
			return
		}
		if !storage.IsNotExist(err) && !errors.Is(err, repo.ErrNoRepository) {
			lastErr = err
		}
		if reported {
			rep.add("switch", Critical, "forced a segment switch: the server reports %s archived, but it is not in %s: archive_command archives somewhere else", seg, r)
			refresh(ctx, conn, s)
			return
		}
		if s.readArchiver(ctx, conn) == nil && archivedBy(s.Archiver, seg) {
			reported = true
			continue // one more look: it may have arrived just now
		}
		if !o.Now().Before(deadline) || ctx.Err() != nil {
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(o.Poll):
		}
	}
	refresh(ctx, conn, s)
	msg := fmt.Sprintf("forced a segment switch: %s was not in %s after %s", seg, r, o.Timeout)
	switch {
	case busyBefore && archiverBusy(ctx, conn) && s.Archiver.Archived == before.Archived && s.Archiver.Failed == before.Failed:
		msg += fmt.Sprintf("; archive_command ran all that time without finishing (for %s, .ready backlog %d): it hangs", s.Ready.Oldest, s.Ready.Count)
	case s.Archiver.Failed > before.Failed:
		msg += fmt.Sprintf("; archive_command failed %d time(s) meanwhile, the last for %s at %s (see the server log)",
			s.Archiver.Failed-before.Failed, s.Archiver.LastFailedWAL, s.Archiver.LastFailed.UTC().Format(time.RFC3339))
	case s.ReadyErr == nil:
		msg += fmt.Sprintf("; pg_stat_archiver counted no failure meanwhile while the .ready backlog went from %d to %d: "+
			"archive_command fails with an exit status above 125 (127: command not found), which is not counted, or it hangs (see the server log)",
			readyBefore.Count, s.Ready.Count)
	default:
		msg += "; pg_stat_archiver counted no failure meanwhile: archive_command hangs, or fails with an exit status above 125 (127: command not found), which is not counted (see the server log)"
	}
	if lastErr != nil {
		msg += fmt.Sprintf("; looking for it in the repository failed: %v", lastErr)
	}
	rep.add("switch", Critical, "%s", msg)
}

// refresh reads the position, the archiver and the backlog again.
func refresh(ctx context.Context, conn *pgx.Conn, s *Server) {
	s.readPosition(ctx, conn)
	s.readArchiver(ctx, conn)
	s.Ready, s.ReadyErr = readBacklog(ctx, conn)
}

// archivedBy reports whether the archiver's last archived file is seg or
// a later segment of its timeline.
func archivedBy(a Archiver, seg wal.Name) bool {
	n, err := wal.ParseName(a.LastArchivedWAL)
	return err == nil && n.Kind == wal.KindSegment && n.Timeline == seg.Timeline && wal.ComparePosition(n, seg) >= 0
}

// checkArchiver reads pg_stat_archiver: failing now, or fine.
func checkArchiver(rep *Report, s *Server) {
	a := s.Archiver
	last := "nothing archived yet"
	if a.LastArchivedWAL != "" {
		last = fmt.Sprintf("the last %s at %s", a.LastArchivedWAL, a.LastArchived.UTC().Format(time.RFC3339))
	}
	if a.Failed > 0 && a.LastFailed.After(a.LastArchived) {
		rep.add("archiver", Critical, "archive_command fails: %d failure(s), the last for %s at %s; %d archived, %s (see the server log)",
			a.Failed, a.LastFailedWAL, a.LastFailed.UTC().Format(time.RFC3339), a.Archived, last)
		return
	}
	msg := fmt.Sprintf("%d archived, %s", a.Archived, last)
	if a.Failed > 0 {
		msg += fmt.Sprintf("; %d failure(s) before, the last at %s", a.Failed, a.LastFailed.UTC().Format(time.RFC3339))
	}
	rep.add("archiver", OK, "%s", msg)
}

// checkBacklog looks at the WAL waiting to be archived: the oldest may
// wait no longer than MaxAge.
func checkBacklog(rep *Report, s *Server, o Options) {
	if s.ReadyErr != nil {
		rep.add("backlog", Warning, "cannot read the .ready backlog: %v (pg_ls_archive_statusdir() needs PostgreSQL 12 and superuser or pg_monitor)", s.ReadyErr)
		return
	}
	b := s.Ready
	rep.Ready = &b
	if b.Count == 0 {
		rep.add("backlog", OK, "no WAL waiting to be archived")
		return
	}
	age := o.Now().Sub(b.OldestTime)
	if age <= o.MaxAge {
		rep.add("backlog", OK, "%d file(s) waiting to be archived, the oldest ready for %s", b.Count, age.Round(time.Second))
		return
	}
	msg := fmt.Sprintf("%d file(s) waiting to be archived, the oldest (%s) ready for %s, more than %s", b.Count, b.Oldest, age.Round(time.Second), o.MaxAge)
	if a := s.Archiver; a.Failed == 0 || a.LastFailed.Before(b.OldestTime) {
		msg += ", and pg_stat_archiver counts no failure since: archive_command fails with an exit status above 125 (127: command not found), which is not counted, or it hangs (see the server log)"
	} else {
		msg += fmt.Sprintf(": archive_command fails, the last time for %s at %s (see the server log)", a.LastFailedWAL, a.LastFailed.UTC().Format(time.RFC3339))
	}
	rep.add("backlog", Critical, "%s", msg)
}
