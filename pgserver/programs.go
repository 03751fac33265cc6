package pgserver

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/walship/walship/pgdata"
)

// ErrVersion is matched by errors about a server or a program of a
// PostgreSQL version that cannot do what is asked, or no program of the
// version needed.
var ErrVersion = errors.New("unsupported PostgreSQL version")

// FindProgram finds the PostgreSQL program prog of major version want: in
// dir when given, else on PATH, else where Debian (/usr/lib/postgresql/N/bin)
// and the PGDG RPMs (/usr/pgsql-N/bin) install it. Each of siblings must be
// in the same directory (pg_rewind needs the postgres of its installation).
func FindProgram(ctx context.Context, dir, prog string, want pgdata.Version, siblings ...string) (string, error) {
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
		v, err := ProgramVersion(ctx, bin)
		if err != nil {
			found = append(found, fmt.Sprintf("%s (%v)", bin, err))
			continue
		}
		if v.Text != want.Text {
			found = append(found, fmt.Sprintf("%s is version %s", bin, v))
			continue
		}
		for _, s := range siblings {
			if _, err := os.Stat(filepath.Join(d, s)); err != nil {
				return "", fmt.Errorf("%s is missing next to %s", s, bin)
			}
		}
		return bin, nil
	}
	if len(found) > 0 {
		return "", fmt.Errorf("%w: no %s of PostgreSQL %s: %s", ErrVersion, prog, want, strings.Join(found, "; "))
	}
	return "", fmt.Errorf("no %s found (looked in %s)", prog, strings.Join(candidates, ", "))
}

// ProgramVersion runs "prog --version" of a PostgreSQL program and returns
// its major version.
func ProgramVersion(ctx context.Context, bin string) (pgdata.Version, error) {
	out, err := Output(ctx, bin, "--version")
	if err != nil {
		return pgdata.Version{}, err
	}
	// "pg_rewind (PostgreSQL) 15.13 (Debian 15.13-0+deb12u1)"
	f := strings.Fields(out)
	for i, w := range f {
		if w == "(PostgreSQL)" && i+1 < len(f) {
			major, rest := leadingDigits(f[i+1])
			if m, err := strconv.Atoi(major); err == nil && m < 10 && strings.HasPrefix(rest, ".") {
				minor, _ := leadingDigits(rest[1:])
				return pgdata.ParseVersion(major + "." + minor)
			}
			return pgdata.ParseVersion(major)
		}
	}
	return pgdata.Version{}, fmt.Errorf("cannot read the version in %q", strings.TrimSpace(out))
}

func leadingDigits(s string) (digits, rest string) {
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	return s[:i], s[i:]
}

// Env is the environment of the PostgreSQL programs walship runs: its own,
// without walship's settings (WALSHIP_*), so that a walship-restore they
// run does exactly what its command line says (a WALSHIP_STANDBY=true left
// there would make pg_rewind's restore_command wait forever); with
// cLocale, in the C locale, for programs whose messages walship reads.
// password, when not "", is passed as PGPASSWORD (see ForChild).
func Env(cLocale bool, password string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "WALSHIP_") || (cLocale && (k == "LC_ALL" || k == "LC_MESSAGES" || k == "LANG" || k == "LANGUAGE")) {
			continue
		}
		if password != "" && k == "PGPASSWORD" {
			continue
		}
		env = append(env, kv)
	}
	if cLocale {
		env = append(env, "LC_ALL=C")
	}
	if password != "" {
		env = append(env, "PGPASSWORD="+password)
	}
	return env
}

// Output runs a PostgreSQL program in the C locale and returns its
// combined output; a failure names the program and its first line.
func Output(ctx context.Context, bin string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = Env(true, "")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %w: %s", bin, strings.Join(args, " "), err, FirstLine(string(out)))
	}
	return string(out), nil
}

// FirstLine is the first line of s, trimmed.
func FirstLine(s string) string {
	l, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	return l
}
