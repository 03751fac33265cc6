package backup

import (
	"os"
	"strings"

	"github.com/walship/walship/pgdata"
	"github.com/walship/walship/pgserver"
)

// recovery is how a restored data directory recovers: a copy recovered to
// a target, or a standby (streaming, or archive-only).
type recovery struct {
	version        pgdata.Version
	restoreCommand string
	target         Target
	action         string // promote, pause, shutdown
	// standby: a standby of PrimaryConnInfo (streaming, and the archive
	// for what it cannot stream), or without one an archive-only standby
	// whose restore_command waits (walship-restore --standby).
	standby         bool
	primaryConnInfo string
	slot            string
	trigger         string // the archive-only standby's trigger file: archive recovery
	keepArchiving   bool
	extra           []pgdata.Setting
}

// standbyArchiving says what a standby's summary says of archive_mode.
const standbyArchiving = "archive_mode as the backup has it: once promoted, the standby archives as its primary did (it is to replace it)"

// recoveryTargets are the settings that stop a recovery early.
var recoveryTargets = []string{"recovery_target", "recovery_target_lsn", "recovery_target_name", "recovery_target_time",
	"recovery_target_xid", "recovery_target_inclusive", "recovery_target_action"}

// write puts the recovery settings and the signal file into the data
// directory root (pgserver.Recovery) and describes what it wrote.
func (rc recovery) write(root *os.Root) ([]string, error) {
	// A backup of a server that was itself restored to a target (a PITR
	// copy promoted into service) carries that target in its
	// postgresql.auto.conf: it goes, whatever this restore sets.
	w := pgserver.Recovery{Version: rc.version, Header: "# Written by walship backup restore.\n", Unset: recoveryTargets}
	set := func(name, value string) { w.Settings = append(w.Settings, pgdata.Setting{Name: name, Value: value}) }
	var desc []string
	switch {
	case rc.standby && rc.primaryConnInfo != "":
		w.Standby = true
		w.Settings = pgserver.StandbySettings(rc.primaryConnInfo, rc.slot, rc.restoreCommand)
		desc = append(desc, "a standby of "+pgserver.Redact(rc.primaryConnInfo), standbyArchiving)
	case rc.standby:
		set("restore_command", rc.restoreCommand)
		set("recovery_target_timeline", "latest")
		if rc.version.Major >= 15 {
			set("recovery_prefetch", "off") // the waiting restore_command needs it
		}
		// With a trigger file: archive recovery, which the file ends.
		w.Standby = rc.trigger == ""
		if w.Standby {
			desc = append(desc, "an archive-only standby (promote it with pg_ctl promote)")
		} else {
			desc = append(desc, "an archive-only standby, promoted when "+rc.trigger+" appears")
		}
		desc = append(desc, standbyArchiving)
	default:
		set("restore_command", rc.restoreCommand)
		switch rc.target.Kind {
		case TargetTime:
			set("recovery_target_time", pgTime(rc.target.Time))
		case TargetName:
			set("recovery_target_name", rc.target.Name)
		case TargetLSN:
			set("recovery_target_lsn", rc.target.LSN.String())
		}
		if rc.target.Kind != TargetLatest {
			if rc.version.Major >= 10 || rc.version.Text == "9.5" || rc.version.Text == "9.6" {
				set("recovery_target_action", rc.action)
			}
		}
		set("recovery_target_timeline", "latest")
		desc = append(desc, "recovery to "+rc.target.String())
		if rc.target.Kind != TargetLatest {
			desc[0] += ", then " + rc.action
		}
		if !rc.keepArchiving {
			w.Conf = append(w.Conf, pgdata.Setting{Name: "archive_mode", Value: "off"})
			desc = append(desc, "archive_mode = off")
		}
	}
	w.Conf = append(w.Conf, rc.extra...)
	files, err := w.WriteRoot(root)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, s := range append(append([]pgdata.Setting{}, w.Settings...), rc.extra...) {
		names = append(names, s.Name)
	}
	auto := ""
	for _, f := range files {
		switch {
		case f == pgdata.AutoConfFile && rc.version.Major >= 12:
			auto = f + ": " + strings.Join(names, ", ")
		case f != pgdata.AutoConfFile:
			desc = append(desc, f)
		}
	}
	if auto != "" {
		desc = append(desc, auto)
	}
	return desc, nil
}
