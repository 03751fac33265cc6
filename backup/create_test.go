package backup

import (
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/walship/walship/pgdata"
	"github.com/walship/walship/pgserver"
)

// The server compresses a backup where it can, unless told not to; told
// to where it cannot, the backup is refused.
func TestCompressAtServer(t *testing.T) {
	for _, c := range []struct {
		major int
		lz4   bool
		at    string
		want  bool
		err   string
	}{
		{15, true, "", true, ""},
		{18, true, CompressServer, true, ""},
		{15, true, CompressClient, false, ""},
		{15, false, "", false, ""},
		{14, true, "", false, ""},
		{13, false, CompressClient, false, ""},
		{14, true, CompressServer, false, "servers compress backups from 15 on"},
		{16, false, CompressServer, false, "built without lz4"},
	} {
		srv := &server{Info: &pgserver.Info{Version: pgdata.Version{Major: c.major, Text: strconv.Itoa(c.major)}, VersionStr: strconv.Itoa(c.major) + ".1"}, lz4: c.lz4}
		got, err := compressAtServer(srv, c.at)
		if got != c.want || (err == nil) != (c.err == "") || (err != nil && (!strings.Contains(err.Error(), c.err) || !errors.Is(err, pgserver.ErrVersion))) {
			t.Errorf("PostgreSQL %d, lz4 %v, at %q: %v, %v; want %v, %q", c.major, c.lz4, c.at, got, err, c.want, c.err)
		}
	}
}
