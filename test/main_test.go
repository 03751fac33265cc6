package test

import (
	"os"
	"testing"

	"github.com/walship/walship/internal/testenv/pgtest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	pgtest.Cleanup()
	os.Exit(code)
}
