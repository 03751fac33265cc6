package pgdata

import (
	"errors"
	"strings"
	"testing"
)

func TestParseLine(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Setting
		ok   bool
	}{
		{"port = 5432", Setting{"port", "5432"}, true},
		{"  Port=5433 # comment", Setting{"port", "5433"}, true},
		{"restore_command = 'cp /a/%f \"%p\"'  # x", Setting{"restore_command", `cp /a/%f "%p"`}, true},
		{"primary_conninfo = 'password=it''s a\\\\b'", Setting{"primary_conninfo", `password=it's a\b`}, true},
		{"include_dir 'conf.d'", Setting{"include_dir", "conf.d"}, true},
		{"shared_buffers 128MB", Setting{"shared_buffers", "128MB"}, true},
		{"custom.setting_2 = on", Setting{"custom.setting_2", "on"}, true},
		{"# port = 1", Setting{}, true},
		{"", Setting{}, true},
		{"   \t\r", Setting{}, true},
		{"x = 'unterminated", Setting{Name: "x"}, false},

		// Escapes, as DeescapeQuotedString decodes them.
		{`a = 'x\by\fz'`, Setting{"a", "x\by\fz"}, true},
		{`a = 'tab\there\nnl\rcr'`, Setting{"a", "tab\there\nnl\rcr"}, true},
		{`a = 'of\146'`, Setting{"a", "off"}, true},
		{`a = '\0101'`, Setting{"a", "\x081"}, true}, // three octal digits at most
		{`a = '\7a'`, Setting{"a", "\x07a"}, true},
		{`a = '\777'`, Setting{"a", "\xff"}, true}, // 0777 as a char
		{`a = 'stop\0here'`, Setting{"a", "stop"}, true},
		{`a = '\q\'\\'`, Setting{"a", `q'\`}, true},
		{`a = ''''`, Setting{"a", "'"}, true},
		{`a = ''`, Setting{"a", ""}, true},
		{`a = 'it''s' # 'quoted' comment`, Setting{"a", "it's"}, true},
		{`a = 'x'#c`, Setting{"a", "x"}, true},
		{"a = 'CRLF'\r", Setting{"a", "CRLF"}, true},
		{"a = 'r\rinside'", Setting{"a", "r\rinside"}, true},

		// Values that are not quoted.
		{"a = -1", Setting{"a", "-1"}, true},
		{"a = +0x1Fkb", Setting{"a", "+0x1Fkb"}, true},
		{"a = 1.5e-3", Setting{"a", "1.5e-3"}, true},
		{"a = .5", Setting{"a", ".5"}, true},
		{"a = 10s", Setting{"a", "10s"}, true},
		{"a = on", Setting{"a", "on"}, true},
		{"a=b", Setting{"a", "b"}, true},
		{"a b", Setting{"a", "b"}, true},
		{"a = host:5432/x-y.z_w", Setting{"a", "host:5432/x-y.z_w"}, true},
		{"a = en_US.UTF-8", Setting{"a", "en_US.UTF-8"}, true},
		{"a = \xc3\xa9t\xc3\xa9", Setting{"a", "\xc3\xa9t\xc3\xa9"}, true},
		{"\xc3\xa9 = 1", Setting{"\xc3\xa9", "1"}, true},
		{"INCLUDE_DIR = 'x'", Setting{"include_dir", "x"}, true},

		// What the server rejects.
		{"a = /tmp/x", Setting{Name: "a"}, false},      // an unquoted value starts with a letter
		{"a = cp /a/%f %p", Setting{Name: "a"}, false}, // one value only
		{`a = "1"`, Setting{Name: "a"}, false},         // no double quotes
		{"a = 'x' 'y'", Setting{Name: "a"}, false},     // one value only
		{"a = 1e5", Setting{Name: "a"}, false},         // 1e, then 5
		{"a =", Setting{Name: "a"}, false},             // no value
		{"a", Setting{Name: "a"}, false},               // no value
		{"a == 1", Setting{Name: "a"}, false},          // one '=' only
		{"a = 'x\\'", Setting{Name: "a"}, false},       // the quote is escaped
		{"a.b.c = 1", Setting{}, false},                // one dot in a name
		{"1a = 1", Setting{}, false},                   // a name starts with a letter
		{"$x = 1", Setting{}, false},                   // not a letter
		{"-x = 1", Setting{}, false},                   // not a letter
		{"= 1", Setting{}, false},                      // no name
		{"a = 'x'\nb = 2", Setting{"a", "x"}, true},    // up to the newline
		{"a-b = 1", Setting{}, false},                  // '-' is no name character
		{"a = 'no end''", Setting{Name: "a"}, false},   // the last quote is doubled
		{"a = x'y'", Setting{Name: "a"}, false},        // two values
		{"a = -", Setting{Name: "a"}, false},           // a sign alone
		{"a = 5 6", Setting{Name: "a"}, false},         // two values
		{"a = on # fine\tstill comment", Setting{"a", "on"}, true},
	} {
		got, err := ParseLine(tc.in)
		var se *SyntaxError
		if (err == nil) != tc.ok || got != tc.want || (err != nil && !errors.As(err, &se)) {
			t.Errorf("ParseLine(%q) = %+v, %v; want %+v, ok %v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

func TestSyntaxErrorText(t *testing.T) {
	_, err := ParseLine("a = cp /x")
	if got, want := err.Error(), `syntax error near token "/"`; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	_, err = ParseLine("a =")
	if got, want := err.Error(), "syntax error near end of line"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	err = &SyntaxError{File: "/etc/pg.conf", Line: 3, Near: "/"}
	if got, want := err.Error(), `syntax error in file "/etc/pg.conf" line 3, near token "/"`; got != want {
		t.Errorf("got %q, want %q (the server's words)", got, want)
	}
}

var quoteCases = []string{"", "plain", "it's", `back\slash`, `a\'b`, "host=x password='p w'", "100%",
	"two\nlines", "cr\rlf", "tab\t", `\0`, "\xc3\xa9", "# not a comment", "''"}

// TestQuoteConfValueRoundTrip: what walship writes, the parser (and so
// PostgreSQL, whose rules it follows) reads back unchanged.
func TestQuoteConfValueRoundTrip(t *testing.T) {
	for _, v := range quoteCases {
		got, err := ParseLine("restore_command = " + QuoteConfValue(v) + " # comment")
		if err != nil || got.Value != v {
			t.Errorf("%q: read back %q (%v)", v, got.Value, err)
		}
	}
}

func FuzzQuoteConfValue(f *testing.F) {
	for _, v := range quoteCases {
		f.Add(v)
	}
	f.Fuzz(func(t *testing.T, v string) {
		if strings.IndexByte(v, 0) >= 0 {
			return // a NUL ends the server's C string
		}
		got, err := ParseLine("x = " + QuoteConfValue(v))
		if err != nil || got.Value != v {
			t.Errorf("%q: read back %q (%v)", v, got.Value, err)
		}
		ParseLine(v) // never panics
	})
}

func TestSetSettings(t *testing.T) {
	in := "# Do not edit this file manually!\n# It will be overwritten by the ALTER SYSTEM command.\n" +
		"work_mem = '8MB'\nprimary_conninfo = 'host=old'\n# restore_command = 'commented out'\n" +
		"restore_command = 'tmp' # walship-rewind: temporary\nmax_connections = '50'"
	got := SetSettings(in, []Setting{{"primary_conninfo", "host=new port=5432"}, {"restore_command", "walship-restore --repo=/r %f %p"}})
	want := "# Do not edit this file manually!\n# It will be overwritten by the ALTER SYSTEM command.\n" +
		"work_mem = '8MB'\n# restore_command = 'commented out'\nmax_connections = '50'\n" +
		"primary_conninfo = 'host=new port=5432'\nrestore_command = 'walship-restore --repo=/r %f %p'\n"
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	if again := SetSettings(got, []Setting{{"primary_conninfo", "host=new port=5432"}, {"restore_command", "walship-restore --repo=/r %f %p"}}); again != got {
		t.Errorf("not idempotent:\n%s", again)
	}
}

// TestSetSettingsReplacesBrokenLines: a line of the setting that the server
// could not read goes too, instead of staying beside the new one.
func TestSetSettingsReplacesBrokenLines(t *testing.T) {
	in := "Primary_ConnInfo = host=old port=1\nrestore_command cp /a/%f %p\nport = 5433\n"
	got := SetSettings(in, []Setting{{"primary_conninfo", "host=new"}, {"RESTORE_COMMAND", "x"}})
	want := "port = 5433\nprimary_conninfo = 'host=new'\nRESTORE_COMMAND = 'x'\n"
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}
