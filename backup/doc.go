// Package backup takes base backups into a walship repository and
// restores them, beside the WAL the repository already holds.
//
// Create runs the server's own pg_basebackup (tar format, -X none, with a
// manifest) and streams every tar it writes, through named pipes, into the
// repository as it arrives: compressed and checksummed by the repo
// package, never held whole in memory or on local disk. The backup's
// record is written last, so an interrupted backup leaves nothing that is
// taken for a backup.
//
// Restore picks the newest backup that can reach a recovery target,
// fetches and checks every file against the backup's manifest into a
// staging directory before the data directory is touched, writes the
// recovery settings for the server's version, and can start the server
// and wait for the target. Register records a backup taken by other means
// (pg_basebackup from a standby, say), so that retention and verify count
// it.
package backup
