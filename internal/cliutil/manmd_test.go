package cliutil

import "testing"

func TestEscapeManMarkdown(t *testing.T) {
	for _, tt := range []struct{ name, in, want string }{
		{"running text", "set WALSHIP_CONFIG or WALSHIP_ and the name", `set WALSHIP\_CONFIG or WALSHIP\_ and the name`},
		{"bold", "**archive_command**", `**archive\_command**`},
		{"code span", "`WALSHIP_REPO` and WALSHIP_REPO", "`WALSHIP_REPO` and WALSHIP\\_REPO"},
		{"escaped already", `WALSHIP\_REPO`, `WALSHIP\_REPO`},
		{"fenced block", "```\nrecovery_prefetch = off\n```\nrecovery_prefetch", "```\nrecovery_prefetch = off\n```\nrecovery\\_prefetch"},
		{"indented block", "text:\n\n    archive_mode = on\n    archive_command = 'x'\n\nafter_it", "text:\n\n    archive_mode = on\n    archive_command = 'x'\n\nafter\\_it"},
		{"indented continuation of a paragraph", "para\n    more_text", "para\n    more\\_text"},
	} {
		if got := escapeManMarkdown(tt.in); got != tt.want {
			t.Errorf("%s: escapeManMarkdown(%q) = %q, want %q", tt.name, tt.in, got, tt.want)
		}
	}
}
