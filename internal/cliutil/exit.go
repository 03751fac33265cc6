package cliutil

// Exit statuses of walship's programs: one meaning each, whichever
// program exits with it (the README's table). Each program picks among
// them in its own exitCode function. The one exception is `walship check`,
// which speaks the monitoring-plugin convention (0 OK, 1 WARNING,
// 2 CRITICAL, 3 UNKNOWN) because monitoring systems read it.
const (
	// ExitOK: done (archived, restored, pruned, rewound, verified).
	ExitOK = 0
	// ExitFailed: not done, and nothing left half-done: the storage
	// failed, a file or repository was refused (another cluster's,
	// different content, a bad header), a check failed, walship verify
	// found problems; for walship-restore, the file is not in the archive
	// (or, in a standby, could not be read: the server asks again).
	// PostgreSQL retries archive_command and restore_command after it.
	ExitFailed = 1
	// ExitUsage: called wrongly (arguments, flags, the config file, a
	// setting the repository disagrees with). walship-restore never uses
	// it: see ExitAbort.
	ExitUsage = 2
	// ExitRebuild: walship-rewind's pg_rewind failed after it began
	// changing the target: rebuild that server from a new base backup.
	ExitRebuild = 3
	// ExitNotStarted: the data directory is in place, but the server is
	// not running as asked: walship-rewind rewound the target, but writing
	// its standby configuration or starting it failed; walship backup
	// restore restored, but the server did not start or reach the target.
	ExitNotStarted = 4
	// ExitAbort: walship-restore tells PostgreSQL to stop recovery with
	// FATAL (any status above 125 does): the archive could not be read
	// during archive recovery or PITR, where "not found" would end the
	// recovery early and lose the tail, or restore_command is
	// misconfigured (a usage error), for the same reason.
	ExitAbort = 255
)

// ExitStatus is one row of the table, for the man pages.
type ExitStatus struct {
	Code    int
	Label   string // the codes in words, when the row has several
	Meaning string
}

// ExitStatuses is the table of the constants above, in words.
var ExitStatuses = []ExitStatus{
	{Code: ExitOK, Meaning: "Done: archived (or archived before, with identical content), restored, pruned, rewound, verified without a problem."},
	{Code: ExitFailed, Meaning: "Not done, and nothing left half-done: the storage failed, a file or repository was refused (another cluster's, different content, a bad header), a check failed, or walship verify found problems. For walship-restore: the file is not in the archive (or, in a standby, it could not be read). PostgreSQL keeps the WAL and calls archive_command again; it asks restore_command again or ends recovery as for any missing file."},
	{Code: ExitUsage, Meaning: "Called wrongly: arguments, options, the config file, or a setting the repository disagrees with (walship-restore exits 255 instead)."},
	{Code: ExitRebuild, Meaning: "walship-rewind: pg_rewind failed after it began changing the target's data directory: rebuild that server from a new base backup."},
	{Code: ExitNotStarted, Meaning: "The data directory is in place, but the server is not running as asked: walship-rewind rewound the target, but writing its standby configuration or starting it failed; walship backup restore restored it, but the server did not start or did not reach the target."},
	{Code: 128 + 1, Label: "129, 130, 143", Meaning: "Ended by a signal, 128 + its number (SIGHUP, SIGINT, SIGTERM): the program cleaned up and died of the signal it got, so that its caller sees it; PostgreSQL takes a restore_command killed by SIGTERM (its own shutdown) for a shutdown, not for \"not found\"."},
	{Code: ExitAbort, Meaning: "walship-restore: PostgreSQL must stop recovery (FATAL): the archive could not be read during archive recovery or PITR, where \"not found\" would end the recovery early and lose its tail, or restore_command is misconfigured."},
}

// Programs are walship's programs, for the man pages' SEE ALSO.
var Programs = []string{"walship", "walship-archive", "walship-restore", "walship-prune", "walship-rewind"}
