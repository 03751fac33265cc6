package pgserver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/walship/walship/wal"
)

// The server's own base backup over a replication connection (BASE_BACKUP,
// what pg_basebackup runs), read by walship itself: no program of the
// server's version needed, no files, no password in any argument list.
//
// The answer (PostgreSQL's "Streaming Replication Protocol" and
// src/backend/backup/basebackup_copy.c): a result set with the start LSN
// and timeline, one with the tablespaces (OID, location, size estimate;
// the data directory last, with no OID), then the archives, then a result
// set with the end LSN and timeline. From 15 on the archives come in one
// COPY stream whose CopyData messages start with a type byte: 'n' a new
// archive (its name and tablespace location), 'd' data of the current
// archive or of the manifest, 'p' progress (bytes done, int64), 'm' the
// manifest follows. Before 15 every tablespace's tar is a COPY stream of
// its own, in the order of the list, then the manifest in one more; those
// tars lack the two zero blocks that end a tar archive, which the client
// adds (pg_basebackup does the same).
//
// On 17 and later, UPLOAD_MANIFEST (a COPY IN of an earlier backup's
// manifest) before BASE_BACKUP with INCREMENTAL makes an incremental
// backup relative to that one; the server needs summarize_wal = on.

// firstTypedCopy is the first major whose BASE_BACKUP answers in one COPY
// stream of typed messages (and takes options in parentheses).
const firstTypedCopy = 15

// FirstIncremental is the first major that takes incremental backups.
const FirstIncremental = 17

// BaseBackupOptions say what base backup the server takes.
type BaseBackupOptions struct {
	// Major is the server's major version (13 and later).
	Major int
	Label string
	// Fast asks for an immediate checkpoint at the start (CHECKPOINT
	// 'fast'); else the server spreads it as its checkpoints are.
	Fast bool
	// Progress asks the server to estimate the size of every tablespace
	// first (it reads the directories once more).
	Progress bool
	// MaxRate limits how fast the server sends, in kB/s (MAX_RATE: 32 to
	// 1048576); 0 for no limit.
	MaxRate int
	// LZ4 has the server compress every archive with lz4 (15 and later);
	// its name then ends in .lz4.
	LZ4 bool
	// NoWait ends the backup without waiting until the server has archived
	// the WAL it needs (which the server checks once a second): the caller
	// checks the archive itself.
	NoWait bool
	// Parent, for an incremental backup (17 and later), is the manifest of
	// the backup it is taken relative to; nil for a full backup.
	Parent io.Reader
}

// BackupTablespace is one tablespace of a backup, as the server lists it.
type BackupTablespace struct {
	OID      uint32 // 0: the data directory
	Location string
	// Size is the server's estimate in bytes (with Progress), else -1.
	Size int64
}

// BackupStart is the server's answer once the backup has started (after
// its checkpoint).
type BackupStart struct {
	LSN         wal.LSN
	Timeline    uint32
	Tablespaces []BackupTablespace
	// At is when the answer arrived, on walship's clock.
	At time.Time
}

// BackupArchive is one archive the server sends.
type BackupArchive struct {
	Name       string // base.tar or <oid>.tar, with .lz4 when compressed
	Tablespace uint32 // 0 for base.tar
	Location   string
}

// BackupHandler receives a backup as it streams. Archive and Manifest
// must read r to its end or fail; the next archive only comes once they
// returned. An error of any of them ends the backup (the caller closes
// the connection).
type BackupHandler struct {
	Started  func(BackupStart) error
	Archive  func(a BackupArchive, r io.Reader) error
	Manifest func(r io.Reader) error
	// Progress, when set, gets the bytes of the backup sent so far.
	Progress func(done int64)
}

// BackupEnd is where the backup ended.
type BackupEnd struct {
	LSN      wal.LSN
	Timeline uint32
	Notices  []string // the server's notices and warnings
}

// ErrBaseBackup is matched by the server's refusals and failures of a base
// backup.
var ErrBaseBackup = errors.New("base backup failed")

