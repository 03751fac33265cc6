package cliutil

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/urfave/cli/v2"

	"github.com/walship/walship/storage"
)

// s3Opts runs an app with RepoFlags on args and returns the options and
// the repository location OpenRepo would use.
func s3Opts(t *testing.T, args ...string) (storage.Options, string) {
	t.Helper()
	var got storage.Options
	var loc string
	flags := RepoFlags()
	app := &cli.App{Name: "t", Flags: flags, Before: Before(flags), Action: func(c *cli.Context) error {
		got = S3Options(c)
		r, err := OpenRepo(c, Open{})
		if err != nil {
			return err
		}
		loc = r.String()
		return nil
	}}
	if err := app.Run(append([]string{"t"}, args...)); err != nil {
		t.Fatalf("run %v: %v", args, err)
	}
	return got, loc
}

func TestS3Flags(t *testing.T) {
	// A variable set to "" counts as set (urfave/cli): unset them all.
	for _, k := range []string{"WALSHIP_CONFIG", "WALSHIP_REPO", "WALSHIP_S3_ENDPOINT", "WALSHIP_S3_REGION", "WALSHIP_S3_PATH_STYLE",
		"WALSHIP_S3_STORAGE_CLASS", "WALSHIP_S3_SSE", "WALSHIP_S3_SSE_KMS_KEY_ID", "WALSHIP_S3_PROFILE"} {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
	conf := filepath.Join(t.TempDir(), "walship.toml")
	if err := os.WriteFile(conf, []byte("repo = 's3://bkt/pre/fix'\ns3-endpoint = 'http://127.0.0.1:9'\ns3-path-style = false\ns3-sse = 'AES256'\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("WALSHIP_S3_REGION", "eu-west-3")

	opts, loc := s3Opts(t, "--config", conf, "--s3-sse", "aws:kms", "--s3-sse-kms-key-id", "alias/wal")
	want := storage.Options{"endpoint": "http://127.0.0.1:9", "region": "eu-west-3", "path-style": "false", "sse": "aws:kms", "sse-kms-key-id": "alias/wal"}
	if fmt.Sprint(opts) != fmt.Sprint(want) {
		t.Errorf("options = %v, want %v", opts, want)
	}
	if loc != "s3://bkt/pre/fix" {
		t.Errorf("repository = %q, want the s3 backend at s3://bkt/pre/fix", loc)
	}

	// Unset flags give no options, so the backend's defaults apply.
	os.Unsetenv("WALSHIP_S3_REGION")
	if opts, _ := s3Opts(t, "--repo", t.TempDir()); len(opts) != 0 {
		t.Errorf("no S3 flags: options = %v, want none", opts)
	}
}
