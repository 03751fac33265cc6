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

// docFiles are the documents whose blocks are tested as pasted: README.md
// and every page under docs/, relative to the module's root.
func docFiles(t *testing.T) []string {
	t.Helper()
	pages, err := filepath.Glob(filepath.Join(moduleDir(t), "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	files := []string{"README.md"}
	for _, p := range pages {
		files = append(files, filepath.Join("docs", filepath.Base(p)))
	}
	if len(files) < 12 {
		t.Fatalf("found %v, want README.md and the pages of docs/", files)
	}
	return files
}

// docBlock is one group of code lines of a document: the lines of an
// indented block (four spaces) or of a fenced one (```), up to a blank
// line, and the heading they are under.
type docBlock struct {
	file, section string
	lines         []string
}

// docBlocks returns the code blocks of every document, in order.
func docBlocks(t *testing.T) []docBlock {
	t.Helper()
	var out []docBlock
	for _, f := range docFiles(t) {
		data, err := os.ReadFile(filepath.Join(moduleDir(t), f))
		if err != nil {
			t.Fatal(err)
		}
		var section string
		var block []string
		fenced := false
		flush := func() {
			if len(block) > 0 {
				out = append(out, docBlock{f, section, block})
			}
			block = nil
		}
		for _, l := range strings.Split(string(data), "\n") {
			switch {
			case strings.HasPrefix(strings.TrimSpace(l), "```"):
				flush()
				fenced = !fenced
			case fenced && strings.TrimSpace(l) != "":
				block = append(block, strings.TrimSpace(l))
			case fenced:
				flush()
			case strings.HasPrefix(l, "#"):
				flush()
				section = strings.TrimLeft(l, "# ")
			case strings.HasPrefix(l, "    "):
				block = append(block, strings.TrimSpace(l))
			default:
				// a blank line ends this group of lines, as does text
				flush()
			}
		}
		flush()
	}
	return out
}

// confBlock is one block of a document that holds postgresql.conf lines.
type confBlock struct {
	file, section string
	lines         []string
}

// confKeyRE is a postgresql.conf setting line: a lower-case name, "=".
var confKeyRE = regexp.MustCompile(`^([a-z_]+) *= *(.*)$`)

// serverSettings tell a postgresql.conf block from a TOML one (repo = ...).
var serverSettings = regexp.MustCompile(`^(archive_mode|archive_command|archive_timeout|restore_command|archive_cleanup_command|wal_log_hints|recovery_[a-z_]+|hot_standby)$`)

// docConfBlocks returns the blocks of the documents made of postgresql.conf
// settings (each non-comment line a setting, one of them the server's).
func docConfBlocks(t *testing.T) []confBlock {
	t.Helper()
	var out []confBlock
	for _, b := range docBlocks(t) {
		isConf, server := true, false
		for _, l := range b.lines {
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
			out = append(out, confBlock{b.file, b.section, b.lines})
		}
	}
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

// minConfBlocks is how many postgresql.conf blocks each document has at
// least: a parser that stops finding them fails the test.
var minConfBlocks = map[string]int{
	"README.md": 1, "docs/archiving.md": 1, "docs/restore.md": 2, "docs/configuration.md": 1,
	"docs/encryption.md": 2, "docs/s3.md": 1, "docs/throughput.md": 1, "docs/retention.md": 1,
}

// TestReadmeConfLines: every postgresql.conf line of README.md and of the
// pages of docs/ works when pasted, as far as it can without the machine
// it is meant for. Each block goes into a real server's postgresql.conf,
// which must parse it (postgres -C: no unknown setting, no quoting
// mistake). Each command names a walship program by its absolute path as
// the package installs it (/usr/bin), with the arguments PostgreSQL passes
// in the order the program takes them, and flags the program accepts. The
// paths of the machine (/usr/bin, /var/lib/walship,
// /etc/walship/walship.toml) are this test's.
func TestReadmeConfLines(t *testing.T) {
	pgtest.Require(t)
	blocks := docConfBlocks(t)
	count := map[string]int{}
	for _, b := range blocks {
		count[b.file]++
	}
	for file, n := range minConfBlocks {
		if count[file] < n {
			t.Errorf("found %d postgresql.conf blocks in %s, want the %d or more it has", count[file], file, n)
		}
	}
	base := pgtest.Dir(t)
	conf := confFile(t, base, "repo = '"+filepath.Join(base, "repo")+"'\n")
	localize := docLocalizer(pgtest.Walship(t), base, conf)
	c := pgtest.NewCluster(t, base, "pasted", pgtest.InitOptions{})
	confPath := filepath.Join(c.Data, "postgresql.conf")
	orig, err := os.ReadFile(confPath)
	if err != nil {
		t.Fatal(err)
	}
	argsOf := map[string]string{"archive_command": "%p %f", "restore_command": "%f %p", "archive_cleanup_command": "%r"}
	progOf := map[string]string{"archive_command": "walship-archive", "restore_command": "walship-restore", "archive_cleanup_command": "walship-prune"}
	for _, b := range blocks {
		what := b.file + " section " + b.section
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
			if want := "/usr/bin/" + progOf[m[1]]; cm[1] != want {
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

// docLocalizer returns what turns a pasted line into one for this test's
// machine: the programs in bin, the repository, spool and trigger file
// under base, the config file conf.
func docLocalizer(bin, base, conf string) func(string) string {
	r := strings.NewReplacer(
		"/usr/bin/walship", bin+"/walship",
		"/var/lib/walship-spool", filepath.Join(base, "spool"),
		"/var/lib/walship", filepath.Join(base, "repo"),
		"/etc/walship/walship.toml", conf,
		"/var/lib/postgresql/promote.trigger", filepath.Join(base, "promote.trigger"),
	)
	return r.Replace
}
