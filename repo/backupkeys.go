package repo

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Base backups live beside the WAL, one directory per backup:
//
//	backups/20240102T030405Z/16384.tar.lz4        a tablespace's tar (by OID)
//	backups/20240102T030405Z/base.tar.lz4         the data directory's tar
//	backups/20240102T030405Z/backup_manifest.lz4  PostgreSQL's manifest (13+)
//	backups/20240102T030405Z/backup.json.lz4      walship's record, written last
//	backups/20240102T030405Z/claim.lz4            the ID taken, while a backup runs
//
// A backup is whatever has its record; objects under an ID without one are
// the leftovers of an interrupted backup (or prune). Every key is built and
// parsed here.

// BackupsPrefix is the key prefix under which base backups are stored.
const BackupsPrefix = "backups/"

// BackupID names one base backup: the UTC time it started, to the second.
type BackupID string

const backupIDLayout = "20060102T150405Z"

// NewBackupID is the ID of a backup started at t.
func NewBackupID(t time.Time) BackupID { return BackupID(t.UTC().Format(backupIDLayout)) }

// ParseBackupID checks an ID given on a command line or found in a key.
func ParseBackupID(s string) (BackupID, error) {
	t, err := time.Parse(backupIDLayout, s)
	if err != nil || t.Format(backupIDLayout) != s {
		return "", fmt.Errorf("%q is not a backup ID (like 20240102T030405Z)", s)
	}
	return BackupID(s), nil
}

// Time is when the backup started, as its ID says.
func (id BackupID) Time() time.Time {
	t, _ := time.Parse(backupIDLayout, string(id))
	return t
}

// Next is the ID one second later (for a backup started in the same
// second as another).
func (id BackupID) Next() BackupID { return NewBackupID(id.Time().Add(time.Second)) }

// PartKind is what one object of a backup holds.
type PartKind int

const (
	PartMeta       PartKind = iota + 1 // walship's record of the backup (JSON)
	PartManifest                       // backup_manifest
	PartBase                           // base.tar: the data directory
	PartTablespace                     // <oid>.tar: one tablespace
	PartClaim                          // the claim of the ID by a backup being taken
)

// BackupPart is one object of a backup.
type BackupPart struct {
	Kind       PartKind
	Tablespace uint32 // the tablespace's OID, for PartTablespace
}

// Parts of every backup.
var (
	MetaPart     = BackupPart{Kind: PartMeta}
	ManifestPart = BackupPart{Kind: PartManifest}
	BasePart     = BackupPart{Kind: PartBase}
	ClaimPart    = BackupPart{Kind: PartClaim}
)

// TablespacePart is the tar of the tablespace with this OID.
func TablespacePart(oid uint32) BackupPart { return BackupPart{Kind: PartTablespace, Tablespace: oid} }

// IsTar reports whether the part is a tar of files (the data directory or
// a tablespace).
func (p BackupPart) IsTar() bool { return p.Kind == PartBase || p.Kind == PartTablespace }

// String is the part's file name as pg_basebackup writes it (and
// backup.json for walship's record).
func (p BackupPart) String() string {
	switch p.Kind {
	case PartMeta:
		return "backup.json"
	case PartManifest:
		return "backup_manifest"
	case PartBase:
		return "base.tar"
	case PartTablespace:
		return strconv.FormatUint(uint64(p.Tablespace), 10) + ".tar"
	case PartClaim:
		return "claim"
	}
	return "?"
}

// ParseBackupPart reads a part's file name (as String writes it).
func ParseBackupPart(s string) (BackupPart, bool) {
	switch s {
	case "backup.json":
		return MetaPart, true
	case "backup_manifest":
		return ManifestPart, true
	case "base.tar":
		return BasePart, true
	case "claim":
		return ClaimPart, true
	}
	oid, ok := strings.CutSuffix(s, ".tar")
	if !ok || oid == "" || oid[0] == '0' || len(oid) > 10 {
		return BackupPart{}, false
	}
	n, err := strconv.ParseUint(oid, 10, 32)
	if err != nil {
		return BackupPart{}, false
	}
	return TablespacePart(uint32(n)), true
}

// BackupObject is one stored object of one backup.
type BackupObject struct {
	ID   BackupID
	Part BackupPart
}

// blobSuffix ends the key of every backup object: each is one lz4 frame
// (see blob.go).
const blobSuffix = ".lz4"

// Key is the object's storage key.
func (o BackupObject) Key() string {
	return BackupsPrefix + string(o.ID) + "/" + o.Part.String() + blobSuffix
}

// BackupPrefix is the key prefix of every object of backup id.
func BackupPrefix(id BackupID) string { return BackupsPrefix + string(id) + "/" }

// ParseBackupKey is the inverse of BackupObject.Key; ok is false for any key
// that is not a backup object's.
func ParseBackupKey(key string) (BackupObject, bool) {
	rest, ok := strings.CutPrefix(key, BackupsPrefix)
	if !ok {
		return BackupObject{}, false
	}
	dir, file, ok := strings.Cut(rest, "/")
	if !ok || strings.Contains(file, "/") {
		return BackupObject{}, false
	}
	id, err := ParseBackupID(dir)
	if err != nil {
		return BackupObject{}, false
	}
	name, ok := strings.CutSuffix(file, blobSuffix)
	if !ok {
		return BackupObject{}, false
	}
	part, ok := ParseBackupPart(name)
	if !ok {
		return BackupObject{}, false
	}
	return BackupObject{ID: id, Part: part}, true
}
