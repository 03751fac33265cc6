package pgdata

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Files of a data directory the configuration is read from.
const (
	AutoConfFile     = "postgresql.auto.conf" // ALTER SYSTEM's, read after the main file
	RecoveryConfFile = "recovery.conf"        // recovery settings before PostgreSQL 12
)

// maxDepth is CONF_FILE_MAX_DEPTH: the main file is at depth 0.
const maxDepth = 10

var (
	// ErrNesting: include directives nested more than 10 deep, which is
	// what a loop of files that include each other comes to.
	ErrNesting = errors.New("maximum nesting depth exceeded")
	// ErrRecursion: a file includes itself.
	ErrRecursion = errors.New("configuration file includes itself")
)

// Conf is a server's configuration as its files say. Its paths are
// absolute, as the server makes them.
type Conf struct {
	DataDir  string
	MainFile string // the main configuration file
	// Settings are the parameters by lower-case name, the last one read
	// winning: the main file and what it includes, postgresql.auto.conf,
	// then the command line in postmaster.opts, which wins over both.
	Settings map[string]string
	// Recovery holds the settings of recovery.conf, which servers before
	// 12 read apart from the parameters; nil when there is none (or the
	// server is 12 or later, which does not read it).
	Recovery map[string]string
	// Files are the configuration files in the order the server reads
	// them, each once: those that exist, and those it would read if they
	// did (include_if_exists, postgresql.auto.conf, recovery.conf).
	Files []string
	// Dirs are the include_dir directories.
	Dirs []string

	configDir string // where pg_hba.conf and pg_ident.conf are by default
}

// ConfError collects what the server would refuse in a configuration:
// syntax errors (*SyntaxError), files it cannot read, ErrNesting,
// ErrRecursion. errors.Is and errors.As see each of them.
type ConfError struct{ Errs []error }

func (e *ConfError) Error() string {
	if len(e.Errs) == 1 {
		return e.Errs[0].Error()
	}
	return fmt.Sprintf("%v (and %d more errors)", e.Errs[0], len(e.Errs)-1)
}

func (e *ConfError) Unwrap() []error { return e.Errs }

// ReadConf reads the configuration of the server of dataDir the way the
// server does at start: mainFile ("" for MainConfFile(dataDir)) with its
// include, include_if_exists and include_dir directives (relative to the
// file that holds them; an include_dir reads its names that end in .conf
// and do not start with a dot, in name order), postgresql.auto.conf, the
// command line from postmaster.opts, and recovery.conf unless PG_VERSION
// says 12 or later.
//
// It reads everything it can. The Conf is never nil; the error, a
// *ConfError, lists what the server would refuse: it does not start with
// such a configuration, and a reload applies none of it.
func ReadConf(dataDir, mainFile string) (*Conf, error) {
	if mainFile == "" {
		mainFile = MainConfFile(dataDir)
	}
	dataDir, mainFile = absPath(dataDir), absPath(mainFile)
	c := &Conf{DataDir: dataDir, MainFile: mainFile, Settings: map[string]string{}, configDir: filepath.Dir(mainFile)}
	r := &reader{conf: c, seenFile: map[string]bool{}, seenDir: map[string]bool{}}
	r.file(c.MainFile, true, "", 0, 0, c.Settings)
	r.file(filepath.Join(dataDir, AutoConfFile), false, "", 0, 0, c.Settings)
	if cl, err := ReadCommandLine(dataDir); err == nil {
		for k, v := range cl.Settings {
			c.Settings[k] = v
		}
		if filepath.IsAbs(cl.DataDir) {
			c.configDir = filepath.Clean(cl.DataDir)
		}
	}
	if v, err := ReadVersion(dataDir); err != nil || v.Major < 12 {
		rec := map[string]string{}
		if r.file(filepath.Join(dataDir, RecoveryConfFile), false, "", 0, 0, rec) {
			c.Recovery = rec
		}
	}
	if len(r.errs) > 0 {
		return c, &ConfError{Errs: r.errs}
	}
	return c, nil
}

// HBAFile is the client authentication file: hba_file, else pg_hba.conf
// beside the configuration (in the directory postmaster.opts names with
// -D, or else the main file's).
func (c *Conf) HBAFile() string { return c.locate("hba_file", "pg_hba.conf") }

// IdentFile is the user name map: ident_file, else pg_ident.conf beside
// the configuration, as for HBAFile.
func (c *Conf) IdentFile() string { return c.locate("ident_file", "pg_ident.conf") }

