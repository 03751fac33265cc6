// Package cliutil is what every walship binary shares on its command line:
// the repository flags (also read from WALSHIP_* environment variables and
// a --config file), logging, signal handling, and the one-line error report.
package cliutil

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"
	"github.com/urfave/cli/v2/altsrc"

	"github.com/walship/walship/internal/buildinfo"
	"github.com/walship/walship/repo"
	"github.com/walship/walship/storage"
	_ "github.com/walship/walship/storage/local" // the default backend
	"github.com/walship/walship/storage/s3"      // s3://bucket/prefix
)

// RepoFlags are the flags that locate and open a repository. Every one can
// also be set in the config file (TOML, same names: repo = '/var/lib/walship')
// or the environment (WALSHIP_REPO, ...). Command-line flags win over the
// environment, which wins over the file.
func RepoFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "config", Usage: "read settings from this TOML file", EnvVars: []string{"WALSHIP_CONFIG"}, TakesFile: true},
		altsrc.NewStringFlag(&cli.StringFlag{Name: "repo", Usage: "repository: a directory, file:///dir or s3://bucket/prefix", EnvVars: []string{"WALSHIP_REPO"}}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "layout", Value: "auto", Usage: "repository layout: walship, plain (bare files as cp writes them) or auto", EnvVars: []string{"WALSHIP_LAYOUT"}}),
		altsrc.NewDurationFlag(&cli.DurationFlag{Name: "op-timeout", Value: storage.DefaultRetry.OpTimeout, Usage: "give up on one storage call after this long", EnvVars: []string{"WALSHIP_OP_TIMEOUT"}}),
		altsrc.NewDurationFlag(&cli.DurationFlag{Name: "retry-budget", Value: storage.DefaultRetry.Budget, Usage: "retry failing storage calls for at most this long", EnvVars: []string{"WALSHIP_RETRY_BUDGET"}}),
		altsrc.NewBoolFlag(&cli.BoolFlag{Name: "verbose", Aliases: []string{"v"}, Usage: "log what is done, not only failures", EnvVars: []string{"WALSHIP_VERBOSE"}}),
		// S3: credentials come from the standard AWS chain
		// (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE and the
		// shared files, an instance role), never from flags.
		altsrc.NewStringFlag(&cli.StringFlag{Name: "s3-endpoint", Category: "S3", Usage: "URL of an S3-compatible store (default: AWS, or AWS_ENDPOINT_URL_S3)", EnvVars: []string{"WALSHIP_S3_ENDPOINT"}}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "s3-region", Category: "S3", Usage: "S3 region (default: AWS_REGION or the profile's, else us-east-1)", EnvVars: []string{"WALSHIP_S3_REGION"}}),
		altsrc.NewBoolFlag(&cli.BoolFlag{Name: "s3-path-style", Category: "S3", Usage: "address buckets as endpoint/bucket (default: on with --s3-endpoint, off for AWS)", EnvVars: []string{"WALSHIP_S3_PATH_STYLE"}}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "s3-storage-class", Category: "S3", Usage: "storage class of new objects (STANDARD_IA, ...)", EnvVars: []string{"WALSHIP_S3_STORAGE_CLASS"}}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "s3-sse", Category: "S3", Usage: "server-side encryption: AES256 or aws:kms", EnvVars: []string{"WALSHIP_S3_SSE"}}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "s3-sse-kms-key-id", Category: "S3", Usage: "KMS key for --s3-sse aws:kms (default: the account's S3 key)", EnvVars: []string{"WALSHIP_S3_SSE_KMS_KEY_ID"}}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "s3-profile", Category: "S3", Usage: "profile in the shared AWS config files (default: AWS_PROFILE)", EnvVars: []string{"WALSHIP_S3_PROFILE"}}),
		// Encryption (age): readers need the secret keys (identities);
		// writers need only the public recipients (WriterFlags).
		altsrc.NewStringFlag(&cli.StringFlag{Name: "identity", Category: "Encryption", EnvVars: []string{"WALSHIP_IDENTITY"}, TakesFile: true,
			Usage: "decrypt with the age secret keys in this file (mode 0600, owned by the user running); needed to read an encrypted repository, never to write one"}),
	}
}

