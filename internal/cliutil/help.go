package cliutil

import (
	"io"
	"strings"

	"github.com/urfave/cli/v2"
)

// HelpWidth is the widest line of any --help: descriptions and command
// lists are wrapped at it, and each option is its names on one line and
// its usage, wrapped, below.
const HelpWidth = 100

// flagIndent is where an option's usage starts, under its names.
const flagIndent = "        "

func init() {
	cli.HelpPrinter = func(w io.Writer, templ string, data any) {
		cli.HelpPrinterCustom(w, templ, data, map[string]any{"wrapAt": func() int { return HelpWidth }})
	}
	cli.FlagStringer = flagString
}

// flagString shows one option: "--name VALUE, -n VALUE" on its own line,
// then its usage, its default when that says something (never a second one
// after a usage that names its own, never "false" for a switch) and its
// environment variable, wrapped under it.
func flagString(f cli.Flag) string {
	df, ok := f.(cli.DocGenerationFlag)
	if !ok {
		return ""
	}
	placeholder, usage := unquote(df.GetUsage())
	if df.TakesValue() && placeholder == "" {
		placeholder = "value"
	}
	var names []string
	for _, n := range df.Names() {
		dash := "--"
		if len(n) == 1 {
			dash = "-"
		}
		if placeholder != "" {
			n += " " + placeholder
		}
		names = append(names, dash+n)
	}
	head := strings.Join(names, ", ")
	if s, ok := f.(cli.DocGenerationSliceFlag); ok && s.IsSliceFlag() && !strings.Contains(usage, "repeatable") {
		head += " (repeatable)"
	}
	text := usage
	_, isBool := f.(*cli.BoolFlag)
	if d := df.GetDefaultText(); d != "" && !strings.Contains(usage, "default") && !(isBool && d == "false") {
		text += " (default: " + d + ")"
	}
	if env := df.GetEnvVars(); len(env) > 0 {
		text += " [$" + strings.Join(env, ", $") + "]"
	}
	// The help template puts three spaces before the names.
	return head + "\n   " + flagIndent + wrapWords(text, HelpWidth-len(flagIndent)-3, "\n   "+flagIndent)
}

// unquote takes the placeholder out of a usage: `FILE` in "read FILE".
func unquote(usage string) (placeholder, text string) {
	i := strings.IndexByte(usage, '`')
	if i < 0 {
		return "", usage
	}
	j := strings.IndexByte(usage[i+1:], '`')
	if j < 0 {
		return "", usage
	}
	name := usage[i+1 : i+1+j]
	return name, usage[:i] + name + usage[i+2+j:]
}

// wrapWords breaks text into lines of at most width columns, joined by
// sep.
func wrapWords(text string, width int, sep string) string {
	var lines []string
	line := ""
	for _, w := range strings.Fields(text) {
		if line != "" && len(line)+1+len(w) > width {
			lines = append(lines, line)
			line = ""
		}
		if line != "" {
			line += " "
		}
		line += w
	}
	return strings.Join(append(lines, line), sep)
}
