package pgdata

import (
	"fmt"
	"strings"
)

// QuoteConfValue quotes a string for a configuration file the way ALTER
// SYSTEM does: single quotes, with quotes and backslashes doubled. A
// newline, which ALTER SYSTEM refuses and a quoted string cannot hold,
// is written \n. ParseLine reads the result back unchanged.
func QuoteConfValue(s string) string {
	s = strings.ReplaceAll(s, `\`, `\\`)
	s = strings.ReplaceAll(s, "\n", `\n`)
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}

// SetSettings returns conf (a postgresql.auto.conf or recovery.conf) with
// every active line of the named settings (and of the unset ones) removed, read by ParseLine (a
// line that starts with the name but does not parse counts too), and the
// settings appended in order, each as name = 'value'. Comments and other
// settings stay as they are.
func SetSettings(conf string, settings []Setting, unset ...string) string {
	drop := map[string]bool{}
	for _, s := range settings {
		drop[asciiLower(s.Name)] = true
	}
	for _, n := range unset {
		drop[asciiLower(n)] = true
	}
	var b strings.Builder
	for _, line := range strings.SplitAfter(conf, "\n") {
		if line == "" {
			continue
		}
		if s, _ := ParseLine(line); drop[s.Name] {
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
