// Package pgdata reads what walship needs from a PostgreSQL data directory,
// by the server's own rules, in one place:
//
//   - the configuration: postgresql.conf syntax as the server's lexer reads
//     it (guc-file.l), with include, include_if_exists and include_dir,
//     postgresql.auto.conf, the command line recorded in postmaster.opts,
//     and recovery.conf for servers before 12; and the writer side, which
//     quotes values and replaces settings in such a file;
//   - the signal files (standby.signal, recovery.signal, promote) and
//     whether the server runs as a standby;
//   - postmaster.pid: the server's process, whether it still lives, and
//     where it listens;
//   - pg_control (the system identifier, pg_controldata's report) and
//     PG_VERSION.
//
// It imports nothing of walship's own but wal, for log sequence numbers.
package pgdata
