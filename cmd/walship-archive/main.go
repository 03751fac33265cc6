// Command walship-archive is an archive_command: it stores one WAL file in a
// walship repository, durably and create-only.
//
//	archive_command = 'walship-archive --repo /var/lib/walship %p %f'
package main

import (
	"errors"
	"fmt"

	"github.com/urfave/cli/v2"
	"github.com/urfave/cli/v2/altsrc"

	"github.com/walship/walship/archive"
	"github.com/walship/walship/internal/cliutil"
	"github.com/walship/walship/repo"
	"github.com/walship/walship/storage"
	"github.com/walship/walship/wal"
)

func main() { cliutil.Main(newApp(), exitCode) }

// newApp defines the command line.
func newApp() *cli.App {
	flags := append(append(cliutil.RepoFlags(), cliutil.WriterFlags()...),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "compress", Value: "lz4", EnvVars: []string{"WALSHIP_COMPRESS"},
			Usage: "lz4 or none: how a new repository stores segments (recorded in walship.json; a repository keeps its own, and a different one asked for is refused)"}),
		altsrc.NewIntFlag(&cli.IntFlag{Name: "parallel", Value: 1, EnvVars: []string{"WALSHIP_PARALLEL"},
			Usage: "push up to N files at once: %f and the next ones PostgreSQL has marked ready; later calls for those return after a cheap check"}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "spool", EnvVars: []string{"WALSHIP_SPOOL"},
			Usage: "directory (outside the data directory) where --parallel remembers what it pushed ahead"}),
	)
	return &cli.App{
		Name:      "walship-archive",
		Usage:     "archive one WAL file (PostgreSQL archive_command)",
		ArgsUsage: "%p %f",
		Description: "PostgreSQL runs it for every WAL file to archive, from postgresql.conf:\n\n" +
			"    archive_mode = on\n" +
			"    archive_command = '/usr/local/bin/walship-archive --config /etc/walship/walship.toml %p %f'\n\n" +
			"It exits 0 only when the file is durably in the repository (or was already, with identical content); " +
			"different content under the same name, or WAL of another cluster, is refused and never overwrites what is stored. " +
			"Any other status makes PostgreSQL keep the file and call it again.",
		Flags:  flags,
		Before: cliutil.Before(flags),
		Action: run,
	}
}

func run(c *cli.Context) error {
	args, err := cliutil.Args(c, "%p", "%f")
	if err != nil {
		return err
	}
	n, err := wal.ParseName(args[1])
	if err != nil {
		return cliutil.UsageError{Err: fmt.Errorf("%w: %w (archive_command takes %%p %%f)", archive.ErrInvalid, err)}
	}
	codec, err := repo.ParseCodec(c.String("compress"))
	if err != nil {
		return cliutil.UsageError{Err: fmt.Errorf("--compress: %w", err)}
	}
	if !c.IsSet("compress") {
		codec = "" // the repository's own, lz4 for a new one
	}
	log := cliutil.Logger(c)
	par := archive.Parallel{N: c.Int("parallel"), Spool: c.String("spool"), Worker: archive.WorkerFromEnv(), Log: log}
	if err := par.Check(); err != nil {
		return cliutil.UsageError{Err: fmt.Errorf("--parallel %d --spool %q: %w", par.N, par.Spool, err)}
	}
	r, err := cliutil.OpenRepo(c, cliutil.Open{Create: true, Compress: codec, Cache: par.IdentityCache, Log: log})
	if err != nil {
		return err
	}
	res, err := archive.PushAhead(c.Context, r, args[0], n, par)
	if err != nil {
		return err
	}
	if w := res.Warning(); w != "" {
		log.Warn(w, "file", args[1], "repo", r.String())
	}
	switch {
	case res.Ahead:
		log.Info("already archived by a look-ahead push", "file", args[1], "repo", r.String())
	case res.Existed:
		log.Info("already archived with identical content", "file", args[1], "repo", r.String())
	default:
		log.Info("archived", "file", args[1], "bytes", res.Bytes, "repo", r.String())
	}
	return nil
}

// Exit statuses (cliutil's table). Any non-zero status below 126 makes
// PostgreSQL keep the file and try again.
const (
	exitOK     = cliutil.ExitOK
	exitFailed = cliutil.ExitFailed // not archived: storage, a refused file (other cluster, different content)
	exitUsage  = cliutil.ExitUsage  // called wrongly: arguments, flags, settings (layout, compression, keys) the repository disagrees with
)

// exitCode is the one place walship-archive chooses its exit status.
func exitCode(err error) int {
	var usage cliutil.UsageError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &usage), errors.Is(err, repo.ErrMismatch), errors.Is(err, repo.ErrEncryption), errors.Is(err, storage.ErrNotOwner):
		return exitUsage
	}
	return exitFailed
}
