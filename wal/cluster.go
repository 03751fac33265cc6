package wal

import (
	"errors"
	"fmt"
)

// Cluster is what tells one database cluster's WAL apart from another's:
// the system identifier initdb chose and the WAL segment size. A segment's
// long page header, a data directory's pg_control, a running server and a
// repository's identity file each say which cluster they are of; Check is
// the one comparison of two of them.
type Cluster struct {
	SystemID uint64
	SegSize  uint32
}

// ErrOtherCluster is matched by every error about WAL, a server, a data
// directory or a backup of another cluster than expected.
var ErrOtherCluster = errors.New("another cluster")

// Check compares other (what it is, in words: "the server", "WAL") with c
// (whose, in words: "the repository /var/lib/walship"); a difference is an
// error matching ErrOtherCluster that names both.
func (c Cluster) Check(what string, other Cluster, whose string) error {
	if other.SystemID != c.SystemID {
		return fmt.Errorf("%w: %s is of database system %d, %s of %d", ErrOtherCluster, what, other.SystemID, whose, c.SystemID)
	}
	if other.SegSize != c.SegSize {
		return fmt.Errorf("%w: %s has WAL segments of %s, %s of %s", ErrOtherCluster, what, FormatSize(other.SegSize), whose, FormatSize(c.SegSize))
	}
	return nil
}
