package rewind

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// confLine is one setting or include directive of a configuration file.
type confLine struct {
	Name  string // lower-case
	Value string // unquoted
}

// parseConfLine parses one line of postgresql.conf syntax: "name = value"
// or "name value", the value bare or single-quoted (quotes doubled, backslash
// escapes), an optional comment after '#'. ok is false for blank lines,
// comments and lines it cannot read.
func parseConfLine(line string) (confLine, bool) {
	s := strings.TrimLeft(line, " \t")
	i := 0
	for i < len(s) && (isNameByte(s[i]) || (i > 0 && s[i] >= '0' && s[i] <= '9')) {
		i++
	}
	if i == 0 {
		return confLine{}, false
	}
	name := strings.ToLower(s[:i])
	s = strings.TrimLeft(s[i:], " \t")
	if strings.HasPrefix(s, "=") {
		s = strings.TrimLeft(s[1:], " \t")
	}
	if strings.HasPrefix(s, "'") {
		var b strings.Builder
		for j := 1; j < len(s); j++ {
			switch c := s[j]; {
			case c == '\'' && j+1 < len(s) && s[j+1] == '\'':
				b.WriteByte('\'')
				j++
			case c == '\'':
				return confLine{name, b.String()}, true
			case c == '\\' && j+1 < len(s):
				j++
				switch s[j] {
				case 'n':
					b.WriteByte('\n')
				case 't':
					b.WriteByte('\t')
				case 'r':
					b.WriteByte('\r')
				default:
					b.WriteByte(s[j])
				}
			default:
				b.WriteByte(c)
			}
		}
		return confLine{}, false // unterminated
	}
	end := strings.IndexAny(s, " \t#")
	if end < 0 {
		end = len(s)
	}
	return confLine{name, s[:end]}, true
}

func isNameByte(c byte) bool {
	return c == '_' || c == '.' || c == '$' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
}

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
// mainConf is the main file; "" means dataDir/postgresql.conf.
func FindConf(dataDir, mainConf string) (ConfSet, error) {
	if mainConf == "" {
		mainConf = filepath.Join(dataDir, "postgresql.conf")
	}
	f := &confFinder{seen: map[string]bool{}, dirs: map[string]bool{}}
	settings := map[string]string{}
	if err := f.read(mainConf, settings, 0, true); err != nil {
		return ConfSet{}, err
	}
	configDir := filepath.Dir(mainConf)
	for _, k := range []string{"hba_file", "ident_file"} {
		p := settings[k]
		if p == "" {
			p = filepath.Join(configDir, map[string]string{"hba_file": "pg_hba.conf", "ident_file": "pg_ident.conf"}[k])
		} else if !filepath.IsAbs(p) {
			p = filepath.Join(dataDir, p) // the server resolves them against its working directory, the data directory
		}
		f.add(p)
	}
	f.add(filepath.Join(dataDir, "postgresql.auto.conf"))
	f.add(filepath.Join(dataDir, "recovery.conf"))
	var set ConfSet
	for p := range f.seen {
		if inside(dataDir, p) {
			set.Files = append(set.Files, p)
			if target, err := filepath.EvalSymlinks(p); err == nil && target != p && !f.seen[target] {
				set.Files = append(set.Files, target) // pg_rewind writes through the link
			}
		}
	}
	for d := range f.dirs {
		if inside(dataDir, d) {
			set.Dirs = append(set.Dirs, d)
		}
	}
	sort.Strings(set.Files)
	sort.Strings(set.Dirs)
	return set, nil
}

type confFinder struct {
	seen map[string]bool
	dirs map[string]bool
}

func (f *confFinder) add(p string) { f.seen[filepath.Clean(p)] = true }

// read follows one configuration file; settings collects the last value of
// each setting.
func (f *confFinder) read(path string, settings map[string]string, depth int, must bool) error {
	if depth > 10 {
		return fmt.Errorf("configuration files nested too deeply at %s", path)
	}
	path = filepath.Clean(path)
	if f.seen[path] {
		return nil
	}
	f.add(path)
	file, err := os.Open(path)
	if err != nil {
		if !must && os.IsNotExist(err) {
			return nil
		}
		return fmt.Errorf("reading the target's configuration: %w", err)
	}
	defer file.Close()
	dir := filepath.Dir(path)
	abs := func(p string) string {
		if filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(dir, p)
	}
	sc := bufio.NewScanner(file)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		l, ok := parseConfLine(sc.Text())
		if !ok {
			continue
		}
		switch l.Name {
		case "include":
			err = f.read(abs(l.Value), settings, depth+1, true)
		case "include_if_exists":
			err = f.read(abs(l.Value), settings, depth+1, false)
		case "include_dir":
			err = f.readDir(abs(l.Value), settings, depth+1)
		default:
			settings[l.Name] = l.Value
		}
		if err != nil {
			return err
		}
	}
	return sc.Err()
}

