// Package test holds walship's end-to-end tests: real PostgreSQL servers
// (and, for the S3 backend, a real S3 server) calling the walship binaries
// from their own configuration, exactly as a DBA would set them up.
package test
