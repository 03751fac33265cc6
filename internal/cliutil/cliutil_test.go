package cliutil

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"
)

// prefixRE is the time and pid every line on a non-terminal stderr begins with.
var prefixRE = regexp.MustCompile(`^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} [A-Z][A-Za-z0-9+-]* \[(\d+)\] `)

// Every line, whatever its level, is the time, the pid, the program, then
// the message: warnings say so after the name, failures do not.
func TestLogLinesCarryTimeAndPid(t *testing.T) {
	var buf bytes.Buffer
	log := NewLogger("walship-restore", &buf, slog.LevelInfo)
	log.Info("waiting for the segment to be archived", "file", "000000010000000000000003")
	log.With("repo", "/var/lib/walship").Warn("archive recovery from the repository it archives into", "detail", `say "no"`, "empty", "")
	log.Debug("not written at level INFO")
	printError(&buf, "walship-restore", errors.New("reading 000000010000000000000003: corrupt"), " (aborting recovery)")
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	if len(lines) != 3 {
		t.Fatalf("got %q, want three lines", buf.String())
	}
	wants := []string{`walship-restore: waiting for the segment to be archived file=000000010000000000000003`,
		`walship-restore: WARNING: archive recovery from the repository it archives into repo=/var/lib/walship detail="say \"no\"" empty=""`,
		`walship-restore: reading 000000010000000000000003: corrupt (aborting recovery)`}
	for i, l := range lines {
		m := prefixRE.FindStringSubmatch(l)
		if m == nil || m[1] != fmt.Sprint(os.Getpid()) {
			t.Errorf("line %q does not begin with the time and [%d]", l, os.Getpid())
			continue
		}
		if rest := l[len(m[0]):]; rest != wants[i] {
			t.Errorf("after the prefix: %q, want %q", rest, wants[i])
		}
		if strings.Contains(l, "time=") {
			t.Errorf("line %q has a time attribute besides the prefix", l)
		}
	}
}

func testApp(out *bytes.Buffer) *cli.App {
	flags := RepoFlags()
	cmd := &cli.Command{Name: "ls", Flags: flags, Action: func(c *cli.Context) error {
		return UsageError{Err: errors.New("ls takes no arguments")}
	}}
	return &cli.App{Name: "walship", Writer: out, Commands: []*cli.Command{cmd}}
}

func TestUsageHintNamesTheCommand(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"ls", "--bogus"}, `. Try "walship ls --help"`},
		{[]string{"ls", "x"}, `. Try "walship ls --help"`},
		{[]string{"--bogus"}, `. Try "walship --help"`},
	} {
		err := Run(context.Background(), testApp(&bytes.Buffer{}), tt.args...)
		if got := usageHint("walship", err); got != tt.want {
			t.Errorf("%v: error %v, hint %q, want %q", tt.args, err, got, tt.want)
		}
	}
	if got := usageHint("walship-archive", errors.New("storage down")); got != "" {
		t.Errorf("hint for a failure that is no usage error: %q", got)
	}
	if got := usageHint("walship-archive", fmt.Errorf("config: %w", UsageError{Err: errors.New("x")})); got != `. Try "walship-archive --help"` {
		t.Errorf("hint for a wrapped usage error: %q", got)
	}
}

func TestVersionFlag(t *testing.T) {
	for _, arg := range []string{"-V", "--version"} {
		var out bytes.Buffer
		app := &cli.App{Name: "walship-archive", Writer: &out, Flags: RepoFlags(), Action: func(*cli.Context) error {
			return errors.New("the action ran")
		}}
		if err := Run(context.Background(), app, arg); err != nil {
			t.Errorf("%s: %v", arg, err)
		}
		if !regexp.MustCompile(`^walship-archive \S+ \(commit \S+, go\S+ \S+/\S+\)\n$`).MatchString(out.String()) {
			t.Errorf("%s printed %q", arg, out.String())
		}
	}
	// -v stays --verbose.
	app := &cli.App{Name: "walship-archive", Writer: &bytes.Buffer{}, Flags: RepoFlags(), Action: func(c *cli.Context) error {
		if !c.Bool("verbose") {
			return errors.New("-v is not --verbose")
		}
		return nil
	}}
	if err := Run(context.Background(), app, "-v"); err != nil {
		t.Error(err)
	}
}

func TestHelpCommandOnlyWithCommands(t *testing.T) {
	var out bytes.Buffer
	if err := Run(context.Background(), testApp(&out), "help", "ls"); err != nil || !strings.Contains(out.String(), "walship ls") {
		t.Errorf("walship help ls: %v, printed %q", err, out.String())
	}
	out.Reset()
	app := &cli.App{Name: "walship-archive", Writer: &out, ArgsUsage: "%p %f", Action: func(c *cli.Context) error {
		if c.Args().First() != "help" {
			return errors.New("help was not taken as an argument")
		}
		return nil
	}}
	if err := Run(context.Background(), app, "help"); err != nil || out.Len() != 0 {
		t.Errorf("walship-archive help: %v, printed %q (a program without commands has no help command)", err, out.String())
	}
}
