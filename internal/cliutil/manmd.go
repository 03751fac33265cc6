package cliutil

import "strings"

// escapeManMarkdown returns the markdown of a man page with every "_"
// of running text escaped ("\_"), so that the markdown renderer prints
// it instead of reading it as emphasis: unescaped, "WALSHIP_CONFIG ...
// WALSHIP_ and the name" renders as "WALSHIP" and an italic
// "CONFIG ... WALSHIP". Code is left alone, where a backslash would be
// printed: code spans (`...`), fenced blocks (```), and indented blocks
// (four spaces or a tab after a blank line). An underscore already
// escaped stays as it is.
func escapeManMarkdown(md string) string {
	lines := strings.Split(md, "\n")
	fenced, indented, prevBlank := false, false, true
	for i, l := range lines {
		trimmed := strings.TrimSpace(l)
		switch {
		case strings.HasPrefix(trimmed, "```"):
			fenced = !fenced
			prevBlank = false
			continue
		case fenced:
			continue
		case trimmed == "":
			prevBlank = true
			continue
		}
		isIndented := strings.HasPrefix(l, "    ") || strings.HasPrefix(l, "\t")
		indented = isIndented && (indented || prevBlank)
		prevBlank = false
		if indented {
			continue
		}
		lines[i] = escapeUnderscores(l)
	}
	return strings.Join(lines, "\n")
}

// escapeUnderscores escapes the underscores of one line of running text,
// outside code spans.
func escapeUnderscores(l string) string {
	var b strings.Builder
	inCode := false
	for i := 0; i < len(l); i++ {
		c := l[i]
		switch {
		case c == '\\' && i+1 < len(l) && !inCode:
			b.WriteByte(c)
			i++
			b.WriteByte(l[i])
			continue
		case c == '`':
			inCode = !inCode
		case c == '_' && !inCode:
			b.WriteByte('\\')
		}
		b.WriteByte(c)
	}
	return b.String()
}
