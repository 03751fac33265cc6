package wal

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// BackupInfo is what a backup history file (…​.backup) records about one
// base backup.
type BackupInfo struct {
	Start         LSN
	Stop          LSN
	Checkpoint    LSN
	StartTimeline uint32
	StopTimeline  uint32
	Label         string
	StartTime     string
	StopTime      string
	// From is where the backup was taken: "primary" or "standby" (BACKUP
	// FROM, 9.6 and later); empty when the file does not say.
	From string
	// IncrementalFrom and IncrementalFromTimeline are, in the label of an
	// incremental backup (17 and later), the start of the backup it was
	// taken relative to (INCREMENTAL FROM LSN, INCREMENTAL FROM TLI); 0
	// in a full backup's.
	IncrementalFrom         LSN
	IncrementalFromTimeline uint32
}

// ParseBackup parses a backup history file. START and STOP WAL LOCATION are
// required; timelines default to the one in the file names.
func ParseBackup(r io.Reader) (BackupInfo, error) {
	return parseBackup(r, "backup history", true)
}

// ParseBackupLabel parses a backup_label file, the first file of a base
// backup: what a backup history file says, without the stop (the label is
// written when the backup starts). START WAL LOCATION is required. A backup
// taken from a standby has a label but no backup history file.
func ParseBackupLabel(r io.Reader) (BackupInfo, error) {
	return parseBackup(r, "backup label", false)
}

func parseBackup(r io.Reader, what string, needStop bool) (BackupInfo, error) {
	var b BackupInfo
	var haveStart, haveStop bool
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		key, val, ok := strings.Cut(sc.Text(), ": ")
		if !ok {
			continue
		}
		switch key {
		case "START WAL LOCATION", "STOP WAL LOCATION":
			l, file, err := parseLocation(val)
			if err != nil {
				return BackupInfo{}, fmt.Errorf("%s: %s: %w", what, key, err)
			}
			if key[:4] == "STAR" {
				b.Start, haveStart = l, true
				if b.StartTimeline == 0 {
					b.StartTimeline = file.Timeline
				}
			} else {
				b.Stop, haveStop = l, true
				if b.StopTimeline == 0 {
					b.StopTimeline = file.Timeline
				}
			}
		case "CHECKPOINT LOCATION":
			l, err := ParseLSN(strings.TrimSpace(val))
			if err != nil {
				return BackupInfo{}, fmt.Errorf("%s: %s: %w", what, key, err)
			}
			b.Checkpoint = l
		case "INCREMENTAL FROM LSN":
			l, err := ParseLSN(strings.TrimSpace(val))
			if err != nil {
				return BackupInfo{}, fmt.Errorf("%s: %s: %w", what, key, err)
			}
			b.IncrementalFrom = l
		case "START TIMELINE", "STOP TIMELINE", "INCREMENTAL FROM TLI":
			t, err := strconv.ParseUint(strings.TrimSpace(val), 10, 32)
			if err != nil {
				return BackupInfo{}, fmt.Errorf("%s: %s: bad timeline %q", what, key, val)
			}
			switch key[:4] {
			case "STAR":
				b.StartTimeline = uint32(t)
			case "STOP":
				b.StopTimeline = uint32(t)
			default:
				b.IncrementalFromTimeline = uint32(t)
			}
		case "LABEL":
			b.Label = val
		case "START TIME":
			b.StartTime = val
		case "STOP TIME":
			b.StopTime = val
		case "BACKUP FROM":
			b.From = strings.TrimSpace(val)
		}
	}
	if err := sc.Err(); err != nil {
		return BackupInfo{}, fmt.Errorf("%s: %w", what, err)
	}
	if !haveStart {
		return BackupInfo{}, fmt.Errorf("%s: START WAL LOCATION is required", what)
	}
	if needStop && !haveStop {
		return BackupInfo{}, fmt.Errorf("%s: START and STOP WAL LOCATION are required", what)
	}
	return b, nil
}

// parseLocation parses "0/2000028 (file 000000010000000000000002)".
func parseLocation(s string) (LSN, Name, error) {
	lsnText, rest, _ := strings.Cut(strings.TrimSpace(s), " ")
	l, err := ParseLSN(lsnText)
	if err != nil {
		return 0, Name{}, err
	}
	rest = strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(rest), "(file "), ")")
	if rest == "" {
		return l, Name{}, nil
	}
	n, err := ParseName(rest)
	if err != nil {
		return 0, Name{}, err
	}
	return l, n, nil
}

// BackupTimeLayout is how PostgreSQL writes START TIME and STOP TIME in a
// backup label or backup history file.
const BackupTimeLayout = "2006-01-02 15:04:05 MST"

// Started is when the backup started, as START TIME says; ok is false
// when it says nothing readable.
func (b BackupInfo) Started() (t time.Time, ok bool) { return parseBackupTime(b.StartTime) }

// Stopped is when the backup stopped, as STOP TIME says.
func (b BackupInfo) Stopped() (t time.Time, ok bool) { return parseBackupTime(b.StopTime) }

func parseBackupTime(s string) (time.Time, bool) {
	t, err := time.Parse(BackupTimeLayout, strings.TrimSpace(s))
	return t.UTC(), err == nil
}

// FormatBackupTime writes t as START TIME and STOP TIME are written, in UTC.
func FormatBackupTime(t time.Time) string { return t.UTC().Format(BackupTimeLayout) }
