package repo

import "io/fs"

var (
	errNotExist = fs.ErrNotExist
	errExist    = fs.ErrExist
)
