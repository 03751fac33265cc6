package cliutil

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/urfave/cli/v2"

	"github.com/walship/walship/internal/progress"
)

// Every line a walship program writes to stderr has one format, whatever
// its level: the server's default log_line_prefix ('%m [%p] ': the time to
// the millisecond with its zone, the process id in brackets), the
// program's name, then the message:
//
//	2024-01-02 03:04:05.678 UTC [4242] walship-restore: restored file=000000010000000000000003 bytes=16777216
//	2024-01-02 03:04:05.678 UTC [4242] walship-restore: WARNING: archive recovery from ...
//	2024-01-02 03:04:05.678 UTC [4242] walship-restore: reading 000000010000000000000003: ... (aborting recovery)
//
// The server copies the stderr of archive_command and restore_command into
// its log as it is, without its own prefix; cron mails it and the journal
// keeps it. Warnings and debug lines say their level after the name, as the
// server's own lines do; the one line that reports a failure says none.
// On a terminal the time and pid are left out.

// linePrefix is the time and pid prefix of one line written now.
func linePrefix() string {
	return time.Now().Format("2006-01-02 15:04:05.000 MST") + fmt.Sprintf(" [%d] ", os.Getpid())
}

// onTerminal reports whether w is a terminal, where lines stay bare.
func onTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && progress.IsTerminal(f)
}

// lineHandler is the slog.Handler of that format.
type lineHandler struct {
	w      io.Writer
	mu     *sync.Mutex
	prog   string
	level  slog.Leveler
	prefix bool   // time and pid first
	attrs  string // preformatted " key=value" of With
	group  string // key prefix of WithGroup
}

func (h *lineHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= h.level.Level() }

func (h *lineHandler) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	if h.prefix {
		b.WriteString(linePrefix())
	}
	b.WriteString(h.prog)
	b.WriteString(": ")
	switch {
	case r.Level >= slog.LevelError:
		b.WriteString("ERROR: ")
	case r.Level >= slog.LevelWarn:
		b.WriteString("WARNING: ")
	case r.Level < slog.LevelInfo:
		b.WriteString("DEBUG: ")
	}
	b.WriteString(r.Message)
	b.WriteString(h.attrs)
	r.Attrs(func(a slog.Attr) bool {
		writeAttr(&b, h.group, a)
		return true
	})
	b.WriteByte('\n')
	h.mu.Lock()
	defer h.mu.Unlock()
	_, err := io.WriteString(h.w, b.String())
	return err
}

func (h *lineHandler) WithAttrs(as []slog.Attr) slog.Handler {
	var b strings.Builder
	for _, a := range as {
		writeAttr(&b, h.group, a)
	}
	c := *h
	c.attrs += b.String()
	return &c
}

func (h *lineHandler) WithGroup(name string) slog.Handler {
	c := *h
	c.group += name + "."
	return &c
}

// writeAttr writes " key=value", quoting a value that is empty or holds
// white space, quotes or an equals sign.
func writeAttr(b *strings.Builder, group string, a slog.Attr) {
	a.Value = a.Value.Resolve()
	if a.Equal(slog.Attr{}) {
		return
	}
	if a.Value.Kind() == slog.KindGroup {
		for _, g := range a.Value.Group() {
			writeAttr(b, group+a.Key+".", g)
		}
		return
	}
	v := a.Value.String()
	if v == "" || strings.ContainsFunc(v, func(r rune) bool { return unicode.IsSpace(r) || r == '"' || r == '=' || !unicode.IsPrint(r) }) {
		v = strconv.Quote(v)
	}
	b.WriteString(" " + group + a.Key + "=" + v)
}

// NewLogger returns prog's logger: lines of the format above on w (the
// time and pid left out when w is a terminal), at level and above.
func NewLogger(prog string, w io.Writer, level slog.Leveler) *slog.Logger {
	return slog.New(&lineHandler{w: w, mu: &sync.Mutex{}, prog: prog, level: level, prefix: !onTerminal(w)})
}

// Logger is the logger of the program c runs, on stderr: warnings and
// worse, and everything with --verbose. The mains hand it to the
// libraries they call.
func Logger(c *cli.Context) *slog.Logger {
	return LoggerAt(c, slog.LevelWarn)
}

// LoggerAt is Logger with level as the least that is written without
// --verbose.
func LoggerAt(c *cli.Context, level slog.Level) *slog.Logger {
	if c.Bool("verbose") {
		level = slog.LevelDebug
	}
	return NewLogger(c.App.Name, os.Stderr, level)
}

// printError writes the one line that reports a failure: "prog: cause",
// prefixed like the log lines.
func printError(w io.Writer, prog string, err error, extra string) {
	p := ""
	if !onTerminal(w) {
		p = linePrefix()
	}
	fmt.Fprintf(w, "%s%s: %v%s\n", p, prog, err, extra)
}
