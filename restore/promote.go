package restore

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/walship/walship/pgdata"
	"github.com/walship/walship/pgserver"
	"github.com/walship/walship/repo"
	"github.com/walship/walship/storage"
	"github.com/walship/walship/wal"
)

// PromotionWarning returns a one-line warning when the server of dataDir
// ("" is the current directory) runs archive recovery (recovery.signal, no
// standby) and would, once promoted, archive into r: its configuration has
// archive_mode on and an archive_command running walship-archive on the
// same repository. pg_basebackup copies the primary's configuration, so a
// PITR copy does so unless told otherwise, and its new timeline then mixes
// with the primary's WAL. It returns "" otherwise, and when the
// configuration cannot tell.
func PromotionWarning(dataDir string, r *repo.Repo) string {
	if dataDir == "" {
		dataDir = "."
	}
	if !pgdata.HasRecoverySignal(dataDir) || pgdata.IsStandby(dataDir) {
		return ""
	}
	conf, _ := pgdata.ReadConf(dataDir, "") // what can be read is what the server runs with
	mode := conf.Settings["archive_mode"]
	if on, ok := pgdata.ParseBool(mode); mode != "always" && !(ok && on) {
		return ""
	}
	if conf.Settings["archive_library"] != "" {
		return "" // archive_command is not used
	}
	cmd, ok := pgserver.ParseArchiveCommand(conf.Settings["archive_command"])
	if !ok {
		return ""
	}
	abs, err := filepath.Abs(dataDir)
	if err != nil {
		return ""
	}
	loc, err := cmd.Repository(os.Getenv, abs)
	if err != nil || !storage.SameLocation(loc, r.String(), abs) {
		return ""
	}
	return fmt.Sprintf("archive recovery from %s, and this server archives into the same repository once promoted "+
		"(archive_mode = %s, archive_command runs %s): its new timeline would mix with the primary's WAL there; "+
		"for a PITR or test copy set archive_mode = off (or another repository) before it promotes, "+
		"unless it is meant to replace the primary", r, mode, pgserver.ArchiveProgram)
}

// startingRecovery reports whether a call is one of the first of a
// recovery: for a timeline history file (the server looks for those
// first, and again at its end), or while the base backup's backup_label is
// still in place.
func startingRecovery(req Request) bool {
	dir := req.DataDir
	if dir == "" {
		dir = "."
	}
	return req.Name.Kind == wal.KindHistory || pgdata.HasBackupLabel(dir)
}
