package rewind

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestToolVersion(t *testing.T) {
	dir := t.TempDir()
	for out, want := range map[string]string{
		"pg_rewind (PostgreSQL) 15.13 (Debian 15.13-0+deb12u1)": "15",
		"pg_rewind (PostgreSQL) 16beta1":                        "16",
		"pg_rewind (PostgreSQL) 9.6.24":                         "9.6",
	} {
		bin := filepath.Join(dir, "pg_rewind")
		if err := os.WriteFile(bin, []byte("#!/bin/sh\necho '"+out+"'\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		v, err := ToolVersion(context.Background(), bin)
		if err != nil || v.Text != want {
			t.Errorf("%q: got %v, %v; want %s", out, v, err, want)
		}
	}
}

func TestRedact(t *testing.T) {
	for in, want := range map[string]string{
		"host=a password=secret user=x":         "host=a password=xxxxx user=x",
		"host=a password = 'se cr\\'et' user=x": "host=a password = xxxxx user=x",
		"postgres://u:secret@h/db":              "postgres://u:xxxxx@h/db",
		"postgres://u@h/db?password=secret&x=1": "postgres://u@h/db?password=xxxxx&x=1",
		"host=a user=x":                         "host=a user=x",
	} {
		if got := Redact(in); got != want || strings.Contains(got, "secret") {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestStepError(t *testing.T) {
	err := error(&StepError{Step: StepSource, Err: ErrOtherSystem, Next: "do this"})
	if got, want := err.Error(), "check source: source and target are different database systems; do this"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if !errors.Is(err, ErrOtherSystem) {
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
