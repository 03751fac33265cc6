package backup

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/walship/walship/pgdata"
	"github.com/walship/walship/rewind"
)

// recovery is how a restored data directory recovers, for the server's
// version.
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

// write puts the recovery settings and the signal file into the data
// directory dir and describes what it wrote.
func (rc recovery) write(dir string) ([]string, error) {
	var settings, auto []pgdata.Setting
	signal := pgdata.RecoverySignalFile
	set := func(name, value string) { settings = append(settings, pgdata.Setting{Name: name, Value: value}) }
	var desc []string
	switch {
	case rc.standby && rc.primaryConnInfo != "":
		signal = pgdata.StandbySignalFile
		desc = append(desc, "a standby of "+rewind.Redact(rc.primaryConnInfo))
	case rc.standby:
		set("restore_command", rc.restoreCommand)
		set("recovery_target_timeline", "latest")
		if rc.version.Major >= 15 {
			set("recovery_prefetch", "off") // the waiting restore_command needs it
		}
		if rc.trigger == "" {
			signal = pgdata.StandbySignalFile
			desc = append(desc, "an archive-only standby (promote it with pg_ctl promote)")
		} else {
			desc = append(desc, "an archive-only standby, promoted when "+rc.trigger+" appears")
		}
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
			auto = append(auto, pgdata.Setting{Name: "archive_mode", Value: "off"})
			desc = append(desc, "archive_mode = off")
		}
	}
	standbyConf := rewind.StandbyConf{PrimaryConnInfo: rc.primaryConnInfo, RestoreCommand: rc.restoreCommand, SlotName: rc.slot}
	autoPath := filepath.Join(dir, pgdata.AutoConfFile)
	cur, err := readOptional(autoPath)
	if err != nil {
		return nil, err
	}
	if rc.version.Major < 12 {
		// recovery.conf, read before 12; standby_mode instead of the signal files.
		var conf string
		switch {
		case rc.standby && rc.primaryConnInfo != "":
			conf = rewind.RecoveryConf("", standbyConf)
		default:
			if rc.standby && rc.trigger == "" {
				settings = append([]pgdata.Setting{{Name: "standby_mode", Value: "on"}}, settings...)
			}
			conf = pgdata.SetSettings("# Written by walship backup restore.\n", settings)
		}
		if err := writeFile(filepath.Join(dir, pgdata.RecoveryConfFile), conf); err != nil {
			return nil, err
		}
		desc = append(desc, "recovery.conf")
		if len(auto) > 0 || len(rc.extra) > 0 {
			if err := writeFile(autoPath, pgdata.SetSettings(cur, append(auto, rc.extra...))); err != nil {
				return nil, err
			}
		}
		return desc, nil
	}
	next := cur
	if rc.standby && rc.primaryConnInfo != "" {
		next = rewind.AutoConfStandby(next, standbyConf)
	}
	next = pgdata.SetSettings(next, append(append(settings, auto...), rc.extra...))
	if err := writeFile(autoPath, next); err != nil {
		return nil, err
	}
	if err := writeFile(filepath.Join(dir, signal), ""); err != nil {
		return nil, err
	}
	var names []string
	for _, s := range append(settings, rc.extra...) {
		names = append(names, s.Name)
	}
	if rc.standby && rc.primaryConnInfo != "" {
		names = append(names, "primary_conninfo", "restore_command")
	}
	desc = append(desc, signal, "postgresql.auto.conf: "+strings.Join(names, ", "))
	return desc, nil
}

func readOptional(p string) (string, error) {
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	return string(b), err
}

func writeFile(p, content string) error {
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		return fmt.Errorf("writing %s: %w", p, err)
	}
	return nil
}
