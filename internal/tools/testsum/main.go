// Command testsum runs go test with -json and shows each test as it
// finishes, so that a long end-to-end package does not look hung:
//
//	go run ./internal/tools/testsum go test -count=1 ./...
//
// A passing test is one line (ok, package, test, seconds); a skipped test
// is its line and the reason it gave; a failing test prints its whole
// output, subtests included, as go test -v would. The package lines of go
// test (ok, FAIL, build errors, output outside any test) are printed as
// they come, and a closing line counts the tests. testsum exits with go
// test's exit status (1 if go test exited 0 although a test failed).
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// event is one line of go test -json (cmd/test2json's TestEvent, and the
// BuildEvent of build output).
type event struct {
	Action     string
	Package    string
	Test       string
	Elapsed    float64
	Output     string
	ImportPath string
}

func main() {
	if len(os.Args) < 3 || filepath.Base(os.Args[1]) != "go" || os.Args[2] != "test" {
		fmt.Fprintln(os.Stderr, "usage: testsum go test [go test flags] [packages]")
		os.Exit(2)
	}
	args := append([]string{"test", "-json"}, os.Args[3:]...)
	cmd := exec.Command(os.Args[1], args...)
	cmd.Stdin, cmd.Stderr = os.Stdin, os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		fmt.Fprintln(os.Stderr, "testsum:", err)
		os.Exit(2)
	}
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "testsum:", err)
		os.Exit(2)
	}
	s := newSummary(os.Stdout)
	if err := s.read(out); err != nil {
		fmt.Fprintln(os.Stderr, "testsum:", err)
	}
	err = cmd.Wait()
	s.close()
	var exitErr *exec.ExitError
	switch {
	case errors.As(err, &exitErr):
		os.Exit(exitErr.ExitCode())
	case err != nil:
		fmt.Fprintln(os.Stderr, "testsum:", err)
		os.Exit(2)
	case s.failed > 0:
		os.Exit(1)
	}
}

// summary turns the events into lines. Output of a test is held until the
// top-level test it belongs to ends, and printed only if it failed (or,
// for a skip, the reason).
type summary struct {
	w                       io.Writer
	held                    map[string]*strings.Builder // package + top-level test -> output
	passed, failed, skipped int
}

func newSummary(w io.Writer) *summary {
	return &summary{w: w, held: map[string]*strings.Builder{}}
}

// read handles every line of r: JSON events, and any other line as is.
func (s *summary) read(r io.Reader) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for sc.Scan() {
		line := sc.Bytes()
		var e event
		if len(line) == 0 || line[0] != '{' || json.Unmarshal(line, &e) != nil {
			fmt.Fprintf(s.w, "%s\n", line)
			continue
		}
		s.handle(e)
	}
	return sc.Err()
}

// key names the top-level test an event belongs to.
func key(e event) string {
	top, _, _ := strings.Cut(e.Test, "/")
	return e.Package + "\x00" + top
}

func (s *summary) handle(e event) {
	switch {
	case e.Action == "build-output":
		fmt.Fprint(s.w, e.Output)
	case e.Test == "" && e.Action == "output":
		fmt.Fprint(s.w, e.Output) // ok, FAIL, PASS, and output outside any test
	case e.Test == "" && e.Action == "fail":
		// The package failed: whatever its unfinished tests printed (a
		// panic, a timeout) is shown.
		for k, b := range s.held {
			if strings.HasPrefix(k, e.Package+"\x00") {
				fmt.Fprint(s.w, b.String())
				delete(s.held, k)
			}
		}
	case e.Test == "":
	case e.Action == "output":
		b := s.held[key(e)]
		if b == nil {
			b = &strings.Builder{}
			s.held[key(e)] = b
		}
		b.WriteString(e.Output)
	case strings.Contains(e.Test, "/"):
		// A subtest's end: its parent's end reports it.
	case e.Action == "pass":
		s.passed++
		fmt.Fprintf(s.w, "ok   %s %s (%.2fs)\n", e.Package, e.Test, e.Elapsed)
		delete(s.held, key(e))
	case e.Action == "skip":
		s.skipped++
		fmt.Fprintf(s.w, "skip %s %s\n", e.Package, e.Test)
		if b := s.held[key(e)]; b != nil {
			for _, l := range strings.SplitAfter(b.String(), "\n") {
				if strings.HasPrefix(l, "    ") { // the reason: t.Skip's line
					fmt.Fprint(s.w, l)
				}
			}
		}
		delete(s.held, key(e))
	case e.Action == "fail":
		s.failed++
		fmt.Fprintf(s.w, "FAIL %s %s (%.2fs)\n", e.Package, e.Test, e.Elapsed)
		if b := s.held[key(e)]; b != nil {
			fmt.Fprint(s.w, b.String())
		}
		delete(s.held, key(e))
	}
}

// close prints what is still held (a run cut short) and the count.
func (s *summary) close() {
	for _, b := range s.held {
		fmt.Fprint(s.w, b.String())
	}
	s.held = map[string]*strings.Builder{}
	fmt.Fprintf(s.w, "%d passed, %d failed, %d skipped\n", s.passed, s.failed, s.skipped)
}