// WriterFlags are the flags of the programs that store new objects
// (walship-archive, walship backup create): the public keys they encrypt
// to.
func WriterFlags() []cli.Flag {
	return []cli.Flag{
		altsrc.NewStringSliceFlag(&cli.StringSliceFlag{Name: "recipient", Category: "Encryption", EnvVars: []string{"WALSHIP_RECIPIENT"},
			Usage: "encrypt new objects to this age public key (age1...; repeatable); a repository is encrypted or not from its first segment on"}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "recipients-file", Category: "Encryption", EnvVars: []string{"WALSHIP_RECIPIENTS_FILE"}, TakesFile: true,
			Usage: "encrypt new objects to the age public keys in this file (one per line)"}),
	}
}

// S3Options are the --s3-* settings as storage options for the s3 backend.
func S3Options(c *cli.Context) storage.Options {
	opts := storage.Options{}
	for _, name := range []string{"endpoint", "region", "storage-class", "sse", "sse-kms-key-id", "profile"} {
		if v := c.String("s3-" + name); v != "" {
			opts[name] = v
		}
	}
	if c.IsSet("s3-path-style") {
		opts["path-style"] = strconv.FormatBool(c.Bool("s3-path-style"))
	}
	return opts
}

// Open is what a program asks of the repository it opens, besides what
// the flags say.
type Open struct {
	// Create lets it create the repository (archiving, backups).
	Create bool
	// Compress is the codec asked for new segments ("": the repository's).
	Compress repo.Codec
	// Cache, when set, makes the identity cache for the backend's location.
	Cache func(location string) repo.IdentityCache
	// Log is what the storage logs through (nil: Logger(c)).
	Log *slog.Logger
}

// OpenRepo opens the repository the flags name, wrapped in the retry
// policy, once and for all: the Repo's settings come from the flags and o.
func OpenRepo(c *cli.Context, o Open) (*repo.Repo, error) {
	layout, err := repo.ParseLayout(c.String("layout"))
	if err != nil {
		return nil, UsageError{Err: err}
	}
	if c.String("repo") == "" {
		return nil, UsageError{Err: fmt.Errorf("no repository given: use --repo, WALSHIP_REPO or repo in the config file")}
	}
	log := o.Log
	if log == nil {
		log = Logger(c)
	}
	b, err := storage.Open(c.Context, c.String("repo"), S3Options(c), log)
	if err != nil {
		return nil, UsageError{Err: err}
	}
	keys, err := Keys(c)
	if err != nil {
		return nil, err
	}
	p := storage.DefaultRetry
	p.OpTimeout, p.Budget, p.Log = c.Duration("op-timeout"), c.Duration("retry-budget"), log
	ro := repo.Options{Layout: layout, Create: o.Create, Compress: o.Compress, Keys: keys}
	if o.Cache != nil {
		ro.Cache = o.Cache(storage.Place(b))
	}
	return repo.New(storage.WithRetry(b, p), ro), nil
}

// Keys loads the encryption settings: recipients (--recipient,
// --recipients-file) and identities (--identity).
func Keys(c *cli.Context) (repo.Keys, error) {
	var files []string
	if f := c.String("recipients-file"); f != "" {
		files = append(files, f)
	}
	var k repo.Keys
	var err error
	if k.Recipients, err = repo.ParseRecipients(c.StringSlice("recipient"), files); err != nil {
		return repo.Keys{}, UsageError{fmt.Errorf("--recipient/--recipients-file: %w", err)}
	}
	if f := c.String("identity"); f != "" {
		if k.Identities, err = repo.LoadIdentities(f); err != nil {
			return repo.Keys{}, fmt.Errorf("--identity: %w", err)
		}
	}
	return k, nil
}

