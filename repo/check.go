package repo

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	"github.com/walship/walship/wal"
)

// This file is the one place that decides whether the content of a WAL
// file is what its name says: archive checks the file PostgreSQL hands it,
// restore and prefetch check what they fetched before handing it over,
// verify checks what is stored, and the standby wait checks a segment a cp
// may still be writing.

// MaxTextFile bounds history and backup history files: PostgreSQL's are a
// few hundred bytes, so anything this large is not one.
const MaxTextFile = 1 << 20

// CheckHeader parses the long page header at the start of a segment or
// partial segment and checks it against the file's name and, when id is not
// nil, against the repository's identity (a mismatch there matches
// wal.ErrOtherCluster).
func CheckHeader(head []byte, n wal.Name, id *Identity) (wal.LongHeader, error) {
	h, err := wal.ParseLongHeader(head)
	if err != nil {
		return wal.LongHeader{}, err
	}
	if err := h.CheckName(n); err != nil {
		return wal.LongHeader{}, err
	}
	if id != nil {
		if err := id.Cluster().Check("WAL", h.Cluster(), "the repository"); err != nil {
			return wal.LongHeader{}, err
		}
	}
	return h, nil
}

// Text is a parsed history or backup history file.
type Text struct {
	History *wal.History    // for a .history file
	Backup  *wal.BackupInfo // for a .backup file
}

// ParseText checks and parses the content of a history or backup history
// file: its size, its syntax, and for a backup history file, when id is not
// nil, that it starts where its name says.
func ParseText(n wal.Name, data []byte, id *Identity) (Text, error) {
	if len(data) > MaxTextFile {
		return Text{}, fmt.Errorf("%d bytes, larger than any %s file", len(data), n.Kind)
	}
	switch n.Kind {
	case wal.KindHistory:
		h, err := wal.ParseHistory(n.Timeline, bytes.NewReader(data))
		if err != nil {
			return Text{}, err
		}
		if len(h.Entries) == 0 {
			// PostgreSQL writes every parent timeline into the file when
			// it promotes: an empty one is a damaged or truncated copy.
			return Text{}, fmt.Errorf("history of timeline %d names no parent timeline (an empty or truncated file)", n.Timeline)
		}
		return Text{History: &h}, nil
	case wal.KindBackup:
		b, err := wal.ParseBackup(bytes.NewReader(data))
		if err != nil {
			return Text{}, err
		}
		if id != nil && b.Start != n.StartLSN(id.SegSize) {
			return Text{}, fmt.Errorf("backup starts at %s, the name says %s", b.Start, n.StartLSN(id.SegSize))
		}
		return Text{Backup: &b}, nil
	}
	return Text{}, fmt.Errorf("%s is not a text file", n)
}

// Copy writes the decoded content of the object to w, checking it on the
// way: a segment or partial segment must have a long page header valid for
// its name and, when id is not nil, for the repository's cluster, exactly
// the segment size the header gives, and nothing after it (the end of an
// lz4 frame is where its content checksum is checked); a history or backup
// history file must parse (see ParseText). What is wrong with the content
// is a *CorruptError; a failure to read storage or to write w is returned
// as it is. It returns the bytes written.
func (o *Object) Copy(w io.Writer, id *Identity) (int64, error) {
	if !Compressible(o.Name.Kind) {
		return o.copyText(w, id)
	}
	head := make([]byte, wal.LongHeaderSize)
	if k, err := io.ReadFull(o, head); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return 0, o.corrupt("only %d bytes, shorter than a page header", k)
		}
		return 0, err
	}
	h, err := CheckHeader(head, o.Name, id)
	if err != nil {
		return 0, o.corrupt("%v", err)
	}
	if _, err := w.Write(head); err != nil {
		return 0, err
	}
	rest, err := o.CopyN(w, int64(h.SegSize)-wal.LongHeaderSize)
	written := rest + wal.LongHeaderSize
	if err != nil {
		return written, err
	}
	if written != int64(h.SegSize) {
		return written, o.corrupt("%d bytes, want the segment size %d", written, h.SegSize)
	}
	var one [1]byte
	if k, err := io.ReadFull(o, one[:]); k != 0 || !errors.Is(err, io.EOF) {
		if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
			return written, err
		}
		return written, o.corrupt("longer than the segment size %d", h.SegSize)
	}
	return written, nil
}

func (o *Object) copyText(w io.Writer, id *Identity) (int64, error) {
	data, err := io.ReadAll(io.LimitReader(o, MaxTextFile+1))
	if err != nil {
		return 0, err
	}
	if _, err := ParseText(o.Name, data, id); err != nil {
		return 0, o.corrupt("%v", err)
	}
	k, err := w.Write(data)
	return int64(k), err
}

func (o *Object) corrupt(format string, args ...any) error {
	return &CorruptError{Key: o.Key, Reason: fmt.Sprintf(format, args...)}
}
