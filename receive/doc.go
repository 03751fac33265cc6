// Package receive is walship receive: a WAL receiver that streams WAL from
// the primary over physical replication, through a replication slot,
// straight into a walship repository, and can be the primary's synchronous
// standby.
//
// What the server sends is kept in memory, segment by segment, and made
// durable in the repository as it grows: each run of new bytes becomes a
// piece, an object of its own (repo.Piece: create-only, so nothing is ever
// half-visible), at most every FlushInterval, or at once in synchronous
// mode. The server is told as flushed only what the pieces (or stored
// segments) hold, so a synchronous commit returns only when its WAL is in
// the repository, and the slot keeps on the server everything that is not.
// A segment that is complete is stored as walship-archive stores it
// (repo.Repo.PutFrom: the same object, "identical: done" when
// archive_command was first), then its pieces are removed. Timeline
// switches are followed, their history files stored as archive_command
// stores them. A restart resumes where the repository's data ends.
//
// It reads and writes the repository through repo, and the server through
// pgserver; it imports no other feature package.
package receive
