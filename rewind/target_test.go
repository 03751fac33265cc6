package rewind

import (
	"errors"
	"os"
	"testing"
)

func TestStepError(t *testing.T) {
	err := error(&StepError{Step: StepSource, Err: ErrTargetAhead, Next: "do this"})
	if got, want := err.Error(), "check source: target is ahead of the source on the same timeline; do this"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if !errors.Is(err, ErrTargetAhead) {
		t.Error("StepError does not unwrap to its cause")
	}
}

func TestCheckOwner(t *testing.T) {
	err := checkOwner(t.TempDir())
	if os.Geteuid() == 0 {
		if !errors.Is(err, ErrOwner) {
			t.Errorf("as root: %v, want ErrOwner (pg_rewind must run as the data directory's owner)", err)
		}
		return
	}
	if err != nil {
		t.Errorf("own directory: %v", err)
	}
}
