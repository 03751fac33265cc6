package test

import (
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"
)

// maxHelpWidth is the widest line a --help may print: a terminal of 100
// columns shows it without wrapping.
const maxHelpWidth = 100

// helpCommands returns every command line whose --help a reader may ask
// for: each program, and each command and subcommand its help lists (by
// walking the COMMANDS sections), e.g. [walship backup restore].
func helpCommands(t *testing.T) [][]string {
	t.Helper()
	var out [][]string
	var walk func(path []string)
	walk = func(path []string) {
		out = append(out, path)
		r := walship(t, runOpts{}, path[0], append(path[1:], "--help")...)
		for _, sub := range listedCommands(r.stdout) {
			walk(append(append([]string{}, path...), sub))
		}
	}
	for _, prog := range programs {
		walk([]string{prog})
	}
	return out
}

// listedCommands returns the command names of a help text's COMMANDS
// section, without help.
func listedCommands(help string) []string {
	var names []string
	in := false
	for _, l := range strings.Split(help, "\n") {
		switch {
		case strings.HasPrefix(l, "COMMANDS:"):
			in = true
		case in && strings.TrimSpace(l) == "", in && !strings.HasPrefix(l, " "):
			in = false
		case in && strings.HasPrefix(l, "    "):
			// the wrapped rest of a command's usage
		case in:
			name := strings.TrimRight(strings.Fields(l)[0], ",")
			if name != "help" {
				names = append(names, name)
			}
		}
	}
	return names
}

// defaultRE finds a "(default: ...)" in a help text.
var defaultRE = regexp.MustCompile(`\((the )?default\b`)

// TestHelpWidth (issue 27.6): every program's and every subcommand's
// --help fits in 100 columns; no option shows two defaults (the
// description's own "(default: on with --s3-endpoint, ...)" followed by the
// one urfave/cli adds, "(default: false)"); a usage error in a command is
// one hint to that command's --help, not two, and names the command.
func TestHelpWidth(t *testing.T) {
	cmds := helpCommands(t)
	if len(cmds) < len(programs)+10 {
		t.Fatalf("found %d commands with a --help (%v), want the 5 programs, walship's commands and backup's subcommands", len(cmds), cmds)
	}
	for _, path := range cmds {
		what := strings.Join(path, " ") + " --help"
		r := walship(t, runOpts{}, path[0], append(path[1:], "--help")...)
		if r.code != 0 || r.stdout == "" {
			t.Errorf("%s: %s, want exit 0 and the help", what, r)
			continue
		}
		for i, l := range strings.Split(r.stdout, "\n") {
			if n := utf8.RuneCountInString(strings.ReplaceAll(l, "\t", "        ")); n > maxHelpWidth {
				t.Errorf("%s: line %d is %d columns wide, want at most %d: %q", what, i+1, n, maxHelpWidth, l)
			}
		}
		// An option is one entry: its line and the more indented lines
		// that continue it.
		for _, entry := range helpEntries(r.stdout) {
			if n := len(defaultRE.FindAllString(entry, -1)); n > 1 {
				t.Errorf("%s: an option shows %d defaults: %q", what, n, entry)
			}
		}

		// A usage error: one line, one hint, naming this command.
		bad := walship(t, runOpts{}, path[0], append(path[1:], "--no-such-flag")...)
		hint := `Try "` + strings.Join(path, " ") + ` --help"`
		if !strings.Contains(bad.stderr, hint) {
			t.Errorf("%s --no-such-flag: %s, want the hint %s", strings.Join(path, " "), bad, hint)
		}
		if n := strings.Count(bad.stderr, "--help"); n > 1 {
			t.Errorf("%s --no-such-flag: the hint to --help is given %d times: %q", strings.Join(path, " "), n, bad.stderr)
		}
	}
	// An unknown subcommand: one hint, to the command that has them.
	for _, path := range cmds {
		r := walship(t, runOpts{}, path[0], append(path[1:], "--help")...)
		if len(listedCommands(r.stdout)) == 0 {
			continue
		}
		bad := walship(t, runOpts{}, path[0], append(path[1:], "no-such-command")...)
		if bad.code == 0 || strings.Count(bad.stderr, "--help") != 1 {
			t.Errorf("%s no-such-command: %s, want a usage error with one hint to --help", strings.Join(path, " "), bad)
		}
	}
}

// helpEntries splits the option lists of a help text into one string per
// option: an option line ("   --name ...") and the lines that continue
// it (indented deeper, not another option).
func helpEntries(help string) []string {
	var entries []string
	indent := 0
	for _, l := range strings.Split(help, "\n") {
		trimmed := strings.TrimSpace(l)
		depth := len(l) - len(strings.TrimLeft(l, " "))
		switch {
		case strings.HasPrefix(trimmed, "-"):
			entries = append(entries, trimmed)
			indent = depth
		case trimmed != "" && len(entries) > 0 && depth > indent:
			entries[len(entries)-1] += " " + trimmed
		default:
			indent = 1 << 30 // a blank line or a heading ends the option
		}
	}
	return entries
}