// RepoArgs passes the repository settings the program was given (flags,
// environment or config file) on to walship-restore, explicitly, for a
// restore_command: the server that runs it has neither this environment
// nor this working directory, so paths are made absolute.
func RepoArgs(c *cli.Context) []string {
	var args []string
	for _, f := range RepoFlags() {
		name := f.Names()[0]
		if name == "verbose" || !c.IsSet(name) {
			continue
		}
		v := fmt.Sprint(c.Value(name))
		if (name == "repo" || name == "config" || name == "identity") && v != "" && !strings.Contains(v, "://") {
			if abs, err := filepath.Abs(v); err == nil {
				v = abs
			}
		}
		args = append(args, "--"+name+"="+v)
	}
	return args
}

// hint names the setting that mends an error the libraries report in
// their own terms.
func hint(err error) string {
	switch {
	case errors.Is(err, s3.ErrWrongRegion):
		return " (set --s3-region)"
	case errors.Is(err, s3.ErrNoCredentials):
		return " (or --s3-profile)"
	case errors.Is(err, repo.ErrEncryption):
		return " (--recipient or --recipients-file to write, --identity to read)"
	}
	return ""
}

// UsageError marks a mistake in how the program was called. Main follows
// its line with a hint to the program's (or the command's) --help.
type UsageError struct{ Err error }

func (e UsageError) Error() string { return e.Err.Error() }
func (e UsageError) Unwrap() error { return e.Err }

// inCommand is an error of one command of a program with commands
// (walship ls): its usage hint names the command's --help.
type inCommand struct {
	err  error
	path string // "walship ls"
}

func (e inCommand) Error() string { return e.err.Error() }
func (e inCommand) Unwrap() error { return e.err }

// usageHint is what follows the line of a usage error.
func usageHint(prog string, err error) string {
	var usage UsageError
	if !errors.As(err, &usage) {
		return ""
	}
	var in inCommand
	if errors.As(err, &in) {
		prog = in.path
	}
	return fmt.Sprintf(`. Try "%s --help"`, prog)
}

// Quiet marks an error that is an ordinary answer rather than a failure
// (restore's "not in the archive"): it sets the exit status but prints
// nothing, since PostgreSQL probes for files that do not exist all the time.
type Quiet struct{ Err error }

func (e Quiet) Error() string { return e.Err.Error() }
func (e Quiet) Unwrap() error { return e.Err }

// Args returns exactly n positional arguments or a usage error naming them.
func Args(c *cli.Context, names ...string) ([]string, error) {
	if c.NArg() != len(names) {
		return nil, UsageError{Err: fmt.Errorf("expected %d arguments (%v), got %d: usage: %s %s", len(names), names, c.NArg(), c.App.Name, c.App.ArgsUsage)}
	}
	return c.Args().Slice(), nil
}

func init() {
	// -v is --verbose in every walship program; the version is -V.
	cli.VersionFlag = &cli.BoolFlag{Name: "version", Aliases: []string{"V"}, Usage: "print the version and exit"}
	cli.VersionPrinter = func(c *cli.Context) { fmt.Fprintln(c.App.Writer, buildinfo.String(c.App.Name)) }
}

// prepare sets what Main and Run share: the version from the build, errors
// returned rather than printed with the help text, and for a program with
// commands a help command (walship help ls) and usage errors that name
// the command.
func prepare(app *cli.App) *cli.App {
	if app.Version == "" {
		app.Version = buildinfo.Version()
	}
	app.HideHelpCommand = len(app.Commands) == 0
	app.ExitErrHandler = func(*cli.Context, error) {} // Main prints and exits
	if app.OnUsageError == nil {
		// A bad flag is one line like any other error, not the help text.
		app.OnUsageError = func(_ *cli.Context, err error, _ bool) error { return UsageError{Err: err} }
	}
	tagCommands(app.Name, app.Commands)
	return app
}

