// Package detach starts this same program again as a background worker:
// same arguments, its own session (so the server's signals to the caller
// do not reach it), output discarded, one environment variable telling it
// what to do. walship-restore's prefetch and walship-archive's look-ahead
// use it; the caller never waits for the worker.
package detach

import (
	"os"
	"os/exec"
	"syscall"
)

// Start runs this program again, detached, with key=value added to its
// environment.
func Start(key, value string) error {
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	cmd := exec.Command(exe, os.Args[1:]...)
	cmd.Env = append(os.Environ(), key+"="+value)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return err
	}
	return cmd.Process.Release()
}

// Value is what Start gave key in this process, or "" in a process Start
// did not start.
func Value(key string) string { return os.Getenv(key) }
