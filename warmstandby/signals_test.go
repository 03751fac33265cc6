package warmstandby

import (
	"os"
	"path/filepath"
	"testing"
)

func TestFastTriggered(t *testing.T) {
	dir := t.TempDir()
	trig := filepath.Join(dir, "trigger")
	o := Options{Trigger: trig}
	if FastTriggered(o) {
		t.Fatal("no trigger file: FastTriggered = true")
	}
	for content, want := range map[string]bool{"": false, "smart": false, "fast": true, "FAST\n": true} {
		if err := os.WriteFile(trig, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if got := FastTriggered(o); got != want {
			t.Errorf("trigger %q: FastTriggered = %v, want %v", content, got, want)
		}
	}
}
