package pgdata

import (
	"os"
	"path/filepath"
	"strings"
)

// PostmasterOptsFile is where the postmaster records the command line it
// started with.
const PostmasterOptsFile = "postmaster.opts"

// CommandLine is the server's command line as postmaster.opts records it.
type CommandLine struct {
	Program string
	// DataDir is the -D argument: the data directory, or the directory
	// of the configuration when that sets data_directory.
	DataDir string
	// Settings are the parameters set on the command line (-c name=value,
	// --name=value, and the short options that stand for one, such as -p
	// and -B), by lower-case name with '-' read as '_'; the last one wins.
	// config_file is among them when it was given.
	Settings map[string]string
}

// ReadCommandLine reads dataDir's postmaster.opts. The file stays behind
// after the server stops: it is the command line of the last start. Its
// error matches fs.ErrNotExist when the server never started there.
func ReadCommandLine(dataDir string) (*CommandLine, error) {
	data, err := os.ReadFile(filepath.Join(dataDir, PostmasterOptsFile))
	if err != nil {
		return nil, err
	}
	return ParseCommandLine(string(data)), nil
}

// shortSettings are the postmaster's short options that set a parameter
// to their argument; flagSettings those that set one to a fixed value.
var (
	shortSettings = map[byte]string{
		'B': "shared_buffers", 'h': "listen_addresses", 'k': "unix_socket_directories",
		'N': "max_connections", 'p': "port", 'S': "work_mem", 'W': "post_auth_delay",
	}
	flagSettings = map[byte][2]string{
		'F': {"fsync", "false"}, 'i': {"listen_addresses", "*"}, 'l': {"ssl", "true"},
		'O': {"allow_system_table_mods", "true"}, 'P': {"ignore_system_indexes", "true"},
		's': {"log_statement_stats", "true"},
	}
	// otherArg are the other options that take an argument (getopt string
	// "B:bc:C:D:d:EeFf:h:ijk:lN:OPp:r:S:sTt:W:-:").
	otherArg = "cCDdfrt-"
)

// ParseCommandLine reads the content of postmaster.opts: the program,
// then each argument in double quotes (the server quotes them but does not
// escape a quote inside one). Options are read as the postmaster's getopt
// reads them, up to "--" or the first argument that is not an option.
func ParseCommandLine(opts string) *CommandLine {
	cl := &CommandLine{Settings: map[string]string{}}
	opts = strings.TrimRight(opts, "\r\n")
	prog, rest, _ := strings.Cut(opts, ` "`)
	cl.Program = strings.TrimSpace(prog)
	var args []string
	for rest != "" {
		arg, after, ok := strings.Cut(rest, `"`)
		args = append(args, arg)
		if !ok {
			break
		}
		_, rest, _ = strings.Cut(after, `"`)
	}
	set := func(kv string) {
		k, v, ok := strings.Cut(kv, "=")
		if ok && k != "" {
			cl.Settings[asciiLower(strings.ReplaceAll(k, "-", "_"))] = v
		}
	}
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" || len(a) < 2 || a[0] != '-' {
			break
		}
		for j := 1; j < len(a); j++ {
			c := a[j]
			if f, ok := flagSettings[c]; ok {
				cl.Settings[f[0]] = f[1]
				continue
			}
			name, takesArg := shortSettings[c]
			if !takesArg && !strings.ContainsRune(otherArg, rune(c)) {
				continue // a flag walship has no use for
			}
			val := a[j+1:]
			if val == "" && i+1 < len(args) {
				i++
				val = args[i]
			}
			switch {
			case name != "":
				cl.Settings[name] = val
			case c == 'c' || c == '-':
				set(val)
			case c == 'D':
				cl.DataDir = val
			}
			break
		}
	}
	return cl
}

// MainConfFile is the main configuration file the server of dataDir
// reads: config_file from postmaster.opts (Debian's clusters keep it in
// /etc), else postgresql.conf in dataDir. A relative config_file is taken
// relative to dataDir.
func MainConfFile(dataDir string) string {
	if cl, err := ReadCommandLine(dataDir); err == nil && cl.Settings["config_file"] != "" {
		f := cl.Settings["config_file"]
		if !filepath.IsAbs(f) {
			f = filepath.Join(dataDir, f)
		}
		return filepath.Clean(f)
	}
	return filepath.Join(dataDir, "postgresql.conf")
}
