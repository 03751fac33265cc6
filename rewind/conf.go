package rewind

import (
	"fmt"
	"path/filepath"
	"sort"
	"strings"

	"github.com/walship/walship/pgdata"
)

// ConfSet is the target's own configuration, as files to keep across
// pg_rewind (which copies the source's over them).
type ConfSet struct {
	Files []string // configuration files (existing or not: include_if_exists)
	Dirs  []string // include_dir directories
}

// FindConf lists the configuration files the server of dataDir reads that
// pg_rewind could overwrite: the main file, its includes (include,
// include_if_exists, include_dir, recursively), hba_file and ident_file,
// and postgresql.auto.conf (and recovery.conf, read before 12) — those that
// lie inside dataDir, plus the files that symbolic links there point to.
// mainConf is the main file; "" means dataDir/postgresql.conf. A
// configuration the server would refuse to start with is an error.
func FindConf(dataDir, mainConf string) (ConfSet, error) {
	if mainConf == "" {
		mainConf = filepath.Join(dataDir, "postgresql.conf")
	}
	conf, err := pgdata.ReadConf(dataDir, mainConf)
	if err != nil {
		return ConfSet{}, fmt.Errorf("reading the target's configuration: %w", err)
	}
	seen := map[string]bool{}
	for _, p := range append(conf.Files, conf.HBAFile(), conf.IdentFile(),
		filepath.Join(dataDir, pgdata.AutoConfFile), filepath.Join(dataDir, pgdata.RecoveryConfFile)) {
		seen[filepath.Clean(p)] = true
	}
	var set ConfSet
	for p := range seen {
		if inside(dataDir, p) {
			set.Files = append(set.Files, p)
			if target, err := filepath.EvalSymlinks(p); err == nil && target != p && !seen[target] {
				set.Files = append(set.Files, target) // pg_rewind writes through the link
			}
		}
	}
	for _, d := range conf.Dirs {
		if inside(dataDir, d) {
			set.Dirs = append(set.Dirs, d)
		}
	}
	sort.Strings(set.Files)
	sort.Strings(set.Dirs)
	return set, nil
}

func inside(dir, p string) bool {
	rel, err := filepath.Rel(filepath.Clean(dir), filepath.Clean(p))
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../") && rel != "."
}
