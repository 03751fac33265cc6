package pgdata

import (
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Ready is the backlog of WAL files the server has marked ready for
// archiving and not archived yet: pg_wal/archive_status/NAME.ready.
type Ready struct {
	Count      int
	Oldest     string    // the name that sorts first (archived first)
	OldestTime time.Time // the earliest modification time: when it became ready
}

// ReadyFiles counts the .ready files in dataDir's pg_wal/archive_status.
func ReadyFiles(dataDir string) (Ready, error) {
	dir := filepath.Join(dataDir, "pg_wal", "archive_status")
	entries, err := os.ReadDir(dir)
	if err != nil {
		return Ready{}, err
	}
	var r Ready
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), ".ready")
		if !ok {
			continue
		}
		info, err := e.Info()
		if err != nil {
			continue // archived and removed meanwhile
		}
		r.Count++
		if r.Oldest == "" || name < r.Oldest {
			r.Oldest = name
		}
		if r.OldestTime.IsZero() || info.ModTime().Before(r.OldestTime) {
			r.OldestTime = info.ModTime()
		}
	}
	return r, nil
}
