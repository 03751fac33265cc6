package main

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestSummaryLines: a pass is one line, a skip its line and reason, a
// failure its whole output with its subtests', package lines as they
// come, and a closing count.
func TestSummaryLines(t *testing.T) {
	stream := `{"Action":"start","Package":"p"}
{"Action":"run","Package":"p","Test":"TestA"}
{"Action":"output","Package":"p","Test":"TestA","Output":"=== RUN   TestA\n"}
{"Action":"output","Package":"p","Test":"TestA","Output":"    a_test.go:3: quiet on success\n"}
{"Action":"output","Package":"p","Test":"TestA","Output":"--- PASS: TestA (0.50s)\n"}
{"Action":"pass","Package":"p","Test":"TestA","Elapsed":0.5}
{"Action":"run","Package":"p","Test":"TestB"}
{"Action":"output","Package":"p","Test":"TestB","Output":"=== RUN   TestB\n"}
{"Action":"output","Package":"p","Test":"TestB/sub","Output":"    b_test.go:9: got 1, want 2\n"}
{"Action":"fail","Package":"p","Test":"TestB/sub","Elapsed":0.1}
{"Action":"output","Package":"p","Test":"TestB","Output":"--- FAIL: TestB (0.20s)\n"}
{"Action":"fail","Package":"p","Test":"TestB","Elapsed":0.2}
{"Action":"output","Package":"p","Test":"TestC","Output":"    c_test.go:2: no PostgreSQL\n"}
{"Action":"skip","Package":"p","Test":"TestC"}
{"Action":"output","Package":"p","Output":"FAIL\n"}
{"Action":"output","Package":"p","Output":"FAIL\tp\t0.7s\n"}
{"Action":"fail","Package":"p","Elapsed":0.7}
not json: printed as is
`
	var out strings.Builder
	s := newSummary(&out)
	if err := s.read(strings.NewReader(stream)); err != nil {
		t.Fatal(err)
	}
	s.close()
	want := `ok   p TestA (0.50s)
FAIL p TestB (0.20s)
=== RUN   TestB
    b_test.go:9: got 1, want 2
--- FAIL: TestB (0.20s)
skip p TestC
    c_test.go:2: no PostgreSQL
FAIL
FAIL	p	0.7s
not json: printed as is
1 passed, 1 failed, 1 skipped
`
	if got := out.String(); got != want {
		t.Errorf("summary:\n%s\nwant:\n%s", got, want)
	}
}

// TestExitStatus runs testsum on a module with a failing test: the
// failure's output is shown, go test's closing line too, and the exit
// status is go test's.
func TestExitStatus(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs go test")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "testsum")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	mod := filepath.Join(dir, "m")
	write := func(name, text string) {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(mod, name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(mod, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("go.mod", "module m\n\ngo 1.21\n")
	write("good/good_test.go", "package good\n\nimport \"testing\"\n\nfunc TestGood(t *testing.T) {}\n")
	write("bad/bad_test.go", "package bad\n\nimport \"testing\"\n\nfunc TestBad(t *testing.T) { t.Log(\"the whole story\"); t.Fatal(\"it broke\") }\n")

	run := func(pkgs ...string) (string, int) {
		cmd := exec.Command(bin, append([]string{"go", "test", "-count=1"}, pkgs...)...)
		cmd.Dir = mod
		cmd.Env = append(os.Environ(), "GOFLAGS=", "GOWORK=off")
		out, err := cmd.CombinedOutput()
		var exitErr *exec.ExitError
		switch {
		case err == nil:
			return string(out), 0
		case errors.As(err, &exitErr):
			return string(out), exitErr.ExitCode()
		}
		t.Fatalf("testsum: %v\n%s", err, out)
		return "", 0
	}
	out, code := run("./...")
	if code != 1 {
		t.Errorf("exit %d, want 1 (go test's):\n%s", code, out)
	}
	for _, want := range []string{"ok   m/good TestGood", "FAIL m/bad TestBad", "the whole story", "it broke", "FAIL\tm/bad", "ok  \tm/good", "1 passed, 1 failed, 0 skipped"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if out, code := run("./good"); code != 0 || !strings.Contains(out, "1 passed, 0 failed, 0 skipped") {
		t.Errorf("passing package: exit %d, want 0:\n%s", code, out)
	}
	// A package that does not build fails, with the compiler's message.
	write("broken/broken_test.go", "package broken\n\nimport \"testing\"\n\nfunc TestX(t *testing.T) { undefinedThing() }\n")
	if out, code := run("./broken"); code == 0 || !strings.Contains(out, "undefinedThing") {
		t.Errorf("broken package: exit %d, want non-zero and the compiler's error:\n%s", code, out)
	}
}
