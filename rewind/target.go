package rewind

import (
	"fmt"
	"os"
	"strconv"
	"syscall"
)

// checkOwner makes sure the running user owns the data directory: pg_rewind
// must run as that user (it refuses root) to keep the files' ownership.
func checkOwner(dir string) error {
	fi, err := os.Stat(dir)
	if err != nil {
		return err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	if euid := os.Geteuid(); euid == 0 || uint32(euid) != st.Uid {
		who := "root"
		if euid != 0 {
			who = "uid " + strconv.Itoa(euid)
		}
		return fmt.Errorf("%w: %s belongs to uid %d and this runs as %s", ErrOwner, dir, st.Uid, who)
	}
	return nil
}
