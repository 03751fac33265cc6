package test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// docCommand is one command of a document's code block: its lines joined
// where they end in a backslash.
type docCommand struct {
	file, section, text string
}

// systemCommands are the other programs the documents' commands run; each
// must exist on a Debian machine with PostgreSQL (apt-get install
// postgresql), as CI's is. A line that starts with anything else is not a
// command (output, SQL, a config line).
var systemCommands = map[string]bool{
	"install": true, "runuser": true, "su": true, "cp": true, "rm": true, "touch": true, "mkdir": true,
	"chown": true, "chmod": true, "systemctl": true, "pg_ctlcluster": true, "psql": true, "apt-get": true,
	"make": true, "bash": true, "lz4": true,
}

// pgProgramRE is a PostgreSQL program named by its path in Debian's
// packages, whatever the major version the line names.
var pgProgramRE = regexp.MustCompile(`^/usr/lib/postgresql/[0-9]+/bin/([a-z_]+)$`)

// docCommands returns every command line of the documents' code blocks
// whose program is walship's or one of systemCommands.
func docCommands(t *testing.T) []docCommand {
	t.Helper()
	var out []docCommand
	for _, b := range docBlocks(t) {
		var joined []string
		cur := ""
		for _, l := range b.lines {
			if strings.HasPrefix(l, "[") && len(joined) > 0 && cur == "" {
				// a synopsis goes on: "    [--target-action ...] [--start]"
				joined[len(joined)-1] += " " + l
				continue
			}
			if strings.HasSuffix(l, "\\") {
				cur += strings.TrimSuffix(l, "\\") + " "
				continue
			}
			joined = append(joined, cur+l)
			cur = ""
		}
		if cur != "" {
			joined = append(joined, cur)
		}
		for _, l := range joined {
			words := shellWords(l)
			if len(words) == 0 {
				continue
			}
			first := words[0]
			if isWalship(first) || systemCommands[first] || pgProgramRE.MatchString(first) || first == "sudo" {
				out = append(out, docCommand{b.file, b.section, l})
			}
		}
	}
	return out
}

// isWalship says whether a command's first word runs a walship program:
// by its name, or its path as the package installs it.
func isWalship(word string) bool {
	name := strings.TrimPrefix(word, "/usr/bin/")
	for _, p := range programs {
		if name == p {
			return true
		}
	}
	return false
}

// shellWords splits a command line as sh does for simple commands: single
// and double quotes, backslash escapes; a "#" that starts a word starts a
// comment.
func shellWords(s string) []string {
	var words []string
	var w strings.Builder
	in, quote := false, byte(0)
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote == '\'':
			if c == '\'' {
				quote = 0
			} else {
				w.WriteByte(c)
			}
		case quote == '"':
			switch {
			case c == '"':
				quote = 0
			case c == '\\' && i+1 < len(s):
				i++
				w.WriteByte(s[i])
			default:
				w.WriteByte(c)
			}
		case c == '\'' || c == '"':
			quote, in = c, true
		case c == '\\' && i+1 < len(s):
			i++
			w.WriteByte(s[i])
			in = true
		case c == ' ' || c == '\t':
			if in {
				words = append(words, w.String())
				w.Reset()
				in = false
			}
		case c == '#' && !in:
			return words
		default:
			w.WriteByte(c)
			in = true
		}
	}
	if in {
		words = append(words, w.String())
	}
	return words
}

// unwrap returns the command a line runs as another user: runuser -u USER
// -- CMD... and su USER -c 'CMD' run CMD.
func unwrap(words []string) []string {
	switch {
	case len(words) > 4 && words[0] == "runuser" && words[1] == "-u" && words[3] == "--":
		return unwrap(words[4:])
	case len(words) == 4 && words[0] == "su" && words[2] == "-c":
		return unwrap(shellWords(words[3]))
	}
	return words
}

// helpFlags is what a command's --help lists: its flags (by every name,
// with whether it takes a value) and its commands.
type helpFlags struct {
	takesValue map[string]bool
	commands   []string
}

