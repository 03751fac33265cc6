package wal

import (
	"strings"
	"testing"
)

// pg15Backup is a backup history file as PostgreSQL 15 writes it at the end
// of pg_basebackup.
const pg15Backup = `START WAL LOCATION: 0/2000028 (file 000000010000000000000002)
STOP WAL LOCATION: 0/2000100 (file 000000010000000000000002)
CHECKPOINT LOCATION: 0/2000060
BACKUP METHOD: streamed
BACKUP FROM: primary
START TIME: 2023-05-04 10:11:12 UTC
LABEL: pg_basebackup base backup
START TIMELINE: 1
STOP TIME: 2023-05-04 10:11:13 UTC
STOP TIMELINE: 1
`

func TestParseBackup(t *testing.T) {
	tests := []struct {
		name    string
		content string
		want    BackupInfo
	}{
		{
			name:    "PostgreSQL 15",
			content: pg15Backup,
			want: BackupInfo{Start: 0x2000028, Stop: 0x2000100, Checkpoint: 0x2000060,
				StartTimeline: 1, StopTimeline: 1, Label: "pg_basebackup base backup",
				StartTime: "2023-05-04 10:11:12 UTC", StopTime: "2023-05-04 10:11:13 UTC", From: "primary"},
		},
		{
			name: "timelines from the file names, label with a colon",
			content: "START WAL LOCATION: 16/B3000028 (file 0000000300000016000000B3)\n" +
				"STOP WAL LOCATION: 16/B4000000 (file 0000000400000016000000B3)\n" +
				"CHECKPOINT LOCATION: 16/B3000060\n" +
				"LABEL: nightly: full\n",
			want: BackupInfo{Start: 0x16_B3000028, Stop: 0x16_B4000000, Checkpoint: 0x16_B3000060,
				StartTimeline: 3, StopTimeline: 4, Label: "nightly: full"},
		},
		{
			name: "explicit timelines win over the file names",
			content: "START TIMELINE: 5\n" +
				"START WAL LOCATION: 0/2000028 (file 000000010000000000000002)\n" +
				"STOP WAL LOCATION: 0/2000100 (file 000000010000000000000002)\n" +
				"STOP TIMELINE: 6\n",
			want: BackupInfo{Start: 0x2000028, Stop: 0x2000100, StartTimeline: 5, StopTimeline: 6},
		},
		{
			name:    "locations without a file",
			content: "START WAL LOCATION: 0/2000028\nSTOP WAL LOCATION: 0/2000100\nunknown line\nFUTURE KEY: x\n",
			want:    BackupInfo{Start: 0x2000028, Stop: 0x2000100},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseBackup(strings.NewReader(tt.content))
			if err != nil {
				t.Fatalf("ParseBackup: %v", err)
			}
			if got != tt.want {
				t.Errorf("ParseBackup =\n%+v\nwant\n%+v", got, tt.want)
			}
		})
	}
}

func TestParseBackupRejects(t *testing.T) {
	tests := []struct {
		name    string
		content string
	}{
		{"empty", ""},
		{"no stop", "START WAL LOCATION: 0/2000028 (file 000000010000000000000002)\n"},
		{"no start", "STOP WAL LOCATION: 0/2000100 (file 000000010000000000000002)\n"},
		{"bad start LSN", strings.Replace(pg15Backup, "0/2000028 (", "0-2000028 (", 1)},
		{"bad file name", strings.Replace(pg15Backup, "(file 000000010000000000000002)", "(file 00000001000000000000002)", 1)},
		{"bad checkpoint", strings.Replace(pg15Backup, "CHECKPOINT LOCATION: 0/2000060", "CHECKPOINT LOCATION: soon", 1)},
		{"bad timeline", strings.Replace(pg15Backup, "START TIMELINE: 1", "START TIMELINE: one", 1)},
		{"garbage", "this is not a backup history file\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if b, err := ParseBackup(strings.NewReader(tt.content)); err == nil {
				t.Errorf("ParseBackup = %+v, want an error", b)
			}
		})
	}
}

func TestBackupNameMatchesContent(t *testing.T) {
	// The file is named after its start: segment and offset.
	b, err := ParseBackup(strings.NewReader(pg15Backup))
	if err != nil {
		t.Fatal(err)
	}
	n := mustName(t, "000000010000000000000002.00000028.backup")
	if got := n.StartLSN(mb16); got != b.Start {
		t.Errorf("name's StartLSN = %s, file's START WAL LOCATION = %s", got, b.Start)
	}
}

// pg15StandbyLabel is the backup_label pg_basebackup receives from a
// PostgreSQL 15 standby.
const pg15StandbyLabel = `START WAL LOCATION: 0/5000028 (file 000000020000000000000005)
CHECKPOINT LOCATION: 0/5000060
BACKUP METHOD: streamed
BACKUP FROM: standby
START TIME: 2023-05-04 10:11:12 UTC
LABEL: walship nightly
START TIMELINE: 2
`

func TestParseBackupLabel(t *testing.T) {
	got, err := ParseBackupLabel(strings.NewReader(pg15StandbyLabel))
	if err != nil {
		t.Fatal(err)
	}
	want := BackupInfo{Start: 0x5000028, Checkpoint: 0x5000060, StartTimeline: 2, Label: "walship nightly",
		StartTime: "2023-05-04 10:11:12 UTC", From: "standby"}
	if got != want {
		t.Errorf("ParseBackupLabel =\n%+v\nwant\n%+v", got, want)
	}
	if _, err := ParseBackupLabel(strings.NewReader("LABEL: x\n")); err == nil {
		t.Error("a label without START WAL LOCATION parsed")
	}
	// A backup history file is not accepted without its stop.
	if _, err := ParseBackup(strings.NewReader(pg15StandbyLabel)); err == nil {
		t.Error("ParseBackup accepted a backup label (no STOP WAL LOCATION)")
	}
}

// The label of an incremental backup (17 and later) names the start of the
// backup it builds on.
func TestParseIncrementalLabel(t *testing.T) {
	label := "START WAL LOCATION: 0/5000028 (file 000000010000000000000005)\nCHECKPOINT LOCATION: 0/5000080\n" +
		"BACKUP METHOD: streamed\nBACKUP FROM: primary\nSTART TIME: 2026-12-07 04:08:15 UTC\nLABEL: x\n" +
		"START TIMELINE: 1\nINCREMENTAL FROM LSN: 0/2000028\nINCREMENTAL FROM TLI: 1\n"
	got, err := ParseBackupLabel(strings.NewReader(label))
	if err != nil {
		t.Fatal(err)
	}
	if got.IncrementalFrom != 0x2000028 || got.IncrementalFromTimeline != 1 || got.Start != 0x5000028 || got.StartTimeline != 1 {
		t.Errorf("ParseBackupLabel = %+v, want incremental from 0/2000028 on timeline 1", got)
	}
}

func TestLSNText(t *testing.T) {
	l := LSN(0x16_B3000028)
	b, err := l.MarshalText()
	if err != nil || string(b) != "16/B3000028" {
		t.Fatalf("MarshalText = %q, %v", b, err)
	}
	var back LSN
	if err := back.UnmarshalText(b); err != nil || back != l {
		t.Errorf("UnmarshalText(%q) = %s, %v", b, back, err)
	}
	if err := back.UnmarshalText([]byte("16-B3")); err == nil {
		t.Error("UnmarshalText accepted 16-B3")
	}
}
