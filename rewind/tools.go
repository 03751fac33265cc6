package rewind

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/walship/walship/pgdata"
)

// tools is the directory of one PostgreSQL installation's programs.
type tools struct {
	dir    string
	rewind pgdata.Version // pg_rewind's version
}

func (t tools) path(prog string) string { return filepath.Join(t.dir, prog) }

func execCommand(ctx context.Context, bin string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, bin, args...)
}

// findTools finds pg_rewind of the target's major version: in dir when
// given, else on PATH, else where Debian (/usr/lib/postgresql/N/bin) and
// the PGDG RPMs (/usr/pgsql-N/bin) install it. pg_controldata, pg_ctl and
// postgres are taken from the same directory.
func findTools(ctx context.Context, dir string, want pgdata.Version) (tools, error) {
	var candidates []string
	if dir != "" {
		candidates = []string{dir}
	} else {
		if p, err := exec.LookPath("pg_rewind"); err == nil {
			if real, err := filepath.EvalSymlinks(p); err == nil {
				p = real
			}
			candidates = append(candidates, filepath.Dir(p))
		}
		candidates = append(candidates, "/usr/lib/postgresql/"+want.Text+"/bin", "/usr/pgsql-"+want.Text+"/bin")
	}
	var found []string
	for _, d := range candidates {
		bin := filepath.Join(d, "pg_rewind")
		if _, err := os.Stat(bin); err != nil {
			continue
		}
		v, err := ToolVersion(ctx, bin)
		if err != nil {
			found = append(found, fmt.Sprintf("%s (%v)", bin, err))
			continue
		}
		if v.Text != want.Text {
			found = append(found, fmt.Sprintf("%s is version %s", bin, v))
			continue
		}
		for _, prog := range []string{"pg_controldata", "pg_ctl", "postgres"} {
			if _, err := os.Stat(filepath.Join(d, prog)); err != nil {
				return tools{}, fmt.Errorf("%s is missing next to %s", prog, bin)
			}
		}
		return tools{dir: d, rewind: v}, nil
	}
	if len(found) > 0 {
		return tools{}, fmt.Errorf("%w: no pg_rewind for PostgreSQL %s (the target's version): %v", ErrVersion, want, found)
	}
	return tools{}, fmt.Errorf("no pg_rewind found (looked in %v)", candidates)
}
