package pgdata

import (
	"bytes"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"slices"
	"strings"
	"sync"

	"github.com/walship/walship/wal"
)

// ManifestFile is the name of the backup manifest pg_basebackup writes
// (PostgreSQL 13 and later).
const ManifestFile = "backup_manifest"

// ErrManifest is matched by errors about a backup that does not agree with
// its manifest, or a manifest that is damaged.
var ErrManifest = errors.New("backup does not match its manifest")

// Manifest is a parsed backup manifest: every file of the base backup with
// its size and checksum, and the WAL the backup needs.
type Manifest struct {
	Version   int
	SystemID  uint64 // version 2 (PostgreSQL 17) and later; else 0
	Files     []ManifestEntry
	WALRanges []WALRange
	// Checksum is the SHA-256 of the manifest itself, checked by
	// ParseManifest.
	Checksum string
}

// ManifestEntry is one file of a base backup, its path relative to the data
// directory (a tablespace's files under pg_tblspc/<oid>/).
type ManifestEntry struct {
	Path      string
	Size      int64
	Algorithm string // CRC32C, SHA224, SHA256, SHA384, SHA512 or NONE
	Checksum  string // hex
}

// WALRange is WAL from Start to End on one timeline that a backup needs to
// become consistent.
type WALRange struct {
	Timeline   uint32
	Start, End wal.LSN
}

type rawManifest struct {
	Version  int    `json:"PostgreSQL-Backup-Manifest-Version"`
	SystemID uint64 `json:"System-Identifier"`
	Files    []struct {
		Path        string `json:"Path"`
		EncodedPath string `json:"Encoded-Path"`
		Size        int64  `json:"Size"`
		Algorithm   string `json:"Checksum-Algorithm"`
		Checksum    string `json:"Checksum"`
	} `json:"Files"`
	WALRanges []struct {
		Timeline uint32  `json:"Timeline"`
		Start    wal.LSN `json:"Start-LSN"`
		End      wal.LSN `json:"End-LSN"`
	} `json:"WAL-Ranges"`
	Checksum string `json:"Manifest-Checksum"`
}

// ParseManifest parses a backup manifest and checks its own checksum: the
// SHA-256 of everything up to the line that holds it.
func ParseManifest(data []byte) (*Manifest, error) {
	var raw rawManifest
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("%w: %s is not valid: %v", ErrManifest, ManifestFile, err)
	}
	if raw.Version < 1 || raw.Version > 2 {
		return nil, fmt.Errorf("%w: %s of version %d, which walship does not know", ErrManifest, ManifestFile, raw.Version)
	}
	// The checksum covers the manifest up to and including the newline
	// before its last line (the "Manifest-Checksum" line).
	body := bytes.TrimSuffix(data, []byte("\n"))
	i := bytes.LastIndexByte(body, '\n')
	if i < 0 || !bytes.HasPrefix(body[i+1:], []byte(`"Manifest-Checksum"`)) {
		return nil, fmt.Errorf("%w: %s has no Manifest-Checksum line", ErrManifest, ManifestFile)
	}
	sum := sha256.Sum256(body[:i+1])
	if got := hex.EncodeToString(sum[:]); !strings.EqualFold(got, raw.Checksum) {
		return nil, fmt.Errorf("%w: %s is damaged: its content has SHA-256 %s, its Manifest-Checksum says %s", ErrManifest, ManifestFile, got, raw.Checksum)
	}
	m := &Manifest{Version: raw.Version, SystemID: raw.SystemID, Checksum: strings.ToLower(raw.Checksum)}
	for _, f := range raw.Files {
		p := f.Path
		if f.EncodedPath != "" {
			b, err := hex.DecodeString(f.EncodedPath)
			if err != nil {
				return nil, fmt.Errorf("%w: %s: bad Encoded-Path %q", ErrManifest, ManifestFile, f.EncodedPath)
			}
			p = string(b)
		}
		if p == "" {
			return nil, fmt.Errorf("%w: %s lists a file without a path", ErrManifest, ManifestFile)
		}
		m.Files = append(m.Files, ManifestEntry{Path: p, Size: f.Size, Algorithm: strings.ToUpper(f.Algorithm), Checksum: strings.ToLower(f.Checksum)})
	}
	for _, r := range raw.WALRanges {
		m.WALRanges = append(m.WALRanges, WALRange{Timeline: r.Timeline, Start: r.Start, End: r.End})
	}
	if len(m.WALRanges) == 0 {
		return nil, fmt.Errorf("%w: %s names no WAL range", ErrManifest, ManifestFile)
	}
	return m, nil
}

// Start is where the backup starts: the first WAL range's start and
// timeline. End is where it becomes consistent: the last range's end,
// on the last range's timeline (a standby may switch timelines during a
// backup).
func (m *Manifest) Start() (wal.LSN, uint32) { return m.WALRanges[0].Start, m.WALRanges[0].Timeline }

// End is the backup's stop LSN and timeline.
func (m *Manifest) End() (wal.LSN, uint32) {
	r := m.WALRanges[len(m.WALRanges)-1]
	return r.End, r.Timeline
}

