package prune

import (
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// ControlFile is where a data directory keeps pg_control.
const ControlFile = "global/pg_control"

// SystemIDFromDataDir reads the database system identifier from a data
// directory's pg_control: its first 8 bytes, in the server's (native) byte
// order, followed by pg_control_version, which is checked for sanity so
// that a file that is not pg_control is not taken for one.
func SystemIDFromDataDir(dataDir string) (uint64, error) {
	path := filepath.Join(dataDir, ControlFile)
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	var b [12]byte
	if _, err := io.ReadFull(f, b[:]); err != nil {
		return 0, fmt.Errorf("%s: too short for pg_control: %w", path, err)
	}
	id := binary.NativeEndian.Uint64(b[0:])
	version := binary.NativeEndian.Uint32(b[8:])
	// 9.4 writes 942; 18 writes 1800. Leave room for the future.
	if id == 0 || version < 900 || version > 9999 {
		return 0, fmt.Errorf("%s is not a pg_control file (system identifier %d, version %d)", path, id, version)
	}
	return id, nil
}
