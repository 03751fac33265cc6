package spool

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
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
	root, name string
	ttl        time.Duration
}

// NewIdentityCache is the cache of the identity of the repository at
// location (storage.CacheKey: with an S3 store's endpoint), in the spool
// at root.
func NewIdentityCache(root, location string) *IdentityCache {
	sum := sha256.Sum256([]byte(location))
	return &IdentityCache{root: root, name: "identity-" + hex.EncodeToString(sum[:8]) + ".json", ttl: IdentityTTL}
}

// dir is the trusted spool directory the cache is in, made if need be.
func (c *IdentityCache) dir() (string, error) { return trustRoot(c.root) }

// Load returns the cached identity file when it was stored less than the
// TTL ago, in a spool no other user can write into.
func (c *IdentityCache) Load() ([]byte, bool) {
	dir, err := c.dir()
	if err != nil {
		return nil, false
	}
	f, err := openFile(filepath.Join(dir, c.name), os.O_RDONLY)
	if err != nil {
		return nil, false
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || time.Since(fi.ModTime()) >= c.ttl || time.Since(fi.ModTime()) < -time.Minute {
		return nil, false
	}
	data, err := io.ReadAll(io.LimitReader(f, 1<<16))
	return data, err == nil
}

// Store keeps data, just read from (or written to) the store.
func (c *IdentityCache) Store(data []byte) {
	if dir, err := c.dir(); err == nil {
		atomicfile.WriteFile(filepath.Join(dir, c.name), data, atomicfile.Options{})
	}
}
