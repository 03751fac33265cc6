package pgdata

import (
	"fmt"
	"strings"
)

// Setting is one "name = value" line of a configuration file: a parameter,
// or an include directive (include, include_if_exists, include_dir).
type Setting struct {
	Name  string // lower-case
	Value string // unquoted, escapes decoded
}

// SyntaxError is a line the server's configuration parser rejects: the
// server refuses to start with it, and a reload applies nothing.
type SyntaxError struct {
	File string // "" for a line parsed on its own
	Line int    // from 1; 0 for a line parsed on its own
	Near string // the token the parser stopped at; "" at the end of the line
}

func (e *SyntaxError) Error() string {
	where := "syntax error"
	if e.File != "" {
		where = fmt.Sprintf("syntax error in file %q line %d,", e.File, e.Line)
	}
	if e.Near == "" {
		return where + " near end of line"
	}
	return fmt.Sprintf("%s near token %q", where, e.Near)
}

// ParseLine parses one line of a configuration file (up to its first
// newline) the way PostgreSQL does (ParseConfigFp in guc-file.l): a name,
// an optional '=', one value, then nothing but blanks or a '#' comment.
//
// A name is an identifier, or two joined by a dot (custom.setting). A
// value is an identifier, a number with an optional unit (128MB, -1, 0x1F,
// 1.5e3), an unquoted word of letters, digits and - . _ : / that starts
// with a letter, or a single-quoted string, in which a doubled quote is
// one quote and a backslash escapes as DeescapeQuotedString decodes it
// (\b \f \n \r \t, up to three octal digits, any other character for
// itself).
//
// A blank or comment line gives a zero Setting and a nil error. A line the
// server would reject gives a *SyntaxError, and the Setting's Name when the
// line at least starts with one.
func ParseLine(line string) (Setting, error) {
	if i := strings.IndexByte(line, '\n'); i >= 0 {
		line = line[:i]
	}
	lx := lexer{s: line}
	k, tok := lx.next()
	if k == tokEOL {
		return Setting{}, nil
	}
	if k != tokID && k != tokQualifiedID {
		return Setting{}, lx.syntaxError(k, tok)
	}
	name := asciiLower(tok)
	if k, tok = lx.next(); k == tokEquals {
		k, tok = lx.next()
	}
	switch k {
	case tokID, tokString, tokInteger, tokReal, tokUnquoted:
	default:
		return Setting{Name: name}, lx.syntaxError(k, tok)
	}
	value := tok
	if k == tokString {
		value = deescape(tok)
	}
	if k, tok = lx.next(); k != tokEOL {
		return Setting{Name: name}, lx.syntaxError(k, tok)
	}
	return Setting{Name: name, Value: value}, nil
}

type tokKind int

const (
	tokEOL tokKind = iota // end of line; a comment runs to it
	tokID
	tokQualifiedID
	tokString
	tokUnquoted
	tokInteger
	tokReal
	tokEquals
	tokError
)

// lexer splits one line into the tokens of guc-file.l. Like flex, it takes
// the longest match at each point, the earlier rule on a tie.
type lexer struct {
	s string
	i int
}

func (lx *lexer) next() (tokKind, string) {
	for lx.i < len(lx.s) && (lx.s[lx.i] == ' ' || lx.s[lx.i] == '\t' || lx.s[lx.i] == '\r') {
		lx.i++
	}
	if lx.i >= len(lx.s) || lx.s[lx.i] == '#' {
		lx.i = len(lx.s)
		return tokEOL, ""
	}
	s := lx.s[lx.i:]
	n, kind := 0, tokError
	for _, r := range [...]struct {
		n int
		k tokKind
	}{
		{matchID(s), tokID},
		{matchQualifiedID(s), tokQualifiedID},
		{matchString(s), tokString},
		{matchUnquoted(s), tokUnquoted},
		{matchInteger(s), tokInteger},
		{matchReal(s), tokReal},
	} {
		if r.n > n {
			n, kind = r.n, r.k
		}
	}
	if n == 0 {
		n = 1
		if s[0] == '=' {
			kind = tokEquals
		}
	}
	lx.i += n
	return kind, s[:n]
}

func (lx *lexer) syntaxError(k tokKind, tok string) *SyntaxError {
	if k == tokEOL {
		return &SyntaxError{}
	}
	return &SyntaxError{Near: tok}
}

