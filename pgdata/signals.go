package pgdata

import (
	"os"
	"path/filepath"
	"strings"
)

// Signal files in a data directory.
const (
	// StandbySignalFile makes a server of 12 or later start as a standby.
	StandbySignalFile = "standby.signal"
	// RecoverySignalFile makes it start in targeted archive recovery,
	// which ends (and promotes) when restore_command reports a file
	// missing.
	RecoverySignalFile = "recovery.signal"
	// PromoteFile is what pg_ctl promote and pg_promote() create. The
	// server looks for it only after restore_command returns, so a waiting
	// restore_command must look itself.
	PromoteFile = "promote"
)

func exists(dataDir, name string) bool {
	_, err := os.Stat(filepath.Join(dataDir, name))
	return err == nil
}

// HasStandbySignal reports whether dataDir holds standby.signal.
func HasStandbySignal(dataDir string) bool { return exists(dataDir, StandbySignalFile) }

// HasRecoverySignal reports whether dataDir holds recovery.signal.
func HasRecoverySignal(dataDir string) bool { return exists(dataDir, RecoverySignalFile) }

// PromoteRequested reports whether the server of dataDir has been asked
// to promote and has not done so yet.
func PromoteRequested(dataDir string) bool { return exists(dataDir, PromoteFile) }

// IsStandby reports whether the server of dataDir ("" is the current
// directory, which it is when the server runs restore_command) runs as a
// standby: it has standby.signal (12 and later), or a recovery.conf that
// sets standby_mode to true, the last setting winning, its lines read as
// the server reads them (ParseLine, includes followed, booleans as
// ParseBool accepts them). A recovery.conf is not looked at when
// PG_VERSION says 12 or later.
func IsStandby(dataDir string) bool {
	if dataDir == "" {
		dataDir = "."
	}
	if HasStandbySignal(dataDir) {
		return true
	}
	if v, err := ReadVersion(dataDir); err == nil && v.Major >= 12 {
		return false
	}
	r := &reader{conf: &Conf{}, seenFile: map[string]bool{}, seenDir: map[string]bool{}}
	rec := map[string]string{}
	if !r.file(filepath.Join(dataDir, RecoveryConfFile), false, "", 0, 0, rec) {
		return false
	}
	on, ok := ParseBool(rec["standby_mode"])
	return ok && on
}

// ParseBool reads a boolean as the server does (parse_bool): on, off,
// true, false, yes, no, 1 and 0 in any case, and unique prefixes of all
// but on and off (t, f, y, n; "o" alone is neither). ok is false for
// anything else.
func ParseBool(s string) (value, ok bool) {
	l := asciiLower(s)
	prefix := func(word string, min int) bool { return len(l) >= min && strings.HasPrefix(word, l) }
	switch {
	case prefix("true", 1), prefix("yes", 1), prefix("on", 2), l == "1":
		return true, true
	case prefix("false", 1), prefix("no", 1), prefix("off", 2), l == "0":
		return false, true
	}
	return false, false
}

// BackupLabelFile is what a base backup leaves in the data directory until
// the recovery that starts from it has read it (it then becomes
// backup_label.old).
const BackupLabelFile = "backup_label"

// HasBackupLabel reports whether dataDir holds backup_label: a recovery
// from a base backup that is just starting.
func HasBackupLabel(dataDir string) bool { return exists(dataDir, BackupLabelFile) }
