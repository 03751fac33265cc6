package backup

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/walship/walship/pgdata"
	"github.com/walship/walship/rewind"
)

// Server is what Create learns about the server to back up, over SQL,
// before pg_basebackup starts.
type Server struct {
	SysID      uint64
	Version    pgdata.Version
	VersionNum int    // server_version_num
	VersionStr string // server_version, "15.4"
	InRecovery bool   // a standby
	SegSize    uint32
	// LZ4: the server was built with lz4 (it offers lz4 for TOAST).
	LZ4 bool
	// Tablespaces are the user tablespaces, whose tars pg_basebackup
	// writes beside base.tar.
	Tablespaces []Tablespace
}

// Tablespace is one user tablespace.
type Tablespace struct {
	OID      uint32
	Name     string
	Location string
}

const connectTimeout = 15 * time.Second

// connect opens a SQL connection with the connection string the backup is
// taken with (pg_basebackup ignores its dbname; a SQL connection needs
// one, so it defaults to postgres).
func connect(ctx context.Context, connString string) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(connString)
	if err != nil {
		return nil, fmt.Errorf("connection string %s: %w", rewind.Redact(connString), err)
	}
	if cfg.Database == "" {
		cfg.Database = "postgres"
	}
	if cfg.ConnectTimeout == 0 || cfg.ConnectTimeout > connectTimeout {
		cfg.ConnectTimeout = connectTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, connectTimeout+5*time.Second)
	defer cancel()
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connecting to %s: %w", rewind.Redact(connString), err)
	}
	return conn, nil
}

// InspectServer reads what a backup of the server needs to know.
func InspectServer(ctx context.Context, connString string) (*Server, error) {
	conn, err := connect(ctx, connString)
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.Background())
	var s Server
	var sysid int64
	var segSize string
	err = conn.QueryRow(ctx, `SELECT (SELECT system_identifier FROM pg_control_system()),
		current_setting('server_version_num')::int, current_setting('server_version'),
		pg_is_in_recovery(), current_setting('wal_segment_size')`).Scan(&sysid, &s.VersionNum, &s.VersionStr, &s.InRecovery, &segSize)
	if err != nil {
		return nil, fmt.Errorf("reading the server's identity: %w", err)
	}
	s.SysID, s.Version = uint64(sysid), pgdata.VersionFromNum(s.VersionNum)
	if s.VersionStr, _, _ = strings.Cut(s.VersionStr, " "); s.VersionStr == "" {
		s.VersionStr = s.Version.Text
	}
	if s.SegSize, err = parseSize(segSize); err != nil {
		return nil, fmt.Errorf("the server's wal_segment_size %q: %w", segSize, err)
	}
	err = conn.QueryRow(ctx, `SELECT coalesce((SELECT 'lz4' = ANY(enumvals) FROM pg_settings
		WHERE name = 'default_toast_compression'), false)`).Scan(&s.LZ4)
	if err != nil {
		return nil, fmt.Errorf("reading the server's settings: %w", err)
	}
	rows, err := conn.Query(ctx, `SELECT oid::bigint, spcname::text, pg_tablespace_location(oid)
		FROM pg_tablespace WHERE spcname NOT IN ('pg_default', 'pg_global') ORDER BY oid`)
	if err != nil {
		return nil, fmt.Errorf("listing the server's tablespaces: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var oid int64
		var ts Tablespace
		if err := rows.Scan(&oid, &ts.Name, &ts.Location); err != nil {
			return nil, fmt.Errorf("listing the server's tablespaces: %w", err)
		}
		ts.OID = uint32(oid)
		s.Tablespaces = append(s.Tablespaces, ts)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing the server's tablespaces: %w", err)
	}
	return &s, nil
}

// CheckReplication opens a replication connection, as pg_basebackup
// will, and runs IDENTIFY_SYSTEM: a server that refuses replication
// connections (pg_hba.conf, max_wal_senders) is found before the backup
// starts. It returns the system identifier the server reports.
func CheckReplication(ctx context.Context, connString string) (uint64, error) {
	cfg, err := pgconn.ParseConfig(connString)
	if err != nil {
		return 0, fmt.Errorf("connection string %s: %w", rewind.Redact(connString), err)
	}
	cfg.RuntimeParams["replication"] = "true"
	if cfg.ConnectTimeout == 0 || cfg.ConnectTimeout > connectTimeout {
		cfg.ConnectTimeout = connectTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, connectTimeout+5*time.Second)
	defer cancel()
	conn, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		return 0, fmt.Errorf("a replication connection to %s (as pg_basebackup makes; see pg_hba.conf and max_wal_senders): %w", rewind.Redact(connString), err)
	}
	defer conn.Close(context.Background())
	res, err := conn.Exec(ctx, "IDENTIFY_SYSTEM").ReadAll()
	if err != nil || len(res) != 1 || len(res[0].Rows) != 1 || len(res[0].Rows[0]) < 1 {
		return 0, fmt.Errorf("IDENTIFY_SYSTEM on %s: %v", rewind.Redact(connString), err)
	}
	id, err := strconv.ParseUint(string(res[0].Rows[0][0]), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("IDENTIFY_SYSTEM on %s: system identifier %q", rewind.Redact(connString), res[0].Rows[0][0])
	}
	return id, nil
}

// parseSize reads a size setting as SHOW prints it ("16MB", "1GB").
func parseSize(s string) (uint32, error) {
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
