package pgserver

// The answer to BASE_BACKUP, read message by message (see basebackup.go):
// the result sets, the archives and the manifest, each archive handed to
// its consumer through a pipe as its CopyData messages arrive.

import (
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
