package progress

import (
	"bytes"
	"strings"
	"testing"
)

func TestBytes(t *testing.T) {
	for n, want := range map[int64]string{
		0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 1536: "1.5 KiB",
		16 << 20: "16.0 MiB", 3 << 30: "3.0 GiB", 5 << 40: "5.0 TiB",
	} {
		if got := Bytes(n); got != want {
			t.Errorf("Bytes(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestBarDrawsAndClears(t *testing.T) {
	var buf bytes.Buffer
	b := NewTo(&buf, "verify", "files", 4)
	b.Add(1) // first Add always draws
	if got := buf.String(); !strings.Contains(got, "1 / 4 files") || !strings.Contains(got, " 25%") {
		t.Errorf("after 1 of 4: %q", got)
	}
	b.Add(3) // reaching the total always draws
	if got := buf.String(); !strings.Contains(got, "4 / 4 files") || !strings.Contains(got, "100%") {
		t.Errorf("after 4 of 4: %q", got)
	}
	n := buf.Len()
	b.Done()
	if tail := buf.String()[n:]; !strings.HasPrefix(tail, "\r") || strings.TrimSpace(tail) != "" {
		t.Errorf("Done wrote %q, want the line blanked", tail)
	}
}

func TestBarBytesAndOverflow(t *testing.T) {
	var buf bytes.Buffer
	b := NewTo(&buf, "prune", "bytes", 2<<20)
	b.Add(4 << 20) // more than announced must not draw past 100%
	if got := buf.String(); !strings.Contains(got, "2.0 MiB / 2.0 MiB") || !strings.Contains(got, "100%") {
		t.Errorf("bar = %q", got)
	}
}

func TestNilBar(t *testing.T) {
	var b *Bar
	b.Add(1)
	b.Done() // must not panic
}
