package storagetest

import (
	"context"
	"errors"
	"testing"

	"github.com/walship/walship/storage"
)

func TestMem(t *testing.T) {
	Run(t, func(t *testing.T) storage.Backend { return NewMem() })
}

// Through Faulty every call still meets the contract, and what it injects
// reaches the caller.
func TestFaulty(t *testing.T) {
	Run(t, func(t *testing.T) storage.Backend { return &Faulty{Backend: NewMem()} })

	down := true
	f := &Faulty{Backend: NewMem(), Fail: Down(func() bool { return down })}
	_, err := f.Stat(context.Background(), "a")
	if !errors.Is(err, storage.ErrTransient) {
		t.Errorf("Stat while down = %v, want a transient error", err)
	}
	down = false
	Put(t, f, "a", []byte("x"))
	if f.Calls("stat") != 1 || f.Calls("put") != 1 {
		t.Errorf("calls stat %d put %d, want 1 and 1", f.Calls("stat"), f.Calls("put"))
	}
	if _, ok := storage.As[storage.BatchRemover](f); ok {
		t.Error("Faulty deletes in batches without Batching")
	}
	b := Batching(f)
	if err := storage.RemoveMany(context.Background(), b, []string{"a", "b", "c"}); err != nil {
		t.Fatal(err)
	}
	if got := f.BatchSizes(); len(got) != 1 || got[0] != 3 {
		t.Errorf("batches %v, want [3]", got)
	}
}