// Algorithm is the checksum algorithm of the manifest's files (that of the
// first file that has one), or "NONE".
func (m *Manifest) Algorithm() string {
	for _, f := range m.Files {
		if f.Algorithm != "" && f.Algorithm != "NONE" {
			return f.Algorithm
		}
	}
	return "NONE"
}

// Size is the bytes of all the files the manifest lists.
func (m *Manifest) Size() int64 {
	var n int64
	for _, f := range m.Files {
		n += f.Size
	}
	return n
}

// newFileHash is the hash of a file's checksum algorithm; nil for NONE.
func newFileHash(algorithm string) (hash.Hash, error) {
	switch algorithm {
	case "", "NONE":
		return nil, nil
	case "CRC32C":
		return &crc32cLE{crc32.New(crc32.MakeTable(crc32.Castagnoli))}, nil
	case "SHA224":
		return sha256.New224(), nil
	case "SHA256":
		return sha256.New(), nil
	case "SHA384":
		return sha512.New384(), nil
	case "SHA512":
		return sha512.New(), nil
	}
	return nil, fmt.Errorf("%w: unknown checksum algorithm %q", ErrManifest, algorithm)
}

// crc32cLE is CRC-32C whose sum is the CRC's bytes in little-endian order,
// as PostgreSQL writes it in a manifest (its in-memory order on x86).
type crc32cLE struct{ hash.Hash32 }

func (c *crc32cLE) Sum(b []byte) []byte { return binary.LittleEndian.AppendUint32(b, c.Sum32()) }

// ManifestCheck checks the files of a backup against its manifest as they
// stream by (out of a tar, say): each file's size and checksum, and at the
// end that none is missing.
// It may be used by several goroutines at once (the tars of one backup
// read side by side).
type ManifestCheck struct {
	mu     sync.Mutex
	byPath map[string]*ManifestEntry
	seen   map[string]bool
}

// Check starts checking files against the manifest.
func (m *Manifest) Check() *ManifestCheck {
	c := &ManifestCheck{byPath: map[string]*ManifestEntry{}, seen: map[string]bool{}}
	for i := range m.Files {
		c.byPath[m.Files[i].Path] = &m.Files[i]
	}
	return c
}

// FileSum checks one file. Call Write with its content, then Close.
type FileSum struct {
	c    *ManifestCheck
	e    *ManifestEntry
	path string
	h    hash.Hash
	n    int64
}

// notInManifest are the files a base backup may hold that its manifest
// does not list (pg_verifybackup's list).
var notInManifest = []string{ManifestFile, "pg_wal", "postgresql.auto.conf", "recovery.signal", "standby.signal"}

// File starts the check of the file at path (relative to the data
// directory). A file the manifest does not list is an error.
func (c *ManifestCheck) File(path string) (*FileSum, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.byPath[path]
	if e == nil {
		top, _, _ := strings.Cut(path, "/")
		if slices.Contains(notInManifest, top) {
			return &FileSum{c: c, path: path}, nil
		}
		return nil, fmt.Errorf("%w: %s is in the backup but not in its manifest", ErrManifest, path)
	}
	if c.seen[path] {
		return nil, fmt.Errorf("%w: %s is in the backup twice", ErrManifest, path)
	}
	h, err := newFileHash(e.Algorithm)
	if err != nil {
		return nil, err
	}
	return &FileSum{c: c, e: e, path: path, h: h}, nil
}

// Write adds content of the file.
func (f *FileSum) Write(p []byte) (int, error) {
	if f.h != nil {
		f.h.Write(p)
	}
	f.n += int64(len(p))
	return len(p), nil
}

// Close checks the file's size and checksum.
func (f *FileSum) Close() error {
	if f.e == nil {
		return nil
	}
	f.c.mu.Lock()
	f.c.seen[f.path] = true
	f.c.mu.Unlock()
	if f.n != f.e.Size {
		return fmt.Errorf("%w: %s has %d bytes, its manifest says %d", ErrManifest, f.path, f.n, f.e.Size)
	}
	if f.h != nil {
		if got := hex.EncodeToString(f.h.Sum(nil)); got != f.e.Checksum {
			return fmt.Errorf("%w: %s has %s checksum %s, its manifest says %s", ErrManifest, f.path, f.e.Algorithm, got, f.e.Checksum)
		}
	}
	return nil
}

// Missing lists the files of the manifest that were not checked, sorted.
func (c *ManifestCheck) Missing() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for p := range c.byPath {
		if !c.seen[p] {
			out = append(out, p)
		}
	}
	slices.Sort(out)
	return out
}

// Done reports a manifest file that was never seen as an error.
func (c *ManifestCheck) Done() error {
	if miss := c.Missing(); len(miss) > 0 {
		more := ""
		if len(miss) > 3 {
			more = fmt.Sprintf(" and %d more", len(miss)-3)
			miss = miss[:3]
		}
		return fmt.Errorf("%w: %s missing from the backup%s", ErrManifest, strings.Join(miss, ", "), more)
	}
	return nil
}
