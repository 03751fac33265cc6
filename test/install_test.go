package test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/walship/walship/internal/testenv/pgtest"
)

// programs are walship's binaries.
var programs = []string{"walship", "walship-archive", "walship-restore", "walship-prune", "walship-rewind"}

// TestVersionHelpAndUsageHints: every program prints one version line for
// -V and --version, a usage error is one line (for the server log) that
// ends with the hint to the program's --help and its exit status is the
// table's (walship-restore's is 255: a misconfigured restore_command must
// not end recovery), and walship has a help command.
func TestVersionHelpAndUsageHints(t *testing.T) {
	versionRE := regexp.MustCompile(`^(walship[a-z-]*) \S+ \(commit \S+, go\S+ linux/\S+\)\n$`)
	for _, prog := range programs {
		for _, flag := range []string{"-V", "--version"} {
			r := walship(t, runOpts{}, prog, flag)
			if m := versionRE.FindStringSubmatch(r.stdout); r.code != 0 || m == nil || m[1] != prog || r.stderr != "" {
				t.Errorf("%s %s: %s, want exit 0 and one line %q", prog, flag, r, prog+" VERSION (commit ..., go... linux/...)")
			}
		}
		code := 2
		if prog == "walship-restore" {
			code = 255
		}
		hint := `. Try "` + prog + ` --help"`
		r := walship(t, runOpts{}, prog, "--no-such-flag")
		wantOneLine(t, prog+" --no-such-flag", r, []int{code}, prog, "-no-such-flag", hint)
		if !strings.HasSuffix(r.stderr, hint+"\n") {
			t.Errorf("%s --no-such-flag: stderr %q does not end with %q", prog, r.stderr, hint)
		}
	}
	r := walship(t, runOpts{}, "walship", "verify", "--no-such-flag")
	wantOneLine(t, "walship verify --no-such-flag", r, []int{2}, "walship", `. Try "walship verify --help"`)
	r = walship(t, runOpts{}, "walship-archive", "only-one-argument")
	wantOneLine(t, "walship-archive with one argument", r, []int{2}, "walship-archive", "expected 2 arguments", `. Try "walship-archive --help"`)

	r = walship(t, runOpts{}, "walship", "help")
	for _, cmd := range []string{"ls", "status", "verify"} {
		if r.code != 0 || !strings.Contains(r.stdout, "   "+cmd+" ") {
			t.Errorf("walship help: %s, want exit 0 and the command %s listed", r, cmd)
		}
	}
	r = walship(t, runOpts{}, "walship", "help", "verify")
	if r.code != 0 || !strings.Contains(r.stdout, "--full") {
		t.Errorf("walship help verify: %s, want exit 0 and verify's flags", r)
	}
}

// TestMakeInstall runs make install into a scratch root: the binaries
// built with the version and commit from git, a man page per program
// generated from its command definitions (with the exit status table),
// the documents, and the contrib examples with the binaries' paths under
// the prefix; the runtime binaries carry no man-page renderer.
func TestMakeInstall(t *testing.T) {
	root, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatal(err)
	}
	src := filepath.Dir(strings.TrimSpace(string(root)))
	if _, err := exec.LookPath("make"); err != nil {
		if pgtest.InCI() {
			t.Fatal("make is required in CI")
		}
		t.Skip("no make")
	}
	scratch := t.TempDir()
	dest := filepath.Join(scratch, "root")
	cmd := exec.Command("make", "-C", src, "install", "BIN="+filepath.Join(scratch, "bin"), "DESTDIR="+dest, "PREFIX=/opt/walship",
		"VERSION=9.8.7-test", "COMMIT=0123456789ab")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make install: %v\n%s", err, out)
	}
	prefix := filepath.Join(dest, "opt/walship")
	for _, prog := range programs {
		bin := filepath.Join(prefix, "bin", prog)
		out, err := exec.Command(bin, "-V").Output()
		if want := prog + " 9.8.7-test (commit 0123456789ab, "; err != nil || !strings.HasPrefix(string(out), want) {
			t.Errorf("%s -V: %q, %v; want it to start %q", bin, out, err, want)
		}
		deps, err := exec.Command("go", "version", "-m", bin).Output()
		if err != nil {
			t.Fatal(err)
		}
		for _, doc := range []string{"go-md2man", "blackfriday"} {
			if strings.Contains(string(deps), doc) {
				t.Errorf("%s links %s: the runtime binaries must be built with urfave_cli_no_docs", bin, doc)
			}
		}
		man, err := os.ReadFile(filepath.Join(prefix, "share/man/man1", prog+".1"))
		if err != nil {
			t.Errorf("no man page: %v", err)
			continue
		}
		for _, want := range []string{".TH " + prog + ` 1 "" "walship 9.8.7-test"`, "EXIT STATUS", "--config", "9.8.7-test"} {
			if !strings.Contains(string(man), want) {
				t.Errorf("%s.1 lacks %q", prog, want)
			}
		}
		renderedManPage(t, filepath.Join(prefix, "share/man/man1", prog+".1"))
	}
	for _, f := range []string{"README.md", "CHANGELOG.md", "LICENSE", "docs/archiving.md", "docs/BENCHMARKS.md", "contrib/walship.toml", "contrib/cron/walship-prune",
		"contrib/systemd/walship-prune.service", "contrib/systemd/walship-verify.timer"} {
		if _, err := os.Stat(filepath.Join(prefix, "share/doc/walship", f)); err != nil {
			t.Errorf("not installed: %v", err)
		}
	}
	unit, _ := os.ReadFile(filepath.Join(prefix, "share/doc/walship/contrib/systemd/walship-prune.service"))
	if !strings.Contains(string(unit), "ExecStart=/opt/walship/bin/walship-prune ") || strings.Contains(string(unit), "/usr/local/bin") {
		t.Errorf("installed walship-prune.service does not run the installed binary:\n%s", unit)
	}
}

// renderedManPage renders a man page as a reader sees it (man -l, 100
// columns) and checks what the markdown to roff conversion used to
// mangle: the underscores of the environment variables (read as
// emphasis, WALSHIP_CONFIG came out as "WALSHIPCONFIG"), and options
// split by hyphenation ("--con-" / "fig").
func renderedManPage(t *testing.T, page string) {
	t.Helper()
	if _, err := exec.LookPath("man"); err != nil {
		if pgtest.InCI() {
			t.Fatal("man (Debian's man-db) is required in CI: .ci/run installs it")
		}
		t.Log("no man: the man pages are not rendered")
		return
	}
	cmd := exec.Command("man", "-l", page)
	cmd.Env = append(os.Environ(), "MANWIDTH=100", "MANPAGER=cat", "PAGER=cat", "MAN_KEEP_FORMATTING=")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("man -l %s: %v", page, err)
	}
	text := strings.Join(strings.Fields(string(out)), " ")
	for _, want := range []string{"WALSHIP_CONFIG names", "environment as WALSHIP_ and the name", "(WALSHIP_REPO, WALSHIP_OP_TIMEOUT)", "EXIT STATUS"} {
		if !strings.Contains(text, want) {
			t.Errorf("man -l %s does not show %q:\n%s", filepath.Base(page), want, out)
		}
	}
	for _, line := range strings.Split(string(out), "\n") {
		if strings.HasSuffix(line, "\u2010") { // groff's hyphenation mark
			t.Errorf("man -l %s hyphenates a word at the end of a line: %q", filepath.Base(page), line)
		}
	}
}
