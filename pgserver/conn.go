package pgserver

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/walship/walship/wal"
)

// ConnectTimeout bounds connecting to a server: a connection string may ask
// for less (connect_timeout), never for more.
const ConnectTimeout = 15 * time.Second

// ErrUnreachable is matched by errors about a server that cannot be
// connected to (or a connection string that cannot be read).
var ErrUnreachable = errors.New("server unreachable")

// ConnectOptions say how Connect connects, beyond the connection string.
type ConnectOptions struct {
	// Database is the database when the connection string names none
	// ("": libpq's default, the user's name).
	Database string
	// AppName is application_name when the connection string sets none.
	AppName string
}

// Connect opens a SQL connection with a libpq connection string
// (keyword/value or URL; "" takes libpq's defaults and the PG* environment
// variables). Errors match ErrUnreachable and never show a password.
func Connect(ctx context.Context, connString string, o ConnectOptions) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(connString)
	if err != nil {
		return nil, fmt.Errorf("%w: connection string %s: %v", ErrUnreachable, Redact(connString), redactErr(err, connString))
	}
	if cfg.Database == "" {
		cfg.Database = o.Database
	}
	if _, ok := cfg.RuntimeParams["application_name"]; !ok && o.AppName != "" {
		cfg.RuntimeParams["application_name"] = o.AppName
	}
	return ConnectConfig(ctx, cfg, Redact(connString))
}

// ConnectConfig connects with a parsed configuration; what names the server
// in messages.
func ConnectConfig(ctx context.Context, cfg *pgx.ConnConfig, what string) (*pgx.Conn, error) {
	if cfg.ConnectTimeout == 0 || cfg.ConnectTimeout > ConnectTimeout {
		cfg.ConnectTimeout = ConnectTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.ConnectTimeout+5*time.Second)
	defer cancel()
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrUnreachable, what, redactErr(err, cfg.Password))
	}
	return conn, nil
}

// System is what IDENTIFY_SYSTEM answers on a replication connection.
type System struct {
	SystemID uint64
	Timeline uint32
	// Flushed is where the server's WAL was flushed to (xlogpos).
	Flushed wal.LSN
}

// ConnectReplication opens a physical replication connection (as
// pg_basebackup and a standby's WAL receiver make) and identifies the
// system: a server that refuses replication connections (pg_hba.conf,
// max_wal_senders, the REPLICATION privilege) is found this way.
func ConnectReplication(ctx context.Context, connString string) (*pgconn.PgConn, System, error) {
	return ConnectReplicationWith(ctx, connString, ConnectOptions{})
}

// ConnectReplicationWith is ConnectReplication with options (AppName: the
// application_name the server shows, when the connection string sets
// none).
func ConnectReplicationWith(ctx context.Context, connString string, o ConnectOptions) (*pgconn.PgConn, System, error) {
	cfg, err := pgconn.ParseConfig(connString)
	if err != nil {
		return nil, System{}, fmt.Errorf("%w: connection string %s: %v", ErrUnreachable, Redact(connString), redactErr(err, connString))
	}
	cfg.RuntimeParams["replication"] = "true"
	if _, ok := cfg.RuntimeParams["application_name"]; !ok && o.AppName != "" {
		cfg.RuntimeParams["application_name"] = o.AppName
	}
	if cfg.ConnectTimeout == 0 || cfg.ConnectTimeout > ConnectTimeout {
		cfg.ConnectTimeout = ConnectTimeout
	}
	cctx, cancel := context.WithTimeout(ctx, cfg.ConnectTimeout+5*time.Second)
	defer cancel()
	conn, err := pgconn.ConnectConfig(cctx, cfg)
	if err != nil {
		return nil, System{}, fmt.Errorf("%w: a replication connection to %s (see pg_hba.conf, max_wal_senders and the REPLICATION privilege): %v",
			ErrUnreachable, Redact(connString), redactErr(err, cfg.Password))
	}
	sys, err := IdentifySystem(ctx, conn)
	if err != nil {
		conn.Close(context.Background())
		return nil, System{}, fmt.Errorf("IDENTIFY_SYSTEM on %s: %w", Redact(connString), err)
	}
	return conn, sys, nil
}

