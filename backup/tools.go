package backup

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/walship/walship/pgdata"
	"github.com/walship/walship/rewind"
)

// findProgram finds the PostgreSQL program prog of major version want: in
// dir when given, else on PATH, else where Debian (/usr/lib/postgresql/N/bin)
// and the PGDG RPMs (/usr/pgsql-N/bin) install it.
func findProgram(ctx context.Context, dir, prog string, want pgdata.Version) (string, error) {
	var candidates []string
	if dir != "" {
		candidates = []string{dir}
	} else {
		if p, err := exec.LookPath(prog); err == nil {
			if real, err := filepath.EvalSymlinks(p); err == nil {
				p = real
			}
			candidates = append(candidates, filepath.Dir(p))
		}
		candidates = append(candidates, "/usr/lib/postgresql/"+want.Text+"/bin", "/usr/pgsql-"+want.Text+"/bin")
	}
	var found []string
	for _, d := range candidates {
		bin := filepath.Join(d, prog)
		if _, err := os.Stat(bin); err != nil {
			continue
		}
		v, err := rewind.ToolVersion(ctx, bin)
		if err != nil {
			found = append(found, fmt.Sprintf("%s (%v)", bin, err))
			continue
		}
		if v.Text != want.Text {
			found = append(found, fmt.Sprintf("%s is version %s", bin, v))
			continue
		}
		return bin, nil
	}
	if len(found) > 0 {
		return "", fmt.Errorf("%w: no %s of PostgreSQL %s: %s", ErrVersion, prog, want, strings.Join(found, "; "))
	}
	return "", fmt.Errorf("no %s found (looked in %s)", prog, strings.Join(candidates, ", "))
}

// childEnv is the environment of the PostgreSQL programs walship runs:
// its own, without walship's settings, in the C locale (their messages
// are parsed).
func childEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "WALSHIP_") || k == "LC_ALL" || k == "LC_MESSAGES" || k == "LANG" || k == "LANGUAGE" {
			continue
		}
		env = append(env, kv)
	}
	return append(env, "LC_ALL=C")
}
