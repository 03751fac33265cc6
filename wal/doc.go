// Package wal is walship's model of PostgreSQL's write-ahead log: the names
// of the files PostgreSQL archives (segments, timeline history files, backup
// history files, partial segments), log sequence numbers, timeline history
// and backup history contents, and the long page header that starts every
// segment.
//
// It imports nothing of walship's own and does no I/O beyond what a caller
// hands it.
package wal