// IdentifySystem runs IDENTIFY_SYSTEM on a replication connection.
func IdentifySystem(ctx context.Context, conn *pgconn.PgConn) (System, error) {
	res, err := conn.Exec(ctx, "IDENTIFY_SYSTEM").ReadAll()
	if err != nil {
		return System{}, err
	}
	if len(res) != 1 || len(res[0].Rows) != 1 || len(res[0].Rows[0]) < 2 {
		return System{}, errors.New("unexpected answer")
	}
	row := res[0].Rows[0]
	id, err := strconv.ParseUint(string(row[0]), 10, 64)
	if err != nil {
		return System{}, fmt.Errorf("system identifier %q", row[0])
	}
	tli, err := strconv.ParseUint(string(row[1]), 10, 32)
	if err != nil {
		return System{}, fmt.Errorf("timeline %q", row[1])
	}
	sys := System{SystemID: id, Timeline: uint32(tli)}
	if len(row) >= 3 && row[2] != nil {
		if sys.Flushed, err = wal.ParseLSN(string(row[2])); err != nil {
			return System{}, fmt.Errorf("xlogpos %q", row[2])
		}
	}
	return sys, nil
}

var (
	passwordKV  = regexp.MustCompile(`(?i)(\bpassword\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)`)
	passwordURL = regexp.MustCompile(`(?i)([?&]password=)[^&]*`)
)

// Redact hides passwords in a connection string, for messages.
func Redact(conn string) string {
	if strings.Contains(conn, "://") {
		if u, err := url.Parse(conn); err == nil {
			conn = u.Redacted()
		}
		return passwordURL.ReplaceAllString(conn, "${1}xxxxx")
	}
	return passwordKV.ReplaceAllString(conn, "${1}xxxxx")
}

// redactErr is err's text with secret (a password, or a whole connection
// string whose passwords are then hidden) taken out: a driver's error may
// quote what it was given.
func redactErr(err error, secret string) string {
	msg := err.Error()
	if secret == "" {
		return msg
	}
	if pw := password(secret); pw != "" {
		msg = strings.ReplaceAll(msg, pw, "xxxxx")
	}
	if strings.ContainsAny(secret, "=:/") {
		return strings.ReplaceAll(msg, secret, Redact(secret))
	}
	return strings.ReplaceAll(msg, secret, "xxxxx")
}

// ForChild splits a connection string for a PostgreSQL program walship
// runs (pg_basebackup -d, pg_rewind --source-server): the string without
// its password, for the program's arguments, which every local user can
// read (ps); and the password, which goes into the program's environment
// (PGPASSWORD: only its user and root can read it), "" when there is none.
func ForChild(conn string) (args, pass string) {
	if strings.Contains(conn, "://") {
		u, err := url.Parse(conn)
		if err != nil {
			return conn, ""
		}
		if u.User != nil {
			if p, ok := u.User.Password(); ok {
				pass = p
				u.User = url.User(u.User.Username())
			}
		}
		q := u.Query()
		if q.Has("password") {
			pass = q.Get("password")
			q.Del("password")
			u.RawQuery = q.Encode()
		}
		return u.String(), pass
	}
	pass = password(conn)
	args = strings.TrimSpace(passwordKV.ReplaceAllString(conn, ""))
	return strings.Join(strings.Fields(args), " "), pass
}

// password is the (last) password of a keyword/value connection string,
// unquoted, or "".
func password(conn string) string {
	if strings.Contains(conn, "://") {
		_, p := ForChild(conn)
		return p
	}
	ms := passwordKV.FindAllStringSubmatch(conn, -1)
	if len(ms) == 0 {
		return ""
	}
	v := ms[len(ms)-1][2]
	if strings.HasPrefix(v, "'") && strings.HasSuffix(v, "'") && len(v) >= 2 {
		v = v[1 : len(v)-1]
		var b strings.Builder
		for i := 0; i < len(v); i++ {
			if v[i] == '\\' && i+1 < len(v) {
				i++
			}
			b.WriteByte(v[i])
		}
		v = b.String()
	}
	return v
}
