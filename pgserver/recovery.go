package pgserver

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/walship/walship/internal/atomicfile"
	"github.com/walship/walship/pgdata"
)

// Recovery is how a data directory recovers when its server starts: as a
// standby (it stays in recovery until promoted) or in archive recovery (it
// recovers to a target, or to the end of the archive, then promotes or
// stops), with the settings that say from where and how far, written the
// way the server's version reads them.
type Recovery struct {
	Version pgdata.Version
	// Standby: standby.signal (12 and later) or standby_mode = on
	// (recovery.conf, before 12); else recovery.signal (archive recovery).
	Standby bool
	// Settings are the recovery settings (restore_command, the target,
	// primary_conninfo, ...): postgresql.auto.conf from 12 on,
	// recovery.conf before.
	Settings []pgdata.Setting
	// Conf are server settings (archive_mode, port, ...): always
	// postgresql.auto.conf.
	Conf []pgdata.Setting
	// Header starts a recovery.conf written anew ("# Written by ...").
	Header string
	// Unset are settings to take out of the files written (a recovery
	// target a restored copy carried over from its own restore).
	Unset []string
}

// Write writes the recovery configuration into the data directory dir:
// from 12 on Settings and Conf into postgresql.auto.conf and the signal
// file (standby.signal or recovery.signal, the other one removed); before
// 12, recovery.conf (with standby_mode = on for a standby) and Conf into
// postgresql.auto.conf. A setting written replaces an earlier value of
// it; the files' other lines stay. Each file is replaced atomically (a
// temporary file renamed over it, never written through a symbolic link)
// and synced. It returns the files written, in the order written.
func (rc Recovery) Write(dir string) ([]string, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	return rc.WriteRoot(root)
}

// WriteRoot is Write into the data directory root: nothing outside it is
// read or written, and a file of the configuration that is not a regular
// file (a symbolic link a restored tar planted) is neither read nor
// followed, only replaced.
func (rc Recovery) WriteRoot(root *os.Root) ([]string, error) {
	var wrote []string
	set := func(name string, settings []pgdata.Setting, header string) error {
		cur, err := readRegular(root, name)
		if err != nil {
			return err
		}
		if cur == "" {
			cur = header
		}
		if err := writeConf(root, name, pgdata.SetSettings(cur, settings, rc.Unset...)); err != nil {
			return err
		}
		wrote = append(wrote, name)
		return nil
	}
	if rc.Version.Major != 0 && rc.Version.Major < 12 {
		settings := rc.Settings
		if rc.Standby {
			settings = append([]pgdata.Setting{{Name: "standby_mode", Value: "on"}}, settings...)
		}
		if err := set(pgdata.RecoveryConfFile, settings, rc.Header); err != nil {
			return wrote, err
		}
		if len(rc.Conf) > 0 {
			if err := set(pgdata.AutoConfFile, rc.Conf, ""); err != nil {
				return wrote, err
			}
		}
		return wrote, nil
	}
	if err := set(pgdata.AutoConfFile, append(append([]pgdata.Setting{}, rc.Settings...), rc.Conf...), ""); err != nil {
		return wrote, err
	}
	signal, other := pgdata.RecoverySignalFile, pgdata.StandbySignalFile
	if rc.Standby {
		signal, other = other, signal
	}
	if err := writeConf(root, signal, ""); err != nil {
		return wrote, err
	}
	wrote = append(wrote, signal)
	if err := root.Remove(other); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return wrote, err
	}
	return wrote, nil
}

// StandbySettings are what make a server a standby of primaryConnInfo:
// primary_conninfo, primary_slot_name (when slot is not ""),
// restore_command for what it cannot stream, and
// recovery_target_timeline = 'latest'.
func StandbySettings(primaryConnInfo, slot, restoreCommand string) []pgdata.Setting {
	out := []pgdata.Setting{{Name: "primary_conninfo", Value: primaryConnInfo}}
	if slot != "" {
		out = append(out, pgdata.Setting{Name: "primary_slot_name", Value: slot})
	}
	return append(out, pgdata.Setting{Name: "restore_command", Value: restoreCommand},
		pgdata.Setting{Name: "recovery_target_timeline", Value: "latest"})
}

// readRegular reads the regular file name of root; a missing file, or
// anything else than a regular file, reads as empty.
func readRegular(root *os.Root, name string) (string, error) {
	fi, err := root.Lstat(name)
	if errors.Is(err, fs.ErrNotExist) || (err == nil && !fi.Mode().IsRegular()) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("reading %s: %w", name, err)
	}
	b, err := root.ReadFile(name)
	if err != nil {
		return "", fmt.Errorf("reading %s: %w", name, err)
	}
	return string(b), nil
}

// writeConf replaces the file name of root with content durably (see
// atomicfile.ReplaceIn).
func writeConf(root *os.Root, name, content string) error {
	if err := atomicfile.ReplaceIn(root, name, []byte(content)); err != nil {
		return fmt.Errorf("writing %s: %w", name, err)
	}
	return nil
}

// ShellQuote quotes one word for /bin/sh, which runs restore_command and
// pg_ctl's -o.
func ShellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_@%+=:,./-") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// RestoreCommand builds a restore_command from a program and its
// arguments, shell-quoted, with %f %p at the end. A literal % is doubled,
// since PostgreSQL replaces %f, %p, %r and %% in the command.
func RestoreCommand(bin string, args []string) string {
	words := make([]string, 0, len(args)+3)
	for _, w := range append([]string{bin}, args...) {
		words = append(words, strings.ReplaceAll(ShellQuote(w), "%", "%%"))
	}
	return strings.Join(append(words, "%f", "%p"), " ")
}
