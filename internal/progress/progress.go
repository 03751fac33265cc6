// Package progress draws a one-line progress bar on stderr for long runs
// (pruning thousands of objects, verifying a whole archive). It draws only
// when stderr is a terminal: under cron, systemd or PostgreSQL the output is
// a log, and a bar would only fill it with carriage returns.
package progress

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"
)

// Bar counts units of work done out of a known total. A nil *Bar is valid
// and does nothing, so callers need no checks.
type Bar struct {
	mu    sync.Mutex
	w     io.Writer
	label string
	unit  string // "files" or "bytes"
	total int64
	done  int64
	last  time.Time
	drawn bool
}

// IsTerminal reports whether f is a character device (a terminal), the
// only place a progress bar belongs.
func IsTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// New returns a bar on stderr when stderr is a terminal, else nil. unit is
// "bytes" (shown in MiB/GiB) or a plural noun for counts ("files").
func New(label, unit string, total int64) *Bar {
	if !IsTerminal(os.Stderr) || total <= 0 {
		return nil
	}
	return NewTo(os.Stderr, label, unit, total)
}

// NewTo returns a bar that draws on w whatever w is (for tests).
func NewTo(w io.Writer, label, unit string, total int64) *Bar {
	return &Bar{w: w, label: label, unit: unit, total: total}
}

// Add records n more units done and redraws at most ten times a second.
func (b *Bar) Add(n int64) {
	if b == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.done += n
	if now := time.Now(); now.Sub(b.last) >= 100*time.Millisecond || b.done >= b.total {
		b.last = now
		b.draw()
	}
}

// Done clears the bar's line so that what follows starts on a clean one.
func (b *Bar) Done() {
	if b == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.drawn {
		fmt.Fprintf(b.w, "\r%s\r", strings.Repeat(" ", 79))
		b.drawn = false
	}
}

const width = 30

func (b *Bar) draw() {
	done := min(b.done, b.total)
	fill := int(done * width / b.total)
	bar := strings.Repeat("=", fill) + strings.Repeat(" ", width-fill)
	if fill > 0 && fill < width {
		bar = bar[:fill-1] + ">" + bar[fill:]
	}
	var count string
	if b.unit == "bytes" {
		count = Bytes(done) + " / " + Bytes(b.total)
	} else {
		count = fmt.Sprintf("%d / %d %s", done, b.total, b.unit)
	}
	fmt.Fprintf(b.w, "\r%s [%s] %3d%% %s", b.label, bar, done*100/b.total, count)
	b.drawn = true
}

// Bytes formats a byte count with binary units (12.3 MiB).
func Bytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 5; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
