package warmstandby

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// PrefetchWarning returns a one-line warning when the server whose data
// directory is dataDir is PostgreSQL 15 or later and its configuration
// does not set recovery_prefetch = off, and "" otherwise (also when it
// cannot tell). With the default (try) the startup process reads ahead into
// the next segment and blocks in a waiting restore_command before it has
// applied the end of the current one.
//
// It reads the files, not the running server: the command line recorded
// in postmaster.opts (-c settings and config_file), the main configuration
// file with its include directives, then postgresql.auto.conf.
func PrefetchWarning(dataDir string) string {
	if dataDir == "" {
		dataDir = "."
	}
	data, err := os.ReadFile(filepath.Join(dataDir, "PG_VERSION"))
	if err != nil {
		return ""
	}
	major, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil || major < 15 {
		return ""
	}
	s := settings{}
	mainConf := filepath.Join(dataDir, "postgresql.conf")
	argv := map[string]string{}
	if opts, err := os.ReadFile(filepath.Join(dataDir, "postmaster.opts")); err == nil {
		argv = commandLineSettings(string(opts))
		if f, ok := argv["config_file"]; ok {
			mainConf = f
			if !filepath.IsAbs(mainConf) {
				mainConf = filepath.Join(dataDir, mainConf)
			}
		}
	}
	s.readFile(mainConf, 0)
	s.readFile(filepath.Join(dataDir, "postgresql.auto.conf"), 0)
	for k, v := range argv { // the command line wins over the files
		s[k] = v
	}
	v, set := s["recovery_prefetch"]
	switch strings.ToLower(v) {
	case "off", "false", "no", "0":
		return ""
	}
	if !set {
		v = "try (the default)"
	}
	return fmt.Sprintf("recovery_prefetch is %s: PostgreSQL %d reads ahead and then waits in this restore_command before applying "+
		"the segment it already has; set recovery_prefetch = off for walship-restore --standby", v, major)
}

// settings are configuration parameters by lower-case name, last one wins.
type settings map[string]string

// readFile reads one postgresql.conf-style file and the files it includes.
// Unreadable files are skipped: this is a check, not the server's parser.
func (s settings) readFile(path string, depth int) {
	if depth > 10 {
		return
	}
	f, err := os.Open(path)
	if err != nil {
		return
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, value, ok := parseConfLine(sc.Text())
		if !ok {
			continue
		}
		rel := func() string {
			if filepath.IsAbs(value) {
				return value
			}
			return filepath.Join(filepath.Dir(path), value)
		}
		switch name {
		case "include", "include_if_exists":
			s.readFile(rel(), depth+1)
		case "include_dir":
			names, _ := filepath.Glob(filepath.Join(rel(), "*.conf"))
			sort.Strings(names)
			for _, n := range names {
				if !strings.HasPrefix(filepath.Base(n), ".") {
					s.readFile(n, depth+1)
				}
			}
		default:
			s[name] = value
		}
	}
}

// parseConfLine splits `name = value # comment` (the = is optional); value
// may be single-quoted, a quote inside doubled or backslash-escaped.
func parseConfLine(line string) (name, value string, ok bool) {
	line = strings.TrimSpace(line)
	if line == "" || line[0] == '#' {
		return "", "", false
	}
	i := strings.IndexAny(line, " \t=")
	if i <= 0 {
		return "", "", false
	}
	name = strings.ToLower(line[:i])
	rest := strings.TrimLeft(line[i:], " \t")
	rest = strings.TrimLeft(strings.TrimPrefix(rest, "="), " \t")
	if strings.HasPrefix(rest, "'") {
		var b strings.Builder
		for j := 1; j < len(rest); j++ {
			c := rest[j]
			switch {
			case c == '\\' && j+1 < len(rest):
				j++
				b.WriteByte(rest[j])
			case c == '\'' && j+1 < len(rest) && rest[j+1] == '\'':
				j++
				b.WriteByte('\'')
			case c == '\'':
				return name, b.String(), true
			default:
				b.WriteByte(c)
			}
		}
		return "", "", false // unterminated quote
	}
	if k := strings.IndexAny(rest, " \t#"); k >= 0 {
		rest = rest[:k]
	}
	return name, rest, rest != ""
}

// commandLineSettings picks the settings out of postmaster.opts: the
// server's argv, each argument after the first in double quotes.
func commandLineSettings(opts string) map[string]string {
	var args []string
	for rest := opts; ; {
		i := strings.IndexByte(rest, '"')
		if i < 0 {
			break
		}
		j := strings.IndexByte(rest[i+1:], '"')
		if j < 0 {
			break
		}
		args = append(args, rest[i+1:i+1+j])
		rest = rest[i+2+j:]
	}
	out := map[string]string{}
	for i := 0; i < len(args); i++ {
		a := args[i]
		var kv string
		switch {
		case (a == "-c" || a == "--") && i+1 < len(args):
			i++
			kv = args[i]
		case strings.HasPrefix(a, "--"):
			kv = a[2:]
		case strings.HasPrefix(a, "-c") && len(a) > 2:
			kv = a[2:]
		default:
			continue
		}
		k, v, ok := strings.Cut(kv, "=")
		if ok {
			out[strings.ReplaceAll(strings.ToLower(k), "-", "_")] = v
		}
	}
	return out
}