// BaseBackup runs one base backup on the replication connection conn and
// hands what the server sends to h. The connection cannot be used again
// after an error: close it.
func BaseBackup(ctx context.Context, conn *pgconn.PgConn, o BaseBackupOptions, h BackupHandler) (*BackupEnd, error) {
	cmd, err := baseBackupCommand(o)
	if err != nil {
		return nil, err
	}
	if o.Parent != nil {
		if _, err := conn.CopyFrom(ctx, o.Parent, "UPLOAD_MANIFEST"); err != nil {
			return nil, fmt.Errorf("%w: uploading the parent's manifest: %s", ErrBaseBackup, serverError(err))
		}
	}
	conn.Frontend().Send(&pgproto3.Query{String: cmd})
	if err := conn.Frontend().Flush(); err != nil {
		return nil, fmt.Errorf("%w: sending BASE_BACKUP: %v", ErrBaseBackup, err)
	}
	s := &bbStream{o: o, h: h}
	defer s.abort(errors.New("the backup ended"))
	for !s.done {
		msg, err := conn.ReceiveMessage(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, fmt.Errorf("%w: %v", ErrBaseBackup, err)
		}
		if err := s.handle(msg); err != nil {
			return nil, err
		}
	}
	if s.failed != nil {
		return nil, s.failed
	}
	if s.end == nil {
		return nil, fmt.Errorf("%w: the server did not say where the backup ends", ErrBaseBackup)
	}
	return s.end, nil
}

// baseBackupCommand is the BASE_BACKUP command in the server's syntax.
func baseBackupCommand(o BaseBackupOptions) (string, error) {
	if strings.ContainsFunc(o.Label, func(r rune) bool { return r < ' ' }) || len(o.Label) > 1000 {
		return "", fmt.Errorf("%w: a backup label of at most 1000 characters without control characters", ErrBaseBackup)
	}
	label := "'" + strings.ReplaceAll(o.Label, "'", "''") + "'"
	switch {
	case o.Major < 13:
		return "", fmt.Errorf("%w: PostgreSQL %d writes no backup manifest (13 and later do)", ErrVersion, o.Major)
	case o.LZ4 && o.Major < firstTypedCopy:
		return "", fmt.Errorf("%w: PostgreSQL %d cannot compress a backup (15 and later can)", ErrVersion, o.Major)
	case o.Parent != nil && o.Major < FirstIncremental:
		return "", fmt.Errorf("%w: PostgreSQL %d takes no incremental backups (17 and later do)", ErrVersion, o.Major)
	case o.MaxRate != 0 && (o.MaxRate < 32 || o.MaxRate > 1048576):
		return "", fmt.Errorf("%w: a rate of %d kB/s; the server takes 32 to 1048576", ErrBaseBackup, o.MaxRate)
	}
	rate := ""
	if o.MaxRate > 0 {
		rate = "MAX_RATE " + strconv.Itoa(o.MaxRate)
	}
	if o.Major < firstTypedCopy {
		words := []string{"BASE_BACKUP", "LABEL", label}
		if o.Progress {
			words = append(words, "PROGRESS")
		}
		if o.Fast {
			words = append(words, "FAST")
		}
		if rate != "" {
			words = append(words, rate)
		}
		if o.NoWait {
			words = append(words, "NOWAIT")
		}
		words = append(words, "TABLESPACE_MAP", "MANIFEST 'yes'", "MANIFEST_CHECKSUMS 'CRC32C'")
		return strings.Join(words, " "), nil
	}
	opts := []string{"LABEL " + label, "CHECKPOINT 'spread'"}
	if o.Fast {
		opts[1] = "CHECKPOINT 'fast'"
	}
	if o.Progress {
		opts = append(opts, "PROGRESS")
	}
	if rate != "" {
		opts = append(opts, rate)
	}
	if o.NoWait {
		opts = append(opts, "WAIT false")
	}
	opts = append(opts, "TABLESPACE_MAP", "MANIFEST 'yes'", "MANIFEST_CHECKSUMS 'CRC32C'")
	if o.LZ4 {
		opts = append(opts, "COMPRESSION 'lz4'")
	}
	if o.Parent != nil {
		opts = append(opts, "INCREMENTAL")
	}
	return "BASE_BACKUP (" + strings.Join(opts, ", ") + ")", nil
}

// serverError is the server's own words for a failure (its message and
// detail), or err as it is.
func serverError(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		msg := pe.Message
		if pe.Detail != "" {
			msg += ": " + pe.Detail
		}
		if pe.Hint != "" {
			msg += " (" + pe.Hint + ")"
		}
		return msg
	}
	return err.Error()
}
