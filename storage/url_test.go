package storage

import (
	"os"
	"path/filepath"
	"testing"
)

func TestSameLocation(t *testing.T) {
	dir := t.TempDir()
	repo := filepath.Join(dir, "repo")
	if err := os.Mkdir(repo, 0o700); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(repo, link); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		a, b string
		want bool
	}{
		{repo, repo, true},
		{repo, repo + "/", true},
		{repo, "file://" + repo, true},
		{repo, "repo", true},    // relative to dir
		{repo, "./repo/", true}, // relative to dir
		{repo, link, true},
		{repo, filepath.Join(dir, "other"), false},
		{repo, "file://host" + repo, false},
		{"s3://bucket/pg/main", "s3://bucket/pg/main/", true},
		{"s3://bucket/pg/main", "s3://BUCKET/pg/main", true},
		{"s3://bucket/pg/main", "s3://bucket/pg/other", false},
		{"s3://bucket/pg", "s3://bucket/pg/main", false},
		{"s3://bucket/pg/main", "/pg/main", false},
		{"", "", false},
	} {
		if got := SameLocation(tc.a, tc.b, dir); got != tc.want {
			t.Errorf("SameLocation(%q, %q) = %v, want %v", tc.a, tc.b, got, tc.want)
		}
	}
}
