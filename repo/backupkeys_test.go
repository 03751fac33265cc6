package repo

import (
	"testing"
	"time"
)

func TestBackupKeys(t *testing.T) {
	id := NewBackupID(time.Date(2024, 1, 2, 3, 4, 5, 999, time.FixedZone("x", 3600)))
	if id != "20240102T020405Z" {
		t.Fatalf("NewBackupID = %q, want the UTC second", id)
	}
	tests := []struct {
		part BackupPart
		key  string
	}{
		{MetaPart, "backups/20240102T020405Z/backup.json.lz4"},
		{ManifestPart, "backups/20240102T020405Z/backup_manifest.lz4"},
		{BasePart, "backups/20240102T020405Z/base.tar.lz4"},
		{TablespacePart(16384), "backups/20240102T020405Z/16384.tar.lz4"},
		{TablespacePart(4294967295), "backups/20240102T020405Z/4294967295.tar.lz4"},
	}
	for _, tt := range tests {
		o := BackupObject{ID: id, Part: tt.part}
		if got := o.Key(); got != tt.key {
			t.Errorf("%v.Key() = %q, want %q", tt.part, got, tt.key)
		}
		back, ok := ParseBackupKey(tt.key)
		if !ok || back != o {
			t.Errorf("ParseBackupKey(%q) = %+v, %v, want %+v", tt.key, back, ok, o)
		}
		if _, _, _, isWAL := ParseKey(tt.key); isWAL {
			t.Errorf("ParseKey takes the backup object %q for a WAL file", tt.key)
		}
	}
	if next := id.Next(); next != "20240102T020406Z" {
		t.Errorf("Next = %q", next)
	}
}

func TestParseBackupKeyRejects(t *testing.T) {
	for _, key := range []string{
		"backups/20240102T020405Z/base.tar",           // not an lz4 object
		"backups/20240102T020405Z/other.lz4",          // no such part
		"backups/20240102T020405Z/016384.tar.lz4",     // not how an OID is written
		"backups/20240102T020405Z/4294967296.tar.lz4", // not an OID
		"backups/20240102T020405Z/.tar.lz4",
		"backups/2024-01-02/base.tar.lz4", // not an ID
		"backups/20240102T020405/base.tar.lz4",
		"backups/20240102T020405Z/x/base.tar.lz4",
		"backups/20240102T020405Z",
		"wal/0000000100000000/000000010000000000000003.lz4",
		"base.tar.lz4",
	} {
		if o, ok := ParseBackupKey(key); ok {
			t.Errorf("ParseBackupKey(%q) = %+v, want it rejected", key, o)
		}
	}
	for _, s := range []string{"", "20240102", "20241302T000000Z", "20240102T020405z", "../x"} {
		if id, err := ParseBackupID(s); err == nil {
			t.Errorf("ParseBackupID(%q) = %q, want an error", s, id)
		}
	}
}