// tagCommands makes the usage errors of every command (and of its own
// commands, walship backup create) name it: their hint is its --help.
func tagCommands(parent string, cmds []*cli.Command) {
	for _, cmd := range cmds {
		path := parent + " " + cmd.Name
		tag := func(err error) error {
			if err != nil {
				return inCommand{err, path}
			}
			return nil
		}
		if own := cmd.OnUsageError; own != nil {
			cmd.OnUsageError = func(c *cli.Context, err error, sub bool) error { return tag(own(c, err, sub)) }
		} else {
			cmd.OnUsageError = func(_ *cli.Context, err error, _ bool) error { return tag(UsageError{Err: err}) }
		}
		if before := cmd.Before; before != nil {
			cmd.Before = func(c *cli.Context) error { return tag(before(c)) }
		}
		if action := cmd.Action; action != nil {
			cmd.Action = func(c *cli.Context) error { return tag(action(c)) }
		}
		tagCommands(path, cmd.Subcommands)
	}
}

// Run runs app in this process with the arguments after the program name
// and returns its error, for tests of a whole command line.
func Run(ctx context.Context, app *cli.App, args ...string) error {
	return prepare(app).RunContext(ctx, append([]string{app.Name}, args...))
}

// Main runs app with a context that ends on SIGINT, SIGTERM or SIGHUP (a
// closed terminal), prints a failure as one line on stderr, and exits with
// the code exitCode picks for the error. When a signal ended the run, the process dies of that same
// signal after cleaning up, so PostgreSQL sees what it sent (it treats a
// restore_command killed by SIGTERM as a shutdown, not as "not found");
// if the run does not end within a grace period of the signal (a call
// blocked in the kernel, such as an open of a FIFO), it dies at once.
func Main(app *cli.App, exitCode func(error) int) {
	if manPage != nil { // a man-page generator (make man), not the program
		manPage(prepare(app))
		return
	}
	// These processes live for milliseconds and allocate little: collecting
	// garbage costs more than it frees. Collect only near a memory bound.
	debug.SetGCPercent(-1)
	debug.SetMemoryLimit(512 << 20)
	ctx, cancel := context.WithCancel(context.Background())
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	// The server's immediate shutdown sends SIGQUIT: leave at once, without
	// the goroutine dump Go would write into the server log.
	quit := make(chan os.Signal, 1)
	signal.Notify(quit, syscall.SIGQUIT)
	go func() {
		<-quit
		os.Exit(128 + int(syscall.SIGQUIT))
	}()
	done := make(chan error, 1)
	go func() { done <- prepare(app).RunContext(ctx, os.Args) }()
	var err error
	select {
	case err = <-done:
	case sig := <-sigs:
		cancel()
		if daemon.Load() {
			err = <-done // it stops cleanly, as long as that takes
			break
		}
		select {
		case <-done: // cleaned up
		case <-time.After(signalGrace):
		}
		dieBy(sig)
	}
	cancel()
	var quiet Quiet
	if err != nil && !errors.As(err, &quiet) {
		printError(os.Stderr, app.Name, err, hint(err)+usageHint(app.Name, err))
	}
	os.Exit(exitCode(err))
}

// daemon is set by a long-running command that stops cleanly on SIGTERM
// and SIGINT (walship receive): Main then waits for it and exits with the
// code of its error, not by the signal.
var daemon atomic.Bool

// Daemon says that the running command is a daemon (see daemon).
func Daemon() { daemon.Store(true) }

// manPage is set in a build with the tag mangen (man.go): the program
// then writes its man page instead of running.
var manPage func(*cli.App)

// signalGrace is how long a run may take to clean up after SIGTERM.
const signalGrace = time.Second

// dieBy ends the process with the default action of sig.
func dieBy(sig os.Signal) {
	signal.Reset(sig)
	if p, err := os.FindProcess(os.Getpid()); err == nil {
		p.Signal(sig)
		time.Sleep(time.Second) // the default action ends us here
	}
	os.Exit(128 + int(sig.(syscall.Signal)))
}
