package check

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/walship/walship/pgserver"
	"github.com/walship/walship/wal"
)

// Server is what check reads from the running server over SQL.
type Server struct {
	Version  int    `json:"server_version_num"`
	Standby  bool   `json:"standby"`
	SystemID uint64 `json:"system_identifier,string"`
	// Timeline is the timeline the server writes (primary) or replays
	// (standby); LSN its current insert (primary) or replay (standby)
	// location, Received the last location a streaming standby received.
	Timeline uint32  `json:"timeline"`
	LSN      wal.LSN `json:"-"`
	Received wal.LSN `json:"-"`

	// Settings, by name, of those the role may read (archive_command and
	// data_directory need superuser or pg_read_all_settings).
	Settings       map[string]string `json:"settings"`
	ArchiveTimeout time.Duration     `json:"-"`

	Archiver Archiver `json:"archiver"`
	// Ready is the .ready backlog; ReadyErr says why it could not be read
	// (pg_ls_archive_statusdir needs PostgreSQL 12 and pg_monitor).
	Ready    Backlog `json:"ready"`
	ReadyErr error   `json:"-"`

	// Receiver is walship receive's slot and connection (with
	// Options.Slot); ReceiverErr says why it could not be read.
	Receiver    *Receiver `json:"receiver,omitempty"`
	ReceiverErr error     `json:"-"`

	PID          int       `json:"-"` // of the backend check talks to
	StartTime    time.Time `json:"-"` // the postmaster's
	ReadyOnStart Backlog   `json:"-"`
}

// Archiver is pg_stat_archiver.
type Archiver struct {
	Archived        int64     `json:"archived_count"`
	LastArchivedWAL string    `json:"last_archived_wal,omitempty"`
	LastArchived    time.Time `json:"last_archived_time,omitzero"`
	Failed          int64     `json:"failed_count"`
	LastFailedWAL   string    `json:"last_failed_wal,omitempty"`
	LastFailed      time.Time `json:"last_failed_time,omitzero"`
}

// Backlog is the WAL files the server has marked ready for archiving and
// not archived yet (pg_wal/archive_status/*.ready).
type Backlog struct {
	Count      int       `json:"count"`
	Oldest     string    `json:"oldest,omitempty"`
	OldestTime time.Time `json:"oldest_time,omitzero"`
}

// settingNames are the settings check reads.
var settingNames = []string{"archive_mode", "archive_command", "archive_library", "archive_timeout", "data_directory"}

// probe reads the server's role, identity, position, settings and
// archiver.
func probe(ctx context.Context, conn *pgx.Conn) (*Server, error) {
	info, err := pgserver.ReadInfo(ctx, conn)
	if err != nil {
		return nil, err
	}
	s := &Server{Version: info.VersionNum, Standby: info.InRecovery, SystemID: info.SystemID,
		PID: info.BackendPID, StartTime: info.StartTime, Settings: map[string]string{}}
	if err := s.readPosition(ctx, conn); err != nil {
		return nil, err
	}
	settings, err := pgserver.Settings(ctx, conn, settingNames...)
	if err != nil {
		return nil, err
	}
	for name, v := range settings {
		s.Settings[name] = v.Value
	}
	if d, ok := settings["archive_timeout"].Duration(); ok {
		s.ArchiveTimeout = d
	}
	if err := s.readArchiver(ctx, conn); err != nil {
		return nil, err
	}
	s.Ready, s.ReadyErr = readBacklog(ctx, conn)
	return s, nil
}

func (s *Server) readPosition(ctx context.Context, conn *pgx.Conn) error {
	p, err := pgserver.ReadPosition(ctx, conn, s.Standby)
	if err != nil {
		return err
	}
	s.Timeline, s.LSN, s.Received = p.Timeline, p.LSN, p.Received
	return nil
}

func (s *Server) readArchiver(ctx context.Context, conn *pgx.Conn) error {
	var a Archiver
	var lastOK, lastFail *time.Time
	var okWAL, failWAL *string
	err := conn.QueryRow(ctx, `SELECT archived_count, last_archived_wal, last_archived_time, failed_count, last_failed_wal, last_failed_time
		FROM pg_stat_archiver`).Scan(&a.Archived, &okWAL, &lastOK, &a.Failed, &failWAL, &lastFail)
	if err != nil {
		return fmt.Errorf("reading pg_stat_archiver: %w", err)
	}
	if okWAL != nil {
		a.LastArchivedWAL = *okWAL
	}
	if failWAL != nil {
		a.LastFailedWAL = *failWAL
	}
	if lastOK != nil {
		a.LastArchived = *lastOK
	}
	if lastFail != nil {
		a.LastFailed = *lastFail
	}
	s.Archiver = a
	return nil
}

// readBacklog counts the .ready files through pg_ls_archive_statusdir().
func readBacklog(ctx context.Context, conn *pgx.Conn) (Backlog, error) {
	var b Backlog
	var oldest *string
	var at *time.Time
	// A failed statement leaves the connection usable (no transaction).
	err := conn.QueryRow(ctx, `SELECT count(*), min(name), min(modification)
		FROM pg_ls_archive_statusdir() WHERE name LIKE '%.ready'`).Scan(&b.Count, &oldest, &at)
	if err != nil {
		return Backlog{}, err
	}
	if oldest != nil {
		b.Oldest = (*oldest)[:len(*oldest)-len(".ready")]
	}
	if at != nil {
		b.OldestTime = *at
	}
	return b, nil
}

// archiverBusy reports whether the archiver is running archive_command
// right now (its wait event, PostgreSQL 14 and later; false when it
// cannot be seen).
func archiverBusy(ctx context.Context, conn *pgx.Conn) bool {
	var ev string
	err := conn.QueryRow(ctx, `SELECT coalesce(wait_event, '') FROM pg_stat_activity WHERE backend_type = 'archiver'`).Scan(&ev)
	return err == nil && ev == "ArchiveCommand"
}

// switchSegment ends the current segment (after a restore point, so that
// there is WAL to end) and returns its name.
func switchSegment(ctx context.Context, conn *pgx.Conn) (wal.Name, error) {
	if _, err := conn.Exec(ctx, `SELECT pg_create_restore_point('walship check')`); err != nil {
		return wal.Name{}, fmt.Errorf("pg_create_restore_point: %w", err)
	}
	var seg string
	if err := conn.QueryRow(ctx, `SELECT pg_walfile_name(pg_switch_wal())`).Scan(&seg); err != nil {
		return wal.Name{}, fmt.Errorf("pg_switch_wal: %w", err)
	}
	return wal.ParseName(seg)
}
