package cliutil

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/walship/walship/internal/progress"
)

// The server copies the stderr of archive_command and restore_command into
// its log as it is, without its log_line_prefix. So every line walship
// writes to stderr that is not a terminal starts as the server's default
// prefix ('%m [%p] ') does: the time to the millisecond with its zone, and
// the process id in brackets. On a terminal the lines stay bare.

// linePrefix is the time and pid prefix of one line written now.
func linePrefix() string {
	return time.Now().Format("2006-01-02 15:04:05.000 MST") + fmt.Sprintf(" [%d] ", os.Getpid())
}

// prefixWriter puts linePrefix before every Write: slog handlers write
// each record with one call.
type prefixWriter struct{ w io.Writer }

func (p prefixWriter) Write(b []byte) (int, error) {
	if _, err := io.WriteString(p.w, linePrefix()+string(b)); err != nil {
		return 0, err
	}
	return len(b), nil
}

// logWriter is w, prefixed unless it is a terminal.
func logWriter(w io.Writer) io.Writer {
	if f, ok := w.(*os.File); ok && progress.IsTerminal(f) {
		return w
	}
	return prefixWriter{w}
}

// NewLogger returns prog's logger: slog text lines on w (prefixed with the
// time and pid unless w is a terminal) that name the program, with no
// time attribute of their own.
func NewLogger(prog string, w io.Writer, level slog.Leveler) *slog.Logger {
	h := slog.NewTextHandler(logWriter(w), &slog.HandlerOptions{Level: level, ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
		if len(groups) == 0 && a.Key == slog.TimeKey {
			return slog.Attr{}
		}
		return a
	}})
	return slog.New(h).With("prog", prog)
}

// SetLogger makes NewLogger(prog, w, level) the default logger.
func SetLogger(prog string, w io.Writer, level slog.Level) {
	slog.SetDefault(NewLogger(prog, w, level))
}

// printError writes the one line that reports a failure: "prog: cause",
// prefixed like the log lines.
func printError(w io.Writer, prog string, err error, extra string) {
	fmt.Fprintf(logWriter(w), "%s: %v%s\n", prog, err, extra)
}