// readHelp parses the --help of the command path.
func readHelp(t *testing.T, path []string) (helpFlags, bool) {
	t.Helper()
	r := walship(t, runOpts{}, path[0], append(path[1:], "--help")...)
	if r.code != 0 {
		return helpFlags{}, false
	}
	h := helpFlags{takesValue: map[string]bool{}, commands: listedCommands(r.stdout)}
	for _, l := range strings.Split(r.stdout, "\n") {
		l = strings.TrimSpace(l)
		if !strings.HasPrefix(l, "-") {
			continue
		}
		left, _, _ := strings.Cut(l, "  ") // names, then the description
		left, _, _ = strings.Cut(left, " [ ")
		for _, alt := range strings.Split(left, ", ") {
			f := strings.Fields(alt)
			if len(f) > 0 {
				h.takesValue[f[0]] = len(f) > 1
			}
		}
	}
	return h, true
}

// TestDocCommands: every command line in the code blocks of README.md and
// docs/ runs as pasted, as far as that can be checked without the machine
// it is meant for. Each is valid sh (bash -n), uses no sudo (minimal
// Debian has none: runuser or su), runs a program that exists. A walship
// command names a program, its commands and flags as they are: each flag
// is one the command has, with a value where it takes one, and the whole
// command line's flags parse (the command run with --help and them). A
// synopsis line ("[--checkpoint fast|spread]") is checked for its
// program, commands and flag names.
func TestDocCommands(t *testing.T) {
	lines := docCommands(t)
	walshipLines := 0
	for _, c := range lines {
		what := c.file + " (" + c.section + "): " + c.text
		synopsis := strings.Contains(c.text, "[-") || strings.Contains(c.text, "|")
		if !synopsis {
			if out, err := exec.Command("bash", "-n", "-c", c.text).CombinedOutput(); err != nil {
				t.Errorf("%s: not valid sh: %v %s", what, err, out)
			}
		}
		words := unwrap(shellWords(c.text))
		if len(words) == 0 {
			t.Errorf("%s: no command", what)
			continue
		}
		for _, w := range words {
			if w == "sudo" {
				t.Errorf("%s: sudo is not on a minimal Debian: use runuser -u postgres -- or su postgres -c", what)
			}
		}
		switch {
		case pgProgramRE.MatchString(words[0]):
			// Debian's path to a PostgreSQL program: the major may differ
			// from this machine's, the program must exist in some major.
			m := pgProgramRE.FindStringSubmatch(words[0])
			if found, _ := filepath.Glob("/usr/lib/postgresql/*/bin/" + m[1]); len(found) == 0 {
				t.Errorf("%s: no PostgreSQL program %s here", what, m[1])
			}
			continue
		case words[0] == "sudo":
			continue // said above
		case !isWalship(words[0]):
			if _, err := exec.LookPath(words[0]); err != nil {
				t.Errorf("%s: %s is not on this machine: %v", what, words[0], err)
			}
			continue
		}
		walshipLines++
		if strings.HasPrefix(words[0], "/") && !strings.HasPrefix(words[0], "/usr/bin/") {
			t.Errorf("%s: %s is not where the package installs it (/usr/bin)", what, words[0])
		}
		checkWalshipCommand(t, what, words, synopsis)
	}
	if walshipLines < 20 {
		t.Errorf("found %d walship command lines in the documents, want the 20 or more they have", walshipLines)
	}
}

