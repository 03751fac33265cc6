package spool

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"time"

	"github.com/walship/walship/internal/atomicfile"
)

// IdentityTTL is how long a cached identity file is trusted before it is
// read from the store again: it bounds how long a repository replaced at
// the same location could go unnoticed by a caller that uses the cache
// (and answered for from the records of the one before). Against one read
// per call, one read in 10 s is as good as none at any rate that needs the
// cache.
const IdentityTTL = 10 * time.Second

// IdentityCache keeps a repository's identity file (walship.json) in the
// spool for IdentityTTL, so that calls in quick succession need not read it
// from the store each time (repo.IdentityCache).
type IdentityCache struct {
	path string
	ttl  time.Duration
}

// NewIdentityCache is the cache of the identity of the repository at
// location, in the spool at root.
func NewIdentityCache(root, location string) *IdentityCache {
	sum := sha256.Sum256([]byte(location))
	return &IdentityCache{path: filepath.Join(root, "identity-"+hex.EncodeToString(sum[:8])+".json"), ttl: IdentityTTL}
}

// Load returns the cached identity file when it was stored less than the
// TTL ago.
func (c *IdentityCache) Load() ([]byte, bool) {
	fi, err := os.Stat(c.path)
	if err != nil || time.Since(fi.ModTime()) >= c.ttl || time.Since(fi.ModTime()) < -time.Minute {
		return nil, false
	}
	data, err := os.ReadFile(c.path)
	return data, err == nil
}

// Store keeps data, just read from (or written to) the store.
func (c *IdentityCache) Store(data []byte) {
	if os.MkdirAll(filepath.Dir(c.path), 0o700) == nil {
		atomicfile.WriteFile(c.path, data, atomicfile.Options{})
	}
}
