package test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/walship/walship/internal/testenv/pgtest"
)

// confBlock is one indented block of README.md that holds postgresql.conf
// lines, and the heading it is under.
type confBlock struct {
	section string
	lines   []string
}

// confKeyRE is a postgresql.conf setting line: a lower-case name, "=".
var confKeyRE = regexp.MustCompile(`^([a-z_]+) *= *(.*)$`)

// serverSettings tell a postgresql.conf block from a TOML one (repo = ...).
var serverSettings = regexp.MustCompile(`^(archive_mode|archive_command|restore_command|archive_cleanup_command|wal_log_hints|recovery_[a-z_]+|hot_standby)$`)

// readmeConfBlocks returns the blocks of README.md made of postgresql.conf
// settings (each non-comment line a setting, one of them the server's).
func readmeConfBlocks(t *testing.T) []confBlock {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(moduleDir(t), "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	var out []confBlock
	var section string
	var block []string
	flush := func() {
		isConf, server := len(block) > 0, false
		for _, l := range block {
			if strings.HasPrefix(l, "#") {
				continue
			}
			m := confKeyRE.FindStringSubmatch(l)
			if m == nil {
				isConf = false
				break
			}
			server = server || serverSettings.MatchString(m[1])
		}
		if isConf && server {
			out = append(out, confBlock{section, block})
		}
		block = nil
	}
	for _, l := range strings.Split(string(data), "\n") {
		switch {
		case strings.HasPrefix(l, "#"):
			flush()
			section = strings.TrimLeft(l, "# ")
		case strings.HasPrefix(l, "    "):
			block = append(block, strings.TrimSpace(l))
		case strings.TrimSpace(l) == "" && len(block) > 0:
			// a blank line inside a code block ends this group of lines
			flush()
		default:
			flush()
		}
	}
	flush()
	return out
}

func moduleDir(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Dir(strings.TrimSpace(string(out)))
}

// commandRE is the value of an archive_command, restore_command or
// archive_cleanup_command line.
var commandRE = regexp.MustCompile(`^'(\S+) (.*?) ?(%p %f|%f %p|%r)'$`)

// TestReadmeConfLines: every postgresql.conf line of README.md works when
// pasted, as far as it can without the machine it is meant for. Each block
// goes into a real server's postgresql.conf, which must parse it
// (postgres -C: no unknown setting, no quoting mistake). Each command
// names a walship program by its absolute installed path
// (/usr/local/bin), with the arguments PostgreSQL passes in the order the
// program takes them, and flags the program accepts. The paths of the
// machine (/usr/local/bin, /var/lib/walship, /etc/walship/walship.toml)
// are this test's.
func TestReadmeConfLines(t *testing.T) {
	pgtest.Require(t)
	blocks := readmeConfBlocks(t)
	if len(blocks) < 6 {
		t.Fatalf("found %d postgresql.conf blocks in README.md, want the 6 or more it has", len(blocks))
	}
	base := pgtest.Dir(t)
	conf := confFile(t, base, "repo = '"+filepath.Join(base, "repo")+"'\n")
	local := map[string]string{
		"/usr/local/bin/":                     pgtest.Walship(t) + "/",
		"/var/lib/walship-spool":              filepath.Join(base, "spool"),
		"/var/lib/walship":                    filepath.Join(base, "repo"),
		"/etc/walship/walship.toml":           conf,
		"/var/lib/postgresql/promote.trigger": filepath.Join(base, "promote.trigger"),
	}
	localize := func(s string) string {
		for _, from := range []string{"/usr/local/bin/", "/var/lib/walship-spool", "/var/lib/walship", "/etc/walship/walship.toml", "/var/lib/postgresql/promote.trigger"} {
			s = strings.ReplaceAll(s, from, local[from])
		}
		return s
	}
	c := pgtest.NewCluster(t, base, "pasted", pgtest.InitOptions{})
	confPath := filepath.Join(c.Data, "postgresql.conf")
	orig, err := os.ReadFile(confPath)
	if err != nil {
		t.Fatal(err)
	}
	argsOf := map[string]string{"archive_command": "%p %f", "restore_command": "%f %p", "archive_cleanup_command": "%r"}
	progOf := map[string]string{"archive_command": "walship-archive", "restore_command": "walship-restore", "archive_cleanup_command": "walship-prune"}
	for _, b := range blocks {
		what := "README section " + b.section
		var pasted []string
		for _, l := range b.lines {
			pasted = append(pasted, localize(l))
			m := confKeyRE.FindStringSubmatch(l)
			if m == nil || argsOf[m[1]] == "" {
				continue
			}
			cm := commandRE.FindStringSubmatch(m[2])
			if cm == nil {
				t.Errorf("%s: %s is not 'PROGRAM FLAGS %s'", what, l, argsOf[m[1]])
				continue
			}
			if want := "/usr/local/bin/" + progOf[m[1]]; cm[1] != want {
				t.Errorf("%s: %s runs %s, want %s (an absolute path, as installed)", what, m[1], cm[1], want)
			}
			if cm[3] != argsOf[m[1]] {
				t.Errorf("%s: %s passes %s, want %s", what, m[1], cm[3], argsOf[m[1]])
			}
			// The flags parse: -V answers only after they did.
			flags := strings.Fields(localize(cm[2]))
			if r := walship(t, runOpts{}, progOf[m[1]], append(flags, "-V")...); r.code != 0 {
				t.Errorf("%s: %s: the flags %q are refused: %s", what, m[1], flags, r)
			}
		}
		if err := os.WriteFile(confPath, append(append([]byte{}, orig...), []byte(strings.Join(pasted, "\n")+"\n")...), 0o600); err != nil {
			t.Fatal(err)
		}
		for _, l := range pasted {
			name := confKeyRE.FindStringSubmatch(l)
			if name == nil {
				continue
			}
			out, err := pgtest.RunErr(t, c.Server.Tool("postgres"), "-D", c.Data, "-C", name[1])
			if err != nil {
				t.Errorf("%s: the server does not take these lines:\n%s\n%v: %s", what, strings.Join(b.lines, "\n"), err, out)
				break
			}
		}
	}
}
