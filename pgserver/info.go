package pgserver

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/walship/walship/pgdata"
	"github.com/walship/walship/wal"
)

// Info is what every caller learns first about a running server, over SQL.
type Info struct {
	SystemID   uint64
	Version    pgdata.Version
	VersionNum int    // server_version_num
	VersionStr string // server_version, "15.4"
	InRecovery bool   // a standby (or a server in archive recovery)
	SegSize    uint32
	BlockSize  int // of relation files (block_size)
	// BackendPID is the process serving this connection; StartTime when
	// the postmaster started.
	BackendPID int
	StartTime  time.Time
}

// Cluster is the server's cluster identity, as wal.Cluster compares it.
func (i *Info) Cluster() wal.Cluster { return wal.Cluster{SystemID: i.SystemID, SegSize: i.SegSize} }

// ReadInfo reads the server's identity, version and role.
func ReadInfo(ctx context.Context, conn *pgx.Conn) (*Info, error) {
	var s Info
	var sysid int64
	var segSize string
	err := conn.QueryRow(ctx, `SELECT (SELECT system_identifier FROM pg_control_system()),
		current_setting('server_version_num')::int, current_setting('server_version'),
		pg_is_in_recovery(), current_setting('wal_segment_size'), pg_backend_pid(), pg_postmaster_start_time(),
		current_setting('block_size')::int`).
		Scan(&sysid, &s.VersionNum, &s.VersionStr, &s.InRecovery, &segSize, &s.BackendPID, &s.StartTime, &s.BlockSize)
	if err != nil {
		return nil, fmt.Errorf("reading the server's identity: %w", err)
	}
	s.SystemID, s.Version = uint64(sysid), pgdata.VersionFromNum(s.VersionNum)
	if s.VersionStr, _, _ = strings.Cut(s.VersionStr, " "); s.VersionStr == "" {
		s.VersionStr = s.Version.Text
	}
	if s.SegSize, err = ParseSize(segSize); err != nil {
		return nil, fmt.Errorf("the server's wal_segment_size %q: %w", segSize, err)
	}
	return &s, nil
}

// Position is where a server is in the WAL.
type Position struct {
	// Timeline is the timeline it writes (a primary) or replays (a
	// standby: the newest of its control file's, its WAL receiver's and
	// its minimum recovery end's).
	Timeline uint32
	// LSN is the current insert location (primary) or the last replayed
	// one (standby); Received the last one a streaming standby received.
	LSN      wal.LSN
	Received wal.LSN
}

// ReadPosition reads the position of a primary, or of a standby when
// standby is true.
func ReadPosition(ctx context.Context, conn *pgx.Conn, standby bool) (Position, error) {
	var p Position
	var lsn, recv string
	if !standby {
		var seg string
		if err := conn.QueryRow(ctx, `SELECT pg_current_wal_lsn()::text, pg_walfile_name(pg_current_wal_lsn())`).Scan(&lsn, &seg); err != nil {
			return p, fmt.Errorf("reading the server's WAL position: %w", err)
		}
		n, err := wal.ParseName(seg)
		if err != nil {
			return p, fmt.Errorf("reading the server's timeline: %w", err)
		}
		p.Timeline = n.Timeline
	} else {
		var ckpt, recvTLI, minTLI int64
		err := conn.QueryRow(ctx, `SELECT coalesce(pg_last_wal_replay_lsn(), '0/0')::text, coalesce(pg_last_wal_receive_lsn(), '0/0')::text,
			(SELECT timeline_id FROM pg_control_checkpoint()),
			coalesce((SELECT received_tli FROM pg_stat_wal_receiver), 0),
			(SELECT min_recovery_end_timeline FROM pg_control_recovery())`).Scan(&lsn, &recv, &ckpt, &recvTLI, &minTLI)
		if err != nil {
			return p, fmt.Errorf("reading the server's replay position: %w", err)
		}
		p.Timeline = uint32(max(ckpt, recvTLI, minTLI))
	}
	var err error
	if p.LSN, err = wal.ParseLSN(lsn); err != nil {
		return p, err
	}
	if recv != "" {
		if p.Received, err = wal.ParseLSN(recv); err != nil {
			return p, err
		}
	}
	return p, nil
}

// ControlTimeline is the timeline of the server's last checkpoint, as its
// control file (which pg_rewind reads) has it.
func ControlTimeline(ctx context.Context, conn *pgx.Conn) (uint32, error) {
	var tli int64
	if err := conn.QueryRow(ctx, `SELECT timeline_id FROM pg_control_checkpoint()`).Scan(&tli); err != nil {
		return 0, fmt.Errorf("reading the server's control data: %w", err)
	}
	return uint32(tli), nil
}

