package wal

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
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
}

// ParseBackup parses a backup history file. START and STOP WAL LOCATION are
// required; timelines default to the one in the file names.
func ParseBackup(r io.Reader) (BackupInfo, error) {
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
				return BackupInfo{}, fmt.Errorf("backup history: %s: %w", key, err)
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
				return BackupInfo{}, fmt.Errorf("backup history: %s: %w", key, err)
			}
			b.Checkpoint = l
		case "START TIMELINE", "STOP TIMELINE":
			t, err := strconv.ParseUint(strings.TrimSpace(val), 10, 32)
			if err != nil {
				return BackupInfo{}, fmt.Errorf("backup history: %s: bad timeline %q", key, val)
			}
			if key[:4] == "STAR" {
				b.StartTimeline = uint32(t)
			} else {
				b.StopTimeline = uint32(t)
			}
		case "LABEL":
			b.Label = val
		case "START TIME":
			b.StartTime = val
		case "STOP TIME":
			b.StopTime = val
		}
	}
	if err := sc.Err(); err != nil {
		return BackupInfo{}, fmt.Errorf("backup history: %w", err)
	}
	if !haveStart || !haveStop {
		return BackupInfo{}, fmt.Errorf("backup history: START and STOP WAL LOCATION are required")
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
