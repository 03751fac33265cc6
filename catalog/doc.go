// Package catalog is a walship repository read at once, and the one model
// of what it holds: its WAL files with their timelines (where each began
// and ended, what is missing, whether a second server writes there), and
// its base backups: the record walship writes for each (backup.json), the
// objects stored under it, and one answer each to "is it restorable",
// "has it expired", "was it interrupted", and "what does a retention
// policy keep" (BackupStatusOf, Stored.Interrupted, Retain). ls, status,
// verify, check, metrics, prune and backup list and restore all read the
// repository through it.
//
// How the objects are stored (keys, codecs, encryption) is the repo
// package's; what they mean is this one's.
package catalog