func (c *Conf) locate(setting, def string) string {
	p := c.Settings[setting]
	switch {
	case p == "":
		return filepath.Join(c.configDir, def)
	case filepath.IsAbs(p):
		return filepath.Clean(p)
	}
	// The server resolves it against the directory it was started in,
	// which is not recorded: the data directory is the likely one.
	return filepath.Join(c.DataDir, p)
}

type reader struct {
	conf     *Conf
	seenFile map[string]bool
	seenDir  map[string]bool
	errs     []error
}

func (r *reader) fail(calling string, line int, err error) {
	if calling != "" {
		err = fmt.Errorf("%s line %d: %w", calling, line, err)
	}
	r.errs = append(r.errs, err)
}

// abs resolves a path named in the file calling against that file's
// directory, as AbsoluteConfigLocation does; the files read at the top
// (calling "") are named in full.
func (r *reader) abs(path, calling string) string {
	if calling == "" || filepath.IsAbs(path) {
		return absPath(path)
	}
	return filepath.Join(filepath.Dir(calling), path)
}

// absPath is filepath.Abs, or the cleaned path when there is no working
// directory.
func absPath(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return filepath.Clean(p)
}

// file reads one configuration file into settings (ParseConfigFile): a
// missing one is an error when strict. calling and line name the include
// directive. It reports whether the file was read.
func (r *reader) file(path string, strict bool, calling string, line, depth int, settings map[string]string) bool {
	if strings.Trim(path, " \t\r\n") == "" {
		r.fail(calling, line, fmt.Errorf("empty configuration file name: %q", path))
		return false
	}
	if depth > maxDepth {
		r.fail(calling, line, fmt.Errorf("could not open configuration file %q: %w", path, ErrNesting))
		return false
	}
	path = r.abs(path, calling)
	if calling != "" && path == calling {
		r.fail(calling, line, ErrRecursion)
		return false
	}
	if !r.seenFile[path] {
		r.seenFile[path] = true
		r.conf.Files = append(r.conf.Files, path)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		if strict {
			r.fail(calling, line, fmt.Errorf("could not open configuration file: %w", err))
		}
		return false // the server skips an include_if_exists it cannot open, whatever the reason
	}
	for i, text := range strings.Split(string(data), "\n") {
		s, err := ParseLine(text)
		var se *SyntaxError
		if errors.As(err, &se) {
			se.File, se.Line = path, i+1
			r.errs = append(r.errs, se)
			continue
		}
		switch s.Name {
		case "":
		case "include":
			r.file(s.Value, true, path, i+1, depth+1, settings)
		case "include_if_exists":
			r.file(s.Value, false, path, i+1, depth+1, settings)
		case "include_dir":
			r.dir(s.Value, path, i+1, depth+1, settings)
		default:
			settings[s.Name] = s.Value
		}
	}
	return true
}

// dir reads the files of an include_dir (ParseConfigDirectory).
func (r *reader) dir(dir, calling string, line, depth int, settings map[string]string) {
	if strings.Trim(dir, " \t\r\n") == "" {
		r.fail(calling, line, fmt.Errorf("empty configuration directory name: %q", dir))
		return
	}
	dir = r.abs(dir, calling)
	if !r.seenDir[dir] {
		r.seenDir[dir] = true
		r.conf.Dirs = append(r.conf.Dirs, dir)
	}
	names, err := IncludeDirFiles(dir)
	if err != nil {
		r.fail(calling, line, err)
		return
	}
	for _, n := range names {
		if !r.file(filepath.Join(dir, n), true, calling, line, depth, settings) {
			return // like the server, stop at a file that cannot be read
		}
	}
}

// IncludeDirFiles lists the files an include_dir of dir reads, in the
// order it reads them: names of at least six bytes that end in ".conf" and
// do not start with a dot, that are not directories (a link counts as what
// it points to), sorted by name. A name it cannot stat (a dangling link),
// which the server refuses, is left out and reported in the error.
func IncludeDirFiles(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("could not open configuration directory: %w", err)
	}
	var names []string
	var first error
	for _, e := range ents {
		n := e.Name()
		if len(n) < 6 || n[0] == '.' || !strings.HasSuffix(n, ".conf") {
			continue
		}
		fi, err := os.Stat(filepath.Join(dir, n))
		if err != nil {
			if first == nil {
				first = fmt.Errorf("could not stat configuration file: %w", err)
			}
			continue
		}
		if !fi.IsDir() {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	return names, first
}