func (f *confFinder) readDir(dir string, settings map[string]string, depth int) error {
	dir = filepath.Clean(dir)
	f.dirs[dir] = true
	for _, name := range confDirFiles(dir) {
		if err := f.read(filepath.Join(dir, name), settings, depth, true); err != nil {
			return err
		}
	}
	return nil
}

// confDirFiles lists the files an include_dir reads: names ending in .conf
// that do not start with a dot, in name order.
func confDirFiles(dir string) []string {
	ents, _ := os.ReadDir(dir)
	var names []string
	for _, e := range ents {
		if n := e.Name(); !e.IsDir() && strings.HasSuffix(n, ".conf") && !strings.HasPrefix(n, ".") {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	return names
}

func inside(dir, p string) bool {
	rel, err := filepath.Rel(filepath.Clean(dir), filepath.Clean(p))
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../") && rel != "."
}

// Setting is one name = value line walship writes.
type Setting struct{ Name, Value string }

// QuoteConfValue quotes a string for a configuration file the way ALTER
// SYSTEM does: single quotes, with quotes and backslashes doubled.
func QuoteConfValue(s string) string {
	s = strings.ReplaceAll(s, `\`, `\\`)
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}

// SetSettings returns conf (a postgresql.auto.conf or recovery.conf) with
// every active line of the named settings removed and the settings
// appended in order, each as name = 'value'. Comments and other settings
// stay as they are.
func SetSettings(conf string, settings []Setting) string {
	drop := map[string]bool{}
	for _, s := range settings {
		drop[strings.ToLower(s.Name)] = true
	}
	var b strings.Builder
	for _, line := range strings.SplitAfter(conf, "\n") {
		if line == "" {
			continue
		}
		if l, ok := parseConfLine(line); ok && drop[l.Name] {
			continue
		}
		b.WriteString(line)
		if !strings.HasSuffix(line, "\n") {
			b.WriteByte('\n')
		}
	}
	for _, s := range settings {
		fmt.Fprintf(&b, "%s = %s\n", s.Name, QuoteConfValue(s.Value))
	}
	return b.String()
}

// StandbyConf is what makes the rewound target a standby of the source.
type StandbyConf struct {
	PrimaryConnInfo string
	RestoreCommand  string
	SlotName        string // primary_slot_name; empty: none
}

func (s StandbyConf) settings() []Setting {
	out := []Setting{{"primary_conninfo", s.PrimaryConnInfo}}
	if s.SlotName != "" {
		out = append(out, Setting{"primary_slot_name", s.SlotName})
	}
	return append(out, Setting{"restore_command", s.RestoreCommand}, Setting{"recovery_target_timeline", "latest"})
}

// RecoveryConf returns recovery.conf (read by servers before 12) with the
// settings that make the server a standby of the source; existing is the
// file's current content ("" for none), whose other settings stay.
func RecoveryConf(existing string, s StandbyConf) string {
	if existing == "" {
		existing = "# Written by walship-rewind: this server is a standby.\n"
	}
	return SetSettings(existing, append([]Setting{{"standby_mode", "on"}}, s.settings()...))
}

// AutoConfStandby returns postgresql.auto.conf (12 and later) with the
// standby settings set, replacing earlier values of them.
func AutoConfStandby(autoConf string, s StandbyConf) string {
	return SetSettings(autoConf, s.settings())
}

// shellQuote quotes one word for /bin/sh, which runs restore_command.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_@%+=:,./-") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// RestoreCommand builds a restore_command from a program and its
// arguments, shell-quoted, with %f %p at the end. A literal % is doubled,
// since PostgreSQL replaces %f, %p, %r and %% in the command.
func RestoreCommand(bin string, args []string) string {
	words := make([]string, 0, len(args)+3)
	for _, w := range append([]string{bin}, args...) {
		words = append(words, strings.ReplaceAll(shellQuote(w), "%", "%%"))
	}
	return strings.Join(append(words, "%f", "%p"), " ")
}
