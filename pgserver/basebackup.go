package pgserver

import (
	"context"
	"encoding/binary"
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
	opts = append(opts, "TABLESPACE_MAP", "MANIFEST 'yes'", "MANIFEST_CHECKSUMS 'CRC32C'")
	if o.LZ4 {
		opts = append(opts, "COMPRESSION 'lz4'")
	}
	if o.Parent != nil {
		opts = append(opts, "INCREMENTAL")
	}
	return "BASE_BACKUP (" + strings.Join(opts, ", ") + ")", nil
}

// bbStream follows one BASE_BACKUP answer message by message.
type bbStream struct {
	o BaseBackupOptions
	h BackupHandler

	sets   int        // result sets complete
	rows   [][][]byte // of the result set being read
	start  BackupStart
	copies int // COPY streams begun
	inCopy bool
	cur    *bbPipe // the archive or manifest being received
	curTar bool    // cur is a tar without its end (before 15)
	sent   int64   // bytes received, for progress before 15
	end    *BackupEnd
	notes  []string
	failed error // the server's error, once it said it
	done   bool
}

func (s *bbStream) handle(msg pgproto3.BackendMessage) error {
	switch m := msg.(type) {
	case *pgproto3.RowDescription:
		s.rows = nil
	case *pgproto3.DataRow:
		row := make([][]byte, len(m.Values))
		for i, v := range m.Values {
			if v != nil {
				row[i] = append([]byte{}, v...)
			}
		}
		s.rows = append(s.rows, row)
	case *pgproto3.CommandComplete:
		return s.resultSet()
	case *pgproto3.CopyOutResponse:
		s.inCopy = true
		s.copies++
		if s.o.Major < firstTypedCopy {
			return s.untypedCopy()
		}
	case *pgproto3.CopyData:
		if s.o.Major < firstTypedCopy {
			s.sent += int64(len(m.Data))
			if s.h.Progress != nil && s.curTar {
				s.h.Progress(s.sent)
			}
			return s.write(m.Data)
		}
		return s.typed(m.Data)
	case *pgproto3.CopyDone:
		s.inCopy = false
		return s.finish()
	case *pgproto3.NoticeResponse:
		s.notes = append(s.notes, m.Severity+": "+m.Message)
	case *pgproto3.ErrorResponse:
		if s.failed == nil {
			s.failed = fmt.Errorf("%w: %s", ErrBaseBackup, serverError(pgconn.ErrorResponseToPgError(m)))
		}
		s.abort(s.failed)
	case *pgproto3.ReadyForQuery:
		s.done = true
	}
	return nil
}

// resultSet handles a complete result set: the start, the tablespaces,
// the end.
func (s *bbStream) resultSet() error {
	rows := s.rows
	s.rows = nil
	if s.failed != nil {
		return nil
	}
	switch {
	case s.sets == 0:
		lsn, tli, err := positionRow(rows)
		if err != nil {
			return fmt.Errorf("%w: the start of the backup: %v", ErrBaseBackup, err)
		}
		s.start = BackupStart{LSN: lsn, Timeline: tli, At: time.Now()}
	case s.sets == 1:
		for _, r := range rows {
			if len(r) < 3 {
				return fmt.Errorf("%w: a tablespace row of %d columns", ErrBaseBackup, len(r))
			}
			ts := BackupTablespace{Location: string(r[1]), Size: -1}
			if r[0] != nil {
				oid, err := strconv.ParseUint(string(r[0]), 10, 32)
				if err != nil || oid == 0 {
					return fmt.Errorf("%w: tablespace OID %q", ErrBaseBackup, r[0])
				}
				ts.OID = uint32(oid)
			}
			if r[2] != nil {
				if kb, err := strconv.ParseInt(string(r[2]), 10, 64); err == nil {
					ts.Size = kb << 10
				}
			}
			s.start.Tablespaces = append(s.start.Tablespaces, ts)
		}
		if s.h.Started != nil {
			if err := s.h.Started(s.start); err != nil {
				return err
			}
		}
	case s.end == nil && s.copies > 0 && len(rows) > 0:
		lsn, tli, err := positionRow(rows)
		if err != nil {
			return fmt.Errorf("%w: the end of the backup: %v", ErrBaseBackup, err)
		}
		s.end = &BackupEnd{LSN: lsn, Timeline: tli, Notices: s.notes}
	}
	s.sets++
	return nil
}

// positionRow reads a result of one row: an LSN and a timeline.
func positionRow(rows [][][]byte) (wal.LSN, uint32, error) {
	if len(rows) != 1 || len(rows[0]) < 2 {
		return 0, 0, errors.New("not one row of an LSN and a timeline")
	}
	lsn, err := wal.ParseLSN(string(rows[0][0]))
	if err != nil {
		return 0, 0, err
	}
	tli, err := strconv.ParseUint(string(rows[0][1]), 10, 32)
	if err != nil || tli == 0 {
		return 0, 0, fmt.Errorf("timeline %q", rows[0][1])
	}
	return lsn, uint32(tli), nil
}