// checkWalshipCommand checks one walship command line (its words, without
// a runuser or su in front).
func checkWalshipCommand(t *testing.T, what string, words []string, synopsis bool) {
	t.Helper()
	path := []string{strings.TrimPrefix(words[0], "/usr/bin/")}
	help, ok := readHelp(t, path)
	if !ok {
		t.Errorf("%s: %s --help fails", what, path[0])
		return
	}
	args := words[1:]
	// The commands: walship backup restore ...
	for len(help.commands) > 0 && len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		known := false
		for _, c := range help.commands {
			known = known || c == args[0]
		}
		if !known {
			t.Errorf("%s: %s has no command %q (it has %v)", what, strings.Join(path, " "), args[0], help.commands)
			return
		}
		path = append(path, args[0])
		args = args[1:]
		if help, ok = readHelp(t, path); !ok {
			t.Errorf("%s: %s --help fails", what, strings.Join(path, " "))
			return
		}
	}
	if len(help.commands) > 0 {
		t.Errorf("%s: %s needs one of its commands %v", what, strings.Join(path, " "), help.commands)
		return
	}
	if synopsis {
		for _, a := range args {
			for _, f := range regexp.MustCompile(`(^|[\[|])(--?[a-zA-Z0-9-]+)`).FindAllStringSubmatch(a, -1) {
				if _, ok := help.takesValue[f[2]]; !ok {
					t.Errorf("%s: %s has no flag %s", what, strings.Join(path, " "), f[2])
				}
			}
		}
		return
	}
	var flags []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if !strings.HasPrefix(a, "-") || a == "-" {
			continue // an argument: %p, a directory, a file
		}
		name, _, hasValue := strings.Cut(a, "=")
		takes, known := help.takesValue[name]
		switch {
		case !known:
			t.Errorf("%s: %s has no flag %s", what, strings.Join(path, " "), name)
		case takes && !hasValue:
			if i+1 >= len(args) {
				t.Errorf("%s: %s needs a value", what, name)
				continue
			}
			flags = append(flags, a, args[i+1])
			i++
		case !takes && hasValue:
			t.Errorf("%s: %s takes no value", what, name)
		default:
			flags = append(flags, a)
		}
	}
	// The values parse (durations, numbers): --help answers only after the
	// flags did. Files the line names need not exist here.
	base := t.TempDir()
	conf := filepath.Join(base, "walship.toml")
	if err := os.WriteFile(conf, []byte("repo = '"+filepath.Join(base, "repo")+"'\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	localize := docLocalizer("/usr/bin", base, conf)
	var local []string
	for _, f := range flags {
		local = append(local, localize(f))
	}
	r := walship(t, runOpts{}, path[0], append(append(path[1:], "--help"), local...)...)
	if r.code != 0 {
		t.Errorf("%s: the flags do not parse: %s", what, r)
	}
}

// linkRE is a markdown link: [text](target).
var linkRE = regexp.MustCompile(`\]\(([^)\s]+)\)`)

// slug is a heading's anchor as GitHub makes it: lower case, spaces to
// dashes, punctuation other than - and _ dropped.
func slug(heading string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(strings.TrimSpace(heading)) {
		switch {
		case r == ' ':
			b.WriteRune('-')
		case r == '-' || r == '_' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9':
			b.WriteRune(r)
		}
	}
	return b.String()
}

// TestDocLinks: the README stays a front door (at most 300 lines) that
// links every page of docs/, and every relative link of the documents
// leads to a file that exists and, with #anchor, to one of its headings.
func TestDocLinks(t *testing.T) {
	root := moduleDir(t)
	files := docFiles(t)
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(readme), "\n"); n > 300 {
		t.Errorf("README.md has %d lines, want at most 300: the reference belongs in docs/", n)
	}
	anchors := func(file string) map[string]bool {
		data, err := os.ReadFile(filepath.Join(root, file))
		if err != nil {
			return nil
		}
		out := map[string]bool{}
		fenced := false
		for _, l := range strings.Split(string(data), "\n") {
			if strings.HasPrefix(l, "```") {
				fenced = !fenced
			}
			if !fenced && strings.HasPrefix(l, "#") {
				out[slug(strings.TrimLeft(l, "#"))] = true
			}
		}
		return out
	}
	for _, f := range files {
		if f != "README.md" && !strings.Contains(string(readme), "]("+filepath.ToSlash(f)+")") {
			t.Errorf("README.md does not link %s", f)
		}
		data, err := os.ReadFile(filepath.Join(root, f))
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range linkRE.FindAllStringSubmatch(string(data), -1) {
			target := m[1]
			if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			path, anchor, _ := strings.Cut(target, "#")
			file := f
			if path != "" {
				file = filepath.Join(filepath.Dir(f), path)
				if _, err := os.Stat(filepath.Join(root, file)); err != nil {
					t.Errorf("%s links %s: %v", f, target, err)
					continue
				}
			}
			if anchor != "" && !anchors(file)[anchor] {
				t.Errorf("%s links %s: %s has no heading #%s", f, target, file, anchor)
			}
		}
	}
}
