// Package backup takes base backups into a walship repository and
// restores them, beside the WAL the repository already holds.
//
// Create runs the server's own base backup over a replication connection
// (pgserver.BaseBackup: tar format, no WAL, with a manifest; on 17 and
// later incremental, relative to a stored parent whose manifest it
// uploads) and stores every archive as it arrives: compressed and
// checksummed by the repo package, never held whole in memory nor written
// to local disk. A backup claims its ID (when the server started it)
// before it stores anything, and its record is written last, so an
// interrupted backup leaves nothing that is taken for a backup.
//
// Restore picks the newest backup that can reach a recovery target,
// fetches and checks every file against its backup's manifest into a
// staging directory before the data directory is touched, and rebuilds an
// incremental backup from its chain straight from the repository
// (chain.go); every write goes through an os.Root, so nothing a stored tar
// holds reaches outside the data directory and the tablespaces' (stage.go).
// It writes the recovery settings for the server's version, and can start
// the server and wait for the target. Register records a backup taken by
// other means (pg_basebackup from a standby, say), so that retention and
// verify count it.
package backup
