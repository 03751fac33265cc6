package buildinfo

import (
	"regexp"
	"testing"
)

func TestStringSetAtBuildTime(t *testing.T) {
	defer func(v, c string) { version, commit = v, c }(version, commit)
	version, commit = "1.2.0", "0123abcd4567"
	want := regexp.MustCompile(`^walship-prune 1\.2\.0 \(commit 0123abcd4567, go[0-9.a-z]+ [a-z0-9]+/[a-z0-9]+\)$`)
	if got := String("walship-prune"); !want.MatchString(got) {
		t.Errorf("String = %q, want it to match %s", got, want)
	}
}

func TestStringWithoutLdflags(t *testing.T) {
	defer func(v, c string) { version, commit = v, c }(version, commit)
	version, commit = "", ""
	// A test binary has no module version and no VCS stamp.
	if got, want := Version(), "devel"; got != want {
		t.Errorf("Version = %q, want %q", got, want)
	}
	if got := Commit(); got != "unknown" && !regexp.MustCompile(`^[0-9a-f]{12}(-dirty)?$`).MatchString(got) {
		t.Errorf("Commit = %q, want unknown or a revision", got)
	}
}