// LETTER is [A-Za-z_\200-\377]: every byte of a UTF-8 sequence is one.
func isLetter(c byte) bool {
	return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c >= 0x80
}

func isDigit(c byte) bool         { return c >= '0' && c <= '9' }
func isLetterOrDigit(c byte) bool { return isLetter(c) || isDigit(c) }
func isUnitLetter(c byte) bool    { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') }
func isHexDigit(c byte) bool {
	return isDigit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

func span(s string, i int, ok func(byte) bool) int {
	for i < len(s) && ok(s[i]) {
		i++
	}
	return i
}

// matchID: {LETTER}{LETTER_OR_DIGIT}*
func matchID(s string) int {
	if s == "" || !isLetter(s[0]) {
		return 0
	}
	return span(s, 1, isLetterOrDigit)
}

// matchQualifiedID: {ID}"."{ID}
func matchQualifiedID(s string) int {
	n := matchID(s)
	if n == 0 || n >= len(s) || s[n] != '.' {
		return 0
	}
	if m := matchID(s[n+1:]); m > 0 {
		return n + 1 + m
	}
	return 0
}

// matchUnquoted: {LETTER}({LETTER_OR_DIGIT}|[-._:/])*
func matchUnquoted(s string) int {
	if s == "" || !isLetter(s[0]) {
		return 0
	}
	return span(s, 1, func(c byte) bool {
		return isLetterOrDigit(c) || c == '-' || c == '.' || c == '_' || c == ':' || c == '/'
	})
}

func sign(s string) int {
	if s != "" && (s[0] == '-' || s[0] == '+') {
		return 1
	}
	return 0
}

// matchInteger: {SIGN}?({DIGIT}+|0x{HEXDIGIT}+){UNIT_LETTER}*
func matchInteger(s string) int {
	i := sign(s)
	end := 0
	if d := span(s, i, isDigit); d > i {
		end = span(s, d, isUnitLetter)
	}
	if strings.HasPrefix(s[i:], "0x") {
		if h := span(s, i+2, isHexDigit); h > i+2 {
			end = max(end, span(s, h, isUnitLetter))
		}
	}
	return end
}

// matchReal: {SIGN}?{DIGIT}*"."{DIGIT}*([Ee]{SIGN}?{DIGIT}+)?
func matchReal(s string) int {
	i := span(s, sign(s), isDigit)
	if i >= len(s) || s[i] != '.' {
		return 0
	}
	i = span(s, i+1, isDigit)
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		j := i + 1 + sign(s[i+1:])
		if k := span(s, j, isDigit); k > j {
			i = k
		}
	}
	return i
}

// matchString: \'([^'\\\n]|\\.|\'\')*\' — the longest such prefix, so that
// a doubled quote inside does not end the string.
func matchString(s string) int {
	if s == "" || s[0] != '\'' {
		return 0
	}
	end := 0
	for i := 1; i < len(s); {
		switch s[i] {
		case '\'':
			end = i + 1
			if i+1 < len(s) && s[i+1] == '\'' {
				i += 2
				continue
			}
			return end
		case '\\':
			if i+1 >= len(s) || s[i+1] == '\n' {
				return end
			}
			i += 2
		case '\n':
			return end
		default:
			i++
		}
	}
	return end
}

// deescape is DeescapeQuotedString: it strips the quotes of a string token
// and decodes doubled quotes and the backslash escapes. Like the server's
// C string, the value ends at a NUL (\0, \00, \000).
func deescape(tok string) string {
	s := tok[1:] // the trailing quote is copied, then dropped
	at := func(i int) byte {
		if i < len(s) {
			return s[i]
		}
		return 0
	}
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\':
			i++
			switch c = at(i); c {
			case 'b':
				c = '\b'
			case 'f':
				c = '\f'
			case 'n':
				c = '\n'
			case 'r':
				c = '\r'
			case 't':
				c = '\t'
			case '0', '1', '2', '3', '4', '5', '6', '7':
				v, k := 0, 0
				for ; k < 3 && at(i+k) >= '0' && at(i+k) <= '7'; k++ {
					v = v<<3 + int(at(i+k)-'0')
				}
				i += k - 1
				c = byte(v)
			}
		case c == '\'' && at(i+1) == '\'':
			i++
		}
		b = append(b, c)
	}
	b = b[:len(b)-1]
	if i := strings.IndexByte(string(b), 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

// asciiLower lower-cases ASCII letters only, as guc_name_compare compares.
func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}
