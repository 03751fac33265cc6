package s3test

import (
	"context"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

func TestRestartKeepsPortAndData(t *testing.T) {
	srv := StartServer(t)
	bucket := srv.NewBucket(t)
	c := srv.Client()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String("a/b"), Body: strings.NewReader("kept")}); err != nil {
		t.Fatal(err)
	}
	endpoint := srv.Endpoint
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(bucket)}); err == nil {
		t.Fatal("the stopped server still answers")
	}
	if err := srv.Stop(); err != nil {
		t.Errorf("stopping twice: %v", err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	if srv.Endpoint != endpoint {
		t.Errorf("endpoint changed from %s to %s", endpoint, srv.Endpoint)
	}
	out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String("a/b")})
	if err != nil {
		t.Fatalf("after a restart: %v", err)
	}
	defer out.Body.Close()
	if data, _ := io.ReadAll(out.Body); string(data) != "kept" {
		t.Errorf("after a restart the object holds %q", data)
	}
	if got := srv.NewBucket(t); got == bucket {
		t.Errorf("NewBucket gave %s twice", got)
	}
}

func TestEnvAndOptions(t *testing.T) {
	srv := &Server{Endpoint: "http://127.0.0.1:1", AccessKey: AccessKey, SecretKey: SecretKey, Region: Region, dataDir: "/d/data"}
	env := strings.Join(srv.Env(), " ")
	for _, want := range []string{"AWS_ACCESS_KEY_ID=" + AccessKey, "AWS_SECRET_ACCESS_KEY=" + SecretKey, "WALSHIP_S3_ENDPOINT=http://127.0.0.1:1", "WALSHIP_S3_PATH_STYLE=true", "AWS_EC2_METADATA_DISABLED=true"} {
		if !strings.Contains(env, want) {
			t.Errorf("Env() lacks %s: %s", want, env)
		}
	}
	if o := srv.Options(); o["endpoint"] != srv.Endpoint || o["path-style"] != "true" {
		t.Errorf("Options() = %v", o)
	}
}

func TestBinaryFromEnv(t *testing.T) {
	t.Setenv("WALSHIP_S3_SERVER", filepath.Join(t.TempDir(), "nothing-here"))
	if _, err := Binary(); err == nil || !strings.Contains(err.Error(), "WALSHIP_S3_SERVER") {
		t.Errorf("Binary() with a missing WALSHIP_S3_SERVER: got %v", err)
	}
}

func TestTLSServer(t *testing.T) {
	cert, key := SelfSignedCert(t, t.TempDir())
	srv := StartTLSServer(t, cert, key)
	if !strings.HasPrefix(srv.Endpoint, "https://127.0.0.1:") {
		t.Fatalf("Endpoint = %s, want https://127.0.0.1:port", srv.Endpoint)
	}
	bucket := srv.NewBucket(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := srv.Client().HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(bucket)}); err != nil {
		t.Errorf("HeadBucket over TLS: %v", err)
	}
}
