// Package pgserver is the running PostgreSQL server and its installation,
// as walship talks to them, in one place:
//
//   - connecting: one way for SQL (Connect, ConnectLocal for a server
//     walship started) and one for replication (ConnectReplication,
//     IDENTIFY_SYSTEM), with bounded timeouts and passwords hidden in every
//     message (Redact);
//   - what the server says of itself: identity, version, role, position
//     in the WAL, settings, tablespaces (ReadInfo, ReadPosition, Settings);
//   - its programs of the right major version (FindProgram), run with an
//     environment of walship's choosing and passwords kept out of their
//     argument lists (Env, ForChild);
//   - its configuration as walship writes it: the recovery and standby
//     settings for every version (Recovery: postgresql.auto.conf and the
//     signal files from 12 on, recovery.conf before), restore_command
//     lines, and what an archive_command line says (ParseArchiveCommand);
//   - starting it with pg_ctl and waiting until it is where it should be
//     (Start, WaitFor).
//
// It knows nothing of repositories: the feature packages bring the two
// together.
package pgserver
