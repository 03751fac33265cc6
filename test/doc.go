// Package test holds walship's end-to-end tests: real PostgreSQL servers
// (and, for the S3 backend, a real S3 server) calling the walship binaries
// from their own configuration, exactly as a DBA would set them up.
//
// A scenario that holds for every archive is written once against an
// archiveBackend and run by forEachBackend as the subtests local (a
// directory) and s3 (a bucket prefix on versitygw); the S3-only tests
// (outage, bad credentials, missing bucket) use the same s3Backend.
package test
