package backup

import (
	"errors"
	"fmt"
)

// Errors a caller tells apart (with errors.Is).
var (
	// ErrOptions: the options given make no sense (an unknown value).
	ErrOptions = errors.New("bad options")
	// ErrBaseBackup: the server's base backup failed, or what it sent is
	// not a backup.
	ErrBaseBackup = errors.New("the base backup failed")
	// ErrNoIncremental: an incremental backup was asked for where none
	// can be taken (before PostgreSQL 17, summarize_wal off, no parent).
	ErrNoIncremental = errors.New("no incremental backup")
	// ErrNoBackup: no stored backup can reach the target.
	ErrNoBackup = errors.New("no backup can reach the target")
	// ErrAfterArchive: the target lies after the end of the archive.
	ErrAfterArchive = errors.New("target after the end of the archive")
	// ErrNotEmpty: the directory to restore into is not empty.
	ErrNotEmpty = errors.New("directory not empty")
	// ErrNotYours: the directory to restore into belongs to another user.
	ErrNotYours = errors.New("directory of another user")
	// ErrDamaged: a backup's objects do not match their record or
	// manifest.
	ErrDamaged = errors.New("damaged backup")
	// ErrStart: the backup was restored, but the server did not start or
	// did not reach the target.
	ErrStart = errors.New("restored, but the server did not reach the target")
)

// optionError is a bad option, in its own words; it matches ErrOptions.
type optionError struct{ msg string }

func (e optionError) Error() string        { return e.msg }
func (e optionError) Is(target error) bool { return target == ErrOptions }

func badOption(format string, args ...any) error { return optionError{fmt.Sprintf(format, args...)} }