// untypedCopy starts the archive of the next COPY stream before 15: each
// tablespace in the order of the list, then the manifest.
func (s *bbStream) untypedCopy() error {
	i := s.copies - 1
	if i < len(s.start.Tablespaces) {
		ts := s.start.Tablespaces[i]
		a := BackupArchive{Name: "base.tar", Tablespace: ts.OID, Location: ts.Location}
		if ts.OID != 0 {
			a.Name = strconv.FormatUint(uint64(ts.OID), 10) + ".tar"
		}
		s.curTar = true
		return s.begin(func(r io.Reader) error { return s.h.Archive(a, r) })
	}
	if i == len(s.start.Tablespaces) {
		s.curTar = false
		return s.begin(s.h.Manifest)
	}
	return fmt.Errorf("%w: a COPY stream more than the tablespaces and the manifest", ErrBaseBackup)
}

// typed handles one CopyData message of the single stream (15 and later).
func (s *bbStream) typed(b []byte) error {
	if len(b) == 0 {
		return fmt.Errorf("%w: an empty CopyData message", ErrBaseBackup)
	}
	switch b[0] {
	case 'n':
		name, rest, ok := cutCString(b[1:])
		loc, _, ok2 := cutCString(rest)
		if !ok || !ok2 {
			return fmt.Errorf("%w: a bad new-archive message", ErrBaseBackup)
		}
		a, err := archiveNamed(name, loc)
		if err != nil {
			return err
		}
		return s.begin(func(r io.Reader) error { return s.h.Archive(a, r) })
	case 'm':
		return s.begin(s.h.Manifest)
	case 'd':
		return s.write(b[1:])
	case 'p':
		if len(b) >= 9 && s.h.Progress != nil {
			s.h.Progress(int64(binary.BigEndian.Uint64(b[1:9])))
		}
		return nil
	}
	return fmt.Errorf("%w: a CopyData message of type %q", ErrBaseBackup, b[0])
}

// archiveNamed reads an archive's name: base.tar or <oid>.tar, with .lz4
// when the server compresses.
func archiveNamed(name, loc string) (BackupArchive, error) {
	tar := strings.TrimSuffix(name, ".lz4")
	if tar == "base.tar" {
		return BackupArchive{Name: name}, nil
	}
	oid, err := strconv.ParseUint(strings.TrimSuffix(tar, ".tar"), 10, 32)
	if err != nil || oid == 0 || !strings.HasSuffix(tar, ".tar") {
		return BackupArchive{}, fmt.Errorf("%w: an archive named %q", ErrBaseBackup, name)
	}
	return BackupArchive{Name: name, Tablespace: uint32(oid), Location: loc}, nil
}

func cutCString(b []byte) (string, []byte, bool) {
	for i, c := range b {
		if c == 0 {
			return string(b[:i]), b[i+1:], true
		}
	}
	return "", nil, false
}

// begin ends the current archive and starts a consumer for the next.
func (s *bbStream) begin(consume func(io.Reader) error) error {
	if err := s.finish(); err != nil {
		return err
	}
	if consume == nil {
		consume = func(r io.Reader) error { _, err := io.Copy(io.Discard, r); return err }
	}
	s.cur = newPipe(consume)
	return nil
}

// write hands data of the current archive to its consumer.
func (s *bbStream) write(b []byte) error {
	if s.cur == nil {
		return fmt.Errorf("%w: data before any archive", ErrBaseBackup)
	}
	return s.cur.write(b)
}

// finish ends the current archive (a tar before 15 with its two zero
// blocks) and waits for its consumer.
func (s *bbStream) finish() error {
	p := s.cur
	if p == nil {
		return nil
	}
	s.cur = nil
	if s.curTar {
		s.curTar = false
		if err := p.write(make([]byte, 1024)); err != nil {
			return err
		}
	}
	return p.close()
}

// abort stops the consumer of the current archive, if any.
func (s *bbStream) abort(err error) {
	if s.cur != nil {
		s.cur.pw.CloseWithError(err)
		<-s.cur.done
		s.cur = nil
	}
}

// bbPipe is one archive on its way to its consumer, which reads it in a
// goroutine of its own.
type bbPipe struct {
	pw   *io.PipeWriter
	done chan struct{}
	err  error
}

func newPipe(consume func(io.Reader) error) *bbPipe {
	pr, pw := io.Pipe()
	p := &bbPipe{pw: pw, done: make(chan struct{})}
	go func() {
		defer close(p.done)
		p.err = consume(pr)
		if p.err == nil {
			// The consumer must have read to the end: more is an error.
			if n, _ := io.Copy(io.Discard, pr); n > 0 {
				p.err = fmt.Errorf("%w: %d bytes after what the consumer read", ErrBaseBackup, n)
			}
		}
		pr.CloseWithError(errConsumerDone(p.err))
	}()
	return p
}

func errConsumerDone(err error) error {
	if err == nil {
		return errors.New("the archive's consumer returned before its end")
	}
	return err
}

// write passes b on (a pipe write returns once all of b was read, so the
// message's buffer may be reused after it).
func (p *bbPipe) write(b []byte) error {
	if _, err := p.pw.Write(b); err != nil {
		<-p.done
		if p.err != nil {
			return p.err
		}
		return err
	}
	return nil
}

func (p *bbPipe) close() error {
	p.pw.Close()
	<-p.done
	return p.err
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
