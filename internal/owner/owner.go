// Package owner tells whether a file belongs to another user than the one
// running, and names both users for the message that refuses it.
package owner

import (
	"io/fs"
	"os"
	"os/user"
	"strconv"
	"syscall"
)

// Other reports whether fi belongs to another user than the effective
// one, and names its owner and the running user (their numbers when they
// have no name). A file system that reports no owner is nobody else's.
func Other(fi fs.FileInfo) (owner, me string, other bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok || int(st.Uid) == os.Geteuid() {
		return "", "", false
	}
	return name(int(st.Uid)), name(os.Geteuid()), true
}

// name is the name of the user uid, or its number.
func name(uid int) string {
	id := strconv.Itoa(uid)
	if u, err := user.LookupId(id); err == nil {
		return u.Username
	}
	return id
}
