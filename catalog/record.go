package catalog

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/walship/walship/repo"
	"github.com/walship/walship/wal"
)

// RecordFormat is the version of the backup record walship writes.
const RecordFormat = 1

// Record is walship's record of one base backup, stored as the last
// object of the backup: a backup exists when its record does.
type Record struct {
	Format int           `json:"format"`
	ID     repo.BackupID `json:"id"`
	Label  string        `json:"label"`
	// From is where the backup was taken: "primary" or "standby".
	From string `json:"from"`
	// Parent, for an incremental backup (PostgreSQL 17 and later), is the
	// backup it was taken relative to: restoring it needs every backup of
	// its chain, down to a full one. "" for a full backup.
	Parent repo.BackupID `json:"parent,omitempty"`
	// Registered: taken by other means (pg_basebackup by hand) and
	// recorded with walship backup register, so that retention and verify
	// count it; the repository holds none of its files.
	Registered bool `json:"registered,omitempty"`
	// Directory is where a registered backup's files are (what walship
	// backup register was given).
	Directory string `json:"directory,omitempty"`

	SystemID     uint64 `json:"system_identifier,string"`
	PGVersion    string `json:"pg_version"`     // "15.4"
	PGVersionNum int    `json:"pg_version_num"` // 150004
	SegSize      uint32 `json:"wal_segment_size"`
	// BlockSize is the size of a block of the relation files (8192 but
	// in builds that chose otherwise), which an incremental file's blocks
	// have; 0 in records written before walship took incremental backups.
	BlockSize int `json:"block_size,omitempty"`

	Start         wal.LSN   `json:"start_lsn"`
	StartTimeline uint32    `json:"start_timeline"`
	Stop          wal.LSN   `json:"stop_lsn"`
	StopTimeline  uint32    `json:"stop_timeline"`
	Checkpoint    wal.LSN   `json:"checkpoint_lsn"`
	StartTime     time.Time `json:"start_time"`
	// StopTime is when the backup was complete on the server: a restore
	// can reach any time from then on.
	StopTime       time.Time `json:"stop_time"`
	CheckpointMode string    `json:"checkpoint,omitempty"` // fast or spread
	// Compression is who compressed the tars: "lz4" (walship) or
	// "server-lz4" (the server, pg_basebackup --compress=server-lz4).
	Compression string `json:"compression,omitempty"`

	// Objects are the backup's tar files and manifest, in the order
	// pg_basebackup sent them.
	Objects []RecordObject `json:"objects"`
	// Manifest describes backup_manifest (13 and later).
	Manifest *ManifestInfo `json:"manifest,omitempty"`
	Files    int           `json:"files,omitempty"` // files in the manifest

	Size   int64 `json:"size"`   // bytes of the tar files and manifest
	Stored int64 `json:"stored"` // bytes stored for them
}

// RecordObject is one stored object of a backup.
type RecordObject struct {
	Name string `json:"name"` // base.tar, 16384.tar, backup_manifest
	// Tablespace is the OID of the tablespace a tar holds (0: the data
	// directory), and Location its directory on the server.
	Tablespace uint32 `json:"tablespace,omitempty"`
	Location   string `json:"location,omitempty"`
	Size       int64  `json:"size"`
	Stored     int64  `json:"stored"`
}

// Part is the object's part, from its name.
func (o RecordObject) Part() (repo.BackupPart, bool) { return repo.ParseBackupPart(o.Name) }

// ManifestInfo says how to check a backup against its manifest.
type ManifestInfo struct {
	// Checksum is the manifest's own SHA-256 (its Manifest-Checksum).
	Checksum string `json:"checksum"`
	// Algorithm is the checksum of the files it lists (CRC32C, SHA256, ...).
	Algorithm string `json:"file_checksums"`
}

// maxMeta bounds a backup record.
const maxMeta = 1 << 20

// PutRecord stores the record of a backup, create-only, as its last
// object.
func PutRecord(ctx context.Context, r *repo.Repo, m Record) error {
	if m.Format == 0 {
		m.Format = RecordFormat
	}
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	_, err = r.PutStream(ctx, repo.BackupObject{ID: m.ID, Part: repo.MetaPart}, bytes.NewReader(append(data, '\n')))
	return err
}

// ReadRecord reads and checks the record of backup id. A missing record
// gives an error matching fs.ErrNotExist; a damaged one, repo.ErrCorrupt.
func ReadRecord(ctx context.Context, r *repo.Repo, id repo.BackupID) (*Record, error) {
	o := repo.BackupObject{ID: id, Part: repo.MetaPart}
	rc, err := r.OpenStream(ctx, o)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, maxMeta+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxMeta {
		return nil, &repo.CorruptError{Key: o.Key(), Reason: "larger than any backup record"}
	}
	var m Record
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, &repo.CorruptError{Key: o.Key(), Reason: err.Error()}
	}
	if err := m.check(id); err != nil {
		return nil, &repo.CorruptError{Key: o.Key(), Reason: err.Error()}
	}
	return &m, nil
}

// check refuses a record that cannot describe backup id.
func (m *Record) check(id repo.BackupID) error {
	switch {
	case m.Format < 1:
		return fmt.Errorf("no format")
	case m.Format > RecordFormat:
		return fmt.Errorf("format %d, newer than this walship reads (%d)", m.Format, RecordFormat)
	case m.ID != id:
		return fmt.Errorf("the record is of backup %s", m.ID)
	case m.Start == 0 || m.StartTimeline == 0:
		return fmt.Errorf("no start LSN or timeline")
	case m.Stop < m.Start:
		return fmt.Errorf("stops at %s, before its start %s", m.Stop, m.Start)
	case !m.Registered && len(m.Objects) == 0:
		return fmt.Errorf("no objects")
	case m.Parent == id:
		return fmt.Errorf("its own parent")
	}
	if m.Parent != "" {
		if _, err := repo.ParseBackupID(string(m.Parent)); err != nil {
			return fmt.Errorf("parent: %w", err)
		}
	}
	for _, o := range m.Objects {
		if _, ok := o.Part(); !ok {
			return fmt.Errorf("object %q is no part of a backup", o.Name)
		}
	}
	return nil
}
