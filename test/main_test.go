package test

import (
	"os"
	"testing"

	"github.com/walship/walship/internal/pgtest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	pgtest.Cleanup()
	os.Exit(code)
}
