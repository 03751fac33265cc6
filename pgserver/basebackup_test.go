package pgserver

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
)

// The BASE_BACKUP command in each server's syntax: options in parentheses
// from 15 on, bare words before; what a server cannot do is refused
// before anything is sent.
func TestBaseBackupCommand(t *testing.T) {
	for _, c := range []struct {
		o    BaseBackupOptions
		want string
	}{
		{BaseBackupOptions{Major: 13, Label: "it's"},
			"BASE_BACKUP LABEL 'it''s' TABLESPACE_MAP MANIFEST 'yes' MANIFEST_CHECKSUMS 'CRC32C'"},
		{BaseBackupOptions{Major: 14, Label: "x", Fast: true, Progress: true, MaxRate: 2048},
			"BASE_BACKUP LABEL 'x' PROGRESS FAST MAX_RATE 2048 TABLESPACE_MAP MANIFEST 'yes' MANIFEST_CHECKSUMS 'CRC32C'"},
		{BaseBackupOptions{Major: 13, Label: "x", NoWait: true},
			"BASE_BACKUP LABEL 'x' NOWAIT TABLESPACE_MAP MANIFEST 'yes' MANIFEST_CHECKSUMS 'CRC32C'"},
		{BaseBackupOptions{Major: 16, Label: "x", NoWait: true},
			"BASE_BACKUP (LABEL 'x', CHECKPOINT 'spread', WAIT false, TABLESPACE_MAP, MANIFEST 'yes', MANIFEST_CHECKSUMS 'CRC32C')"},
		{BaseBackupOptions{Major: 15, Label: "x", LZ4: true},
			"BASE_BACKUP (LABEL 'x', CHECKPOINT 'spread', TABLESPACE_MAP, MANIFEST 'yes', MANIFEST_CHECKSUMS 'CRC32C', COMPRESSION 'lz4')"},
		{BaseBackupOptions{Major: 17, Label: "x", Fast: true, Parent: strings.NewReader("{}")},
			"BASE_BACKUP (LABEL 'x', CHECKPOINT 'fast', TABLESPACE_MAP, MANIFEST 'yes', MANIFEST_CHECKSUMS 'CRC32C', INCREMENTAL)"},
	} {
		got, err := baseBackupCommand(c.o)
		if err != nil || got != c.want {
			t.Errorf("%+v:\n got %q, %v\nwant %q", c.o, got, err, c.want)
		}
	}
	for name, o := range map[string]BaseBackupOptions{
		"12":                  {Major: 12},
		"lz4 on 14":           {Major: 14, LZ4: true},
		"incremental on 16":   {Major: 16, Parent: strings.NewReader("{}")},
		"a newline in labels": {Major: 17, Label: "a\nb"},
		"a rate of 1 kB/s":    {Major: 17, MaxRate: 1},
	} {
		if _, err := baseBackupCommand(o); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// replay feeds a BASE_BACKUP answer to a stream and collects what the
// handler sees.
func replay(t *testing.T, major int, msgs []pgproto3.BackendMessage) (map[string]string, *BackupEnd, BackupStart, error) {
	t.Helper()
	got := map[string]string{}
	var start BackupStart
	s := &bbStream{o: BaseBackupOptions{Major: major}, h: BackupHandler{
		Started: func(b BackupStart) error { start = b; return nil },
		Archive: func(a BackupArchive, r io.Reader) error {
			b, err := io.ReadAll(r)
			got[a.Name+"@"+a.Location] = string(b)
			return err
		},
		Manifest: func(r io.Reader) error { b, err := io.ReadAll(r); got["manifest"] = string(b); return err },
	}}
	defer s.abort(errors.New("done"))
	for _, m := range msgs {
		if err := s.handle(m); err != nil {
			return got, nil, start, err
		}
	}
	if s.failed != nil {
		return got, nil, start, s.failed
	}
	return got, s.end, start, nil
}

func row(vals ...string) *pgproto3.DataRow {
	r := &pgproto3.DataRow{}
	for _, v := range vals {
		if v == "NULL" {
			r.Values = append(r.Values, nil)
		} else {
			r.Values = append(r.Values, []byte(v))
		}
	}
	return r
}

func copyData(typ byte, parts ...string) *pgproto3.CopyData {
	d := []byte{typ}
	for _, p := range parts {
		d = append(d, p...)
	}
	return &pgproto3.CopyData{Data: d}
}

func answer(copies ...pgproto3.BackendMessage) []pgproto3.BackendMessage {
	out := []pgproto3.BackendMessage{
		&pgproto3.RowDescription{}, row("0/2000028", "1"), &pgproto3.CommandComplete{CommandTag: []byte("SELECT")},
		&pgproto3.RowDescription{}, row("16384", "/ts", "10"), row("NULL", "NULL", "20"), &pgproto3.CommandComplete{CommandTag: []byte("SELECT")},
	}
	out = append(out, copies...)
	return append(out, &pgproto3.RowDescription{}, row("0/2000100", "1"), &pgproto3.CommandComplete{CommandTag: []byte("SELECT")},
		&pgproto3.CommandComplete{CommandTag: []byte("BASE_BACKUP")}, &pgproto3.ReadyForQuery{TxStatus: 'I'})
}

// From 15 on, one COPY stream of typed messages; before, a stream per
// tablespace (each tar given its two zero blocks) and one for the
// manifest. The start, the tablespaces and the end come from the result
// sets around them.
func TestBaseBackupStream(t *testing.T) {
	var progress [9]byte
	progress[0] = 'p'
	binary.BigEndian.PutUint64(progress[1:], 42)
	got, end, start, err := replay(t, 15, answer(&pgproto3.CopyOutResponse{},
		copyData('n', "16384.tar\x00", "/ts\x00"), copyData('d', "ts-"), copyData('d', "tar"), &pgproto3.CopyData{Data: progress[:]},
		copyData('n', "base.tar\x00", "\x00"), copyData('d', "base"),
		copyData('m'), copyData('d', "{manifest}"), &pgproto3.CopyDone{}))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"16384.tar@/ts": "ts-tar", "base.tar@": "base", "manifest": "{manifest}"}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("15: %s = %q, want %q (all: %q)", k, got[k], v, got)
		}
	}
	if end == nil || end.LSN != 0x2000100 || end.Timeline != 1 || start.LSN != 0x2000028 || len(start.Tablespaces) != 2 ||
		start.Tablespaces[0].OID != 16384 || start.Tablespaces[0].Size != 10<<10 || start.Tablespaces[1].OID != 0 {
		t.Errorf("15: start %+v, end %+v", start, end)
	}

	got, end, _, err = replay(t, 14, answer(
		&pgproto3.CopyOutResponse{}, &pgproto3.CopyData{Data: []byte("ts")}, &pgproto3.CopyDone{},
		&pgproto3.CopyOutResponse{}, &pgproto3.CopyData{Data: []byte("base")}, &pgproto3.CopyDone{},
		&pgproto3.CopyOutResponse{}, &pgproto3.CopyData{Data: []byte("{m}")}, &pgproto3.CopyDone{}))
	if err != nil {
		t.Fatal(err)
	}
	zeros := string(make([]byte, 1024))
	if got["16384.tar@/ts"] != "ts"+zeros || got["base.tar@"] != "base"+zeros || got["manifest"] != "{m}" || end == nil {
		t.Errorf("14: %q, end %+v", got, end)
	}

	// The server's error is the error, in its own words.
	_, _, _, err = replay(t, 15, []pgproto3.BackendMessage{
		&pgproto3.ErrorResponse{Severity: "ERROR", Code: "55000", Message: "incremental backups cannot be taken unless WAL summarization is enabled"},
		&pgproto3.ReadyForQuery{TxStatus: 'I'}})
	if !errors.Is(err, ErrBaseBackup) || !strings.Contains(err.Error(), "WAL summarization") {
		t.Errorf("an error from the server: %v", err)
	}
	// A consumer that fails stops the backup with its error.
	s := &bbStream{o: BaseBackupOptions{Major: 15}, h: BackupHandler{
		Archive: func(BackupArchive, io.Reader) error { return errors.New("the store is down") }}}
	defer s.abort(errors.New("done"))
	var failed error
	for _, m := range answer(&pgproto3.CopyOutResponse{}, copyData('n', "base.tar\x00", "\x00"), copyData('d', string(bytes.Repeat([]byte("x"), 1<<16)))) {
		if failed = s.handle(m); failed != nil {
			break
		}
	}
	if failed == nil || !strings.Contains(failed.Error(), "the store is down") {
		t.Errorf("a failing consumer: %v", failed)
	}
}
