//go:build mangen

package cliutil

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/cpuguy83/go-md2man/v2/md2man"
	"github.com/urfave/cli/v2"
)

// Built with the tag mangen (and without urfave_cli_no_docs, which drops
// urfave/cli's renderer), every walship program is the generator of its
// own man page: Main writes the page, section 1, to stdout, from the same
// definitions the program parses its command line with. make man builds
// them so; the programs themselves are built without it.
func init() { manPage = writeManPage }

// manTemplate is urfave/cli's MarkdownDocTemplate with the sections a
// man page of a walship program also needs.
const manTemplate = `% {{ .App.Name }} 1 "" "walship {{ .App.Version }}" "walship manual"

# NAME

{{ .App.Name }}{{ if .App.Usage }} - {{ .App.Usage }}{{ end }}

# SYNOPSIS

{{ .App.UsageText }}
{{ if .App.Description }}
# DESCRIPTION

{{ .App.Description }}
{{ end }}{{ if .GlobalArgs }}
# OPTIONS
{{ range $v := .GlobalArgs }}
{{ $v }}{{ end }}
{{ end }}{{ if .Commands }}
# COMMANDS
{{ range $v := .Commands }}
{{ $v }}{{ end }}{{ end }}
# CONFIGURATION

Every option that has an environment variable can also be set in the TOML file that **--config** or WALSHIP_CONFIG names (conventionally /etc/walship/walship.toml), under its long name (**repo = '/var/lib/walship'**, **op-timeout = '30s'**), and in the environment as WALSHIP_ and the name in capitals with underscores (WALSHIP_REPO, WALSHIP_OP_TIMEOUT). The command line wins over the environment, which wins over the file; a key that is no walship setting is refused.

# EXIT STATUS

The same status means the same thing from every walship program.
{{ index .App.Metadata "exit" }}{{ index .App.Metadata "exitnote" }}
# SEE ALSO

{{ index .App.Metadata "seealso" }}

# VERSION

This page describes {{ .App.Name }} {{ .App.Version }}.
`

func writeManPage(app *cli.App) {
	if app.UsageText == "" {
		switch {
		case len(app.Commands) > 0:
			app.UsageText = app.Name + " *COMMAND* [*OPTIONS*]"
		default:
			app.UsageText = strings.TrimSpace(app.Name + " [*OPTIONS*] " + app.ArgsUsage)
		}
	}
	var exit strings.Builder
	for _, e := range ExitStatuses {
		if e.Code == ExitUsage && app.Name == "walship-restore" {
			continue // it aborts instead
		}
		label := strconv.Itoa(e.Code)
		if e.Label != "" {
			label = e.Label
		}
		fmt.Fprintf(&exit, "\n**%s**\n: %s\n", label, e.Meaning)
	}
	var others []string
	for _, p := range Programs {
		if p != app.Name {
			others = append(others, fmt.Sprintf("**%s**(1)", p))
		}
	}
	sort.Strings(others)
	note := ""
	for _, c := range app.Commands {
		if c.Name == "check" {
			note = "\n**walship check** is the one exception: it exits with the monitoring-plugin statuses " +
				"that Nagios, Icinga and their kin read: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (also when it was called wrongly).\n"
		}
	}
	app.Metadata = map[string]any{"exit": exit.String(), "exitnote": note,
		"seealso": strings.Join(append(others, "**postgres**(1)", "**pg_rewind**(1)"), ", ")}
	cli.MarkdownDocTemplate = manTemplate
	md, err := app.ToMarkdown()
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: man page: %v\n", filepath.Base(os.Args[0]), err)
		os.Exit(1)
	}
	// The markdown renderer reads "_" as emphasis (WALSHIP_CONFIG came
	// out as WALSHIP and an italic CONFIG): escape it outside code.
	man := string(md2man.Render([]byte(escapeManMarkdown(md))))
	// No hyphenation: an option split as --con- / fig cannot be pasted.
	man = ".nr HY 0\n" + man
	fmt.Print(man)
}
