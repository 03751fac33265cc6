package backup

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
)

// A cluster whose configuration lives outside its data directory (Debian's,
// in /etc/postgresql/<version>/<cluster>) has base backups without
// postgresql.conf, pg_hba.conf and pg_ident.conf, and a server cannot
// start from such a data directory. Restore gives the copy what it lacks,
// the least that lets it start and lets only local users of the same name
// in (peer), never what the primary allows over the network.
var missingConfig = []struct{ name, content string }{
	{"postgresql.conf", "# Written by walship backup restore: the backup holds no postgresql.conf\n" +
		"# (the server's configuration lives outside its data directory, as on Debian).\n" +
		"# The recovery settings are in postgresql.auto.conf; add what this copy needs.\n"},
	{"pg_hba.conf", "# Written by walship backup restore: the backup holds no pg_hba.conf.\n" +
		"# Local connections as the operating system user of the same name only.\n" +
		"local   all             all                                     peer\n" +
		"local   replication     all                                     peer\n"},
	{"pg_ident.conf", "# Written by walship backup restore: the backup holds no pg_ident.conf.\n"},
}

// completeConfig writes into the restored data directory dir each
// configuration file the backup does not hold, and says which. A file is
// created, never written through a name the backup put there.
func completeConfig(root *os.Root) ([]string, error) {
	var made []string
	for _, f := range missingConfig {
		p := f.name
		if _, err := root.Lstat(p); err == nil {
			continue
		} else if !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		fd, err := root.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return nil, fmt.Errorf("writing %s: %w", p, err)
		}
		_, err = fd.WriteString(f.content)
		if cerr := fd.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return nil, fmt.Errorf("writing %s: %w", p, err)
		}
		made = append(made, f.name)
	}
	if len(made) == 0 {
		return nil, nil
	}
	return []string{fmt.Sprintf("the backup holds no %s (the primary's configuration lives outside its data directory): wrote the least that starts the copy (local peer connections only)", strings.Join(made, ", "))}, nil
}
