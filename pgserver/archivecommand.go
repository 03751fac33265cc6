package pgserver

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/BurntSushi/toml"
)

// ArchiveProgram is the name of the archive_command binary.
const ArchiveProgram = "walship-archive"

// ArchiveCommand is what a server's archive_command says about walship-archive:
// the word that runs it and the settings given on the line.
type ArchiveCommand struct {
	// Program is the word that runs walship-archive, as written: a bare
	// name (looked up in the server's PATH) or a path (relative to the
	// data directory, where the server runs the command).
	Program string
	// Repo and Config are the --repo and --config values on the line;
	// "" when not given there.
	Repo, Config string
	// Env holds the VAR=value assignments written before the program.
	Env map[string]string
}

// ParseArchiveCommand reads an archive_command line the way sh splits it (white
// space, single and double quotes, backslashes; ;, &, | and parentheses
// end a command) and finds the command whose program is walship-archive
// (any path whose last element is that name). ok is false when no command
// on the line runs it.
func ParseArchiveCommand(line string) (c ArchiveCommand, ok bool) {
	words := shellWords(line)
	start := 0
	for i := 0; i <= len(words); i++ {
		if i < len(words) && !isOperator(words[i]) {
			continue
		}
		if c, ok := parseSimple(words[start:i]); ok {
			return c, true
		}
		start = i + 1
	}
	return ArchiveCommand{}, false
}

// parseSimple reads one simple command: assignments, the program, its
// arguments.
func parseSimple(words []string) (ArchiveCommand, bool) {
	c := ArchiveCommand{Env: map[string]string{}}
	i := 0
	for ; i < len(words); i++ {
		k, v, isAssign := strings.Cut(words[i], "=")
		if !isAssign || k == "" || strings.ContainsAny(k, "/-") {
			break
		}
		c.Env[k] = v
	}
	if i == len(words) || filepath.Base(words[i]) != ArchiveProgram {
		return ArchiveCommand{}, false
	}
	c.Program = words[i]
	args := words[i+1:]
	for j := 0; j < len(args); j++ {
		a := args[j]
		if a == "--" {
			break
		}
		name, val, hasVal := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !strings.HasPrefix(a, "-") || (name != "repo" && name != "config") {
			continue
		}
		if !hasVal {
			if j+1 == len(args) {
				break
			}
			j++
			val = args[j]
		}
		if name == "repo" {
			c.Repo = val
		} else {
			c.Config = val
		}
	}
	return c, true
}

// Repository is where the command archives into, as walship-archive
// decides it: --repo on the line, else WALSHIP_REPO in its environment
// (the assignments on the line, then getenv: the server's environment),
// else repo in the config file (--config, else WALSHIP_CONFIG). A relative
// config file path is taken from dir, the data directory. It returns ""
// and an error saying why when the repository cannot be told.
func (c ArchiveCommand) Repository(getenv func(string) string, dir string) (string, error) {
	env := func(k string) string {
		if v, ok := c.Env[k]; ok {
			return v
		}
		if getenv == nil {
			return ""
		}
		return getenv(k)
	}
	if c.Repo != "" {
		return c.Repo, nil
	}
	if v := env("WALSHIP_REPO"); v != "" {
		return v, nil
	}
	conf := c.Config
	if conf == "" {
		conf = env("WALSHIP_CONFIG")
	}
	if conf == "" {
		return "", fmt.Errorf("%s names no repository (no --repo, --config or WALSHIP_REPO)", ArchiveProgram)
	}
	if !filepath.IsAbs(conf) && dir != "" {
		conf = filepath.Join(dir, conf)
	}
	data, err := os.ReadFile(conf)
	if err != nil {
		return "", fmt.Errorf("reading its config file: %w", err)
	}
	var settings struct {
		Repo string `toml:"repo"`
	}
	if _, err := toml.Decode(string(data), &settings); err != nil {
		return "", fmt.Errorf("config file %s: %w", conf, err)
	}
	if settings.Repo == "" {
		return "", fmt.Errorf("config file %s sets no repo", conf)
	}
	return settings.Repo, nil
}

func isOperator(w string) bool {
	switch w {
	case ";", "&", "&&", "|", "||", "(", ")":
		return true
	}
	return false
}

// shellWords splits a command line into words and operators as sh does,
// without expanding anything but quotes and backslashes.
func shellWords(s string) []string {
	var words []string
	var cur strings.Builder
	inWord := false
	flush := func() {
		if inWord {
			words = append(words, cur.String())
			cur.Reset()
			inWord = false
		}
	}
	for i := 0; i < len(s); i++ {
		ch := s[i]
		switch {
		case ch == ' ' || ch == '\t' || ch == '\n':
			flush()
		case ch == ';' || ch == '&' || ch == '|' || ch == '(' || ch == ')':
			flush()
			op := string(ch)
			if (ch == '&' || ch == '|') && i+1 < len(s) && s[i+1] == ch {
				op += string(ch)
				i++
			}
			words = append(words, op)
		case ch == '\\':
			inWord = true
			if i+1 < len(s) {
				i++
				if s[i] != '\n' {
					cur.WriteByte(s[i])
				}
			}
		case ch == '\'':
			inWord = true
			j := strings.IndexByte(s[i+1:], '\'')
			if j < 0 {
				cur.WriteString(s[i+1:])
				i = len(s)
				break
			}
			cur.WriteString(s[i+1 : i+1+j])
			i += j + 1
		case ch == '"':
			inWord = true
			for i++; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '\\' && i+1 < len(s) && strings.IndexByte("$`\"\\\n", s[i+1]) >= 0 {
					i++
				}
				cur.WriteByte(s[i])
			}
		default:
			inWord = true
			cur.WriteByte(ch)
		}
	}
	flush()
	return words
}
