package rewind

import (
	"context"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/walship/walship/pgdata"
	"github.com/walship/walship/wal"
)

// Source is what walship learns about the source server over SQL.
type Source struct {
	SysID      uint64
	Version    pgdata.Version
	InRecovery bool
	TLI        uint32  // the timeline it writes (primary) or follows (standby)
	ControlTLI uint32  // the timeline in its control file, which pg_rewind reads
	LSN        wal.LSN // current insert location (primary) or replay location (standby)
}

const connectTimeout = 15 * time.Second

func connect(ctx context.Context, connString string) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(connString)
	if err != nil {
		return nil, fmt.Errorf("%w: --source-server %s: %w", ErrUnreachable, Redact(connString), err)
	}
	if cfg.ConnectTimeout == 0 || cfg.ConnectTimeout > connectTimeout {
		cfg.ConnectTimeout = connectTimeout
	}
	return connectConfig(ctx, cfg, connString)
}

func connectConfig(ctx context.Context, cfg *pgx.ConnConfig, what string) (*pgx.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, connectTimeout+5*time.Second)
	defer cancel()
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrUnreachable, Redact(what), err)
	}
	return conn, nil
}

// InspectSource connects to the source and reads its identity, role and
// position.
func InspectSource(ctx context.Context, connString string) (*Source, error) {
	conn, err := connect(ctx, connString)
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.Background())
	return inspect(ctx, conn)
}

func inspect(ctx context.Context, conn *pgx.Conn) (*Source, error) {
	var s Source
	var sysid int64
	var num int
	var ctlTLI int64
	err := conn.QueryRow(ctx, `SELECT (SELECT system_identifier FROM pg_control_system()),
		current_setting('server_version_num')::int, pg_is_in_recovery(),
		(SELECT timeline_id FROM pg_control_checkpoint())`).Scan(&sysid, &num, &s.InRecovery, &ctlTLI)
	if err != nil {
		return nil, fmt.Errorf("reading the source's control data: %w", err)
	}
	s.SysID, s.Version, s.ControlTLI = uint64(sysid), pgdata.VersionFromNum(num), uint32(ctlTLI)
	var lsn string
	if !s.InRecovery {
		var seg string
		err = conn.QueryRow(ctx, `SELECT pg_current_wal_lsn()::text, pg_walfile_name(pg_current_wal_lsn())`).Scan(&lsn, &seg)
		if err != nil {
			return nil, fmt.Errorf("reading the source's WAL position: %w", err)
		}
		n, err := wal.ParseName(seg)
		if err != nil {
			return nil, fmt.Errorf("reading the source's timeline: %w", err)
		}
		s.TLI = n.Timeline
	} else {
		var recvTLI, minTLI int64
		err = conn.QueryRow(ctx, `SELECT coalesce(pg_last_wal_replay_lsn(), '0/0')::text,
			coalesce((SELECT received_tli FROM pg_stat_wal_receiver), 0),
			(SELECT min_recovery_end_timeline FROM pg_control_recovery())`).Scan(&lsn, &recvTLI, &minTLI)
		if err != nil {
			return nil, fmt.Errorf("reading the source's replay position: %w", err)
		}
		s.TLI = max(s.ControlTLI, uint32(recvTLI), uint32(minTLI))
	}
	if s.LSN, err = wal.ParseLSN(lsn); err != nil {
		return nil, err
	}
	return &s, nil
}

// Checkpoint runs CHECKPOINT on the source, so that its control file shows
// the timeline a recent promotion started (pg_rewind reads the control
// file, and would otherwise see the old timeline and find nothing to do).
func Checkpoint(ctx context.Context, connString string) (*Source, error) {
	conn, err := connect(ctx, connString)
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "CHECKPOINT"); err != nil {
		return nil, fmt.Errorf("CHECKPOINT on the source: %w", err)
	}
	return inspect(ctx, conn)
}

var (
	passwordKV  = regexp.MustCompile(`(?i)(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)`)
	passwordURL = regexp.MustCompile(`(?i)([?&]password=)[^&]*`)
)

// Redact hides passwords in a connection string for messages.
func Redact(conn string) string {
	if strings.Contains(conn, "://") {
		if u, err := url.Parse(conn); err == nil {
			conn = u.Redacted()
		}
		return passwordURL.ReplaceAllString(conn, "${1}xxxxx")
	}
	return passwordKV.ReplaceAllString(conn, "${1}xxxxx")
}