// Setting is one of the server's settings as pg_settings shows it.
type Setting struct {
	Value string
	Unit  string
}

// Duration is a time setting in its unit ("" for one that is not).
func (s Setting) Duration() (time.Duration, bool) {
	n, err := strconv.ParseInt(s.Value, 10, 64)
	units := map[string]time.Duration{"ms": time.Millisecond, "s": time.Second, "min": time.Minute, "h": time.Hour, "d": 24 * time.Hour}
	u, ok := units[s.Unit]
	if err != nil || !ok {
		return 0, false
	}
	return time.Duration(n) * u, true
}

// Settings reads the named settings the connected role may read (some,
// such as archive_command, need superuser or pg_read_all_settings): a
// setting it may not read is missing from the result.
func Settings(ctx context.Context, conn *pgx.Conn, names ...string) (map[string]Setting, error) {
	rows, err := conn.Query(ctx, `SELECT name, setting, coalesce(unit, '') FROM pg_settings WHERE name = ANY($1)`, names)
	if err != nil {
		return nil, fmt.Errorf("reading the server's settings: %w", err)
	}
	defer rows.Close()
	out := map[string]Setting{}
	for rows.Next() {
		var name string
		var s Setting
		if err := rows.Scan(&name, &s.Value, &s.Unit); err != nil {
			return nil, fmt.Errorf("reading the server's settings: %w", err)
		}
		out[name] = s
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading the server's settings: %w", err)
	}
	return out, nil
}

// HasLZ4 reports whether the server was built with lz4 (it offers lz4 for
// TOAST compression, 14 and later).
func HasLZ4(ctx context.Context, conn *pgx.Conn) (bool, error) {
	var ok bool
	err := conn.QueryRow(ctx, `SELECT coalesce((SELECT 'lz4' = ANY(enumvals) FROM pg_settings
		WHERE name = 'default_toast_compression'), false)`).Scan(&ok)
	if err != nil {
		return false, fmt.Errorf("reading the server's settings: %w", err)
	}
	return ok, nil
}

// Tablespace is one user tablespace.
type Tablespace struct {
	OID      uint32
	Name     string
	Location string
}

// Tablespaces lists the user tablespaces (not pg_default, pg_global), by
// OID.
func Tablespaces(ctx context.Context, conn *pgx.Conn) ([]Tablespace, error) {
	rows, err := conn.Query(ctx, `SELECT oid::bigint, spcname::text, pg_tablespace_location(oid)
		FROM pg_tablespace WHERE spcname NOT IN ('pg_default', 'pg_global') ORDER BY oid`)
	if err != nil {
		return nil, fmt.Errorf("listing the server's tablespaces: %w", err)
	}
	defer rows.Close()
	var out []Tablespace
	for rows.Next() {
		var oid int64
		var ts Tablespace
		if err := rows.Scan(&oid, &ts.Name, &ts.Location); err != nil {
			return nil, fmt.Errorf("listing the server's tablespaces: %w", err)
		}
		ts.OID = uint32(oid)
		out = append(out, ts)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing the server's tablespaces: %w", err)
	}
	return out, nil
}

// ParseSize reads a size setting as SHOW prints it ("16MB", "1GB").
func ParseSize(s string) (uint32, error) {
	units := map[string]uint64{"B": 1, "kB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30}
	i := strings.IndexFunc(s, func(r rune) bool { return r < '0' || r > '9' })
	if i <= 0 {
		return 0, fmt.Errorf("not a size")
	}
	n, err := strconv.ParseUint(s[:i], 10, 32)
	u, ok := units[s[i:]]
	if err != nil || !ok || n*u > 1<<30 {
		return 0, fmt.Errorf("not a size")
	}
	return uint32(n * u), nil
}

// ClockSkew is how far the server's clock is ahead of walship's (negative
// when behind), read over one round trip and taken at its middle.
func ClockSkew(ctx context.Context, conn *pgx.Conn) (time.Duration, error) {
	var at time.Time
	t0 := time.Now()
	if err := conn.QueryRow(ctx, `SELECT clock_timestamp()`).Scan(&at); err != nil {
		return 0, fmt.Errorf("reading the server's clock: %w", err)
	}
	t1 := time.Now()
	return at.Sub(t0.Add(t1.Sub(t0) / 2)), nil
}
