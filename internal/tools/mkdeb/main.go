// Command mkdeb builds walship's Debian package with nfpm, without dpkg
// tooling: only Go is needed. make deb runs it on the tree that
// `make install DESTDIR=STAGE PREFIX=/usr` wrote:
//
//	go run . -stage STAGE -version "$(git describe --tags --always --dirty)" -out DIR
//
// The package holds that tree as it is (the binaries in /usr/bin, man
// pages, now gzipped, the documents and contrib examples under
// /usr/share/doc/walship, the examples naming /usr/bin), plus the systemd
// units in /usr/lib/systemd/system (installed, not enabled) and
// contrib/walship.toml as /etc/walship/walship.toml, a conffile. The cron
// files stay examples: in /etc/cron.d they would run at once.
//
// It lives in a module of its own so that nfpm's dependencies never enter
// the build of walship's programs.
package main

import (
	"compress/gzip"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"time"

	"github.com/goreleaser/nfpm/v2"
	_ "github.com/goreleaser/nfpm/v2/deb" // registers the deb packager
	"github.com/goreleaser/nfpm/v2/files"
)

const docDir = "/usr/share/doc/walship"

func main() {
	stage := flag.String("stage", "", "the tree make install wrote with PREFIX=/usr (DESTDIR)")
	version := flag.String("version", "", "git describe of the build (v1.2.0, v1.2.0-3-g0123abc-dirty, 0123abc)")
	date := flag.String("date", "", "commit time as YYYYMMDDhhmmss, for an untagged version")
	out := flag.String("out", ".", "directory to write walship_VERSION_ARCH.deb into")
	arch := flag.String("arch", runtime.GOARCH, "Debian architecture of the binaries")
	maintainer := flag.String("maintainer", "The walship authors", "Maintainer field")
	flag.Parse()
	if *stage == "" || flag.NArg() != 0 {
		fmt.Fprintln(os.Stderr, "usage: mkdeb -stage DIR -version VERSION [-date YYYYMMDDhhmmss] [-out DIR]")
		os.Exit(2)
	}
	path, err := build(*stage, debVersion(*version, *date), *arch, *maintainer, *out)
	if err != nil {
		fmt.Fprintln(os.Stderr, "mkdeb:", err)
		os.Exit(1)
	}
	fmt.Println(path)
}

var (
	// A tag: v and a digit (v1, v1.2.0), or a dotted version (1.2.0); a
	// bare commit such as 55e1c76 is none, even when it starts with a digit.
	tagRE  = regexp.MustCompile(`^(?:v([0-9][0-9A-Za-z.]*)|([0-9]+\.[0-9A-Za-z.]*))(?:-([0-9]+)-g([0-9a-f]+))?(-dirty)?$`)
	hashRE = regexp.MustCompile(`^([0-9a-f]{4,40})(-dirty)?$`)
)

// debVersion turns git describe into a Debian version, which must start
// with a digit and sorts later builds higher: v1.2.0 is 1.2.0; three
// commits after it, 1.2.0+3.g0123abc; without a tag, 0.0.0~git + the
// commit time + the commit (~ sorts before any release); -dirty becomes
// +dirty.
func debVersion(describe, date string) string {
	if m := tagRE.FindStringSubmatch(describe); m != nil {
		v := m[1] + m[2]
		if m[3] != "" {
			v += "+" + m[3] + ".g" + m[4]
		}
		if m[5] != "" {
			v += "+dirty"
		}
		return v
	}
	v := "0.0.0~git"
	if date != "" {
		v += date + "."
	}
	if m := hashRE.FindStringSubmatch(describe); m != nil {
		v += m[1]
		if m[2] != "" {
			v += "+dirty"
		}
		return v
	}
	return v + "unknown"
}

func build(stage, version, arch, maintainer, outDir string) (string, error) {
	tmp, err := os.MkdirTemp("", "mkdeb-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)

	var contents files.Contents
	add := func(src, dst string, mode fs.FileMode, typ string) {
		contents = append(contents, &files.Content{Source: src, Destination: dst, Type: typ,
			FileInfo: &files.ContentFileInfo{Mode: mode, Owner: "root", Group: "root"}})
	}
	var units []string
	err = filepath.WalkDir(stage, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if !d.Type().IsRegular() {
			return fmt.Errorf("%s: not a regular file", p)
		}
		rel, err := filepath.Rel(stage, p)
		if err != nil {
			return err
		}
		dst := "/" + filepath.ToSlash(rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		mode := info.Mode().Perm()
		switch {
		case strings.HasPrefix(dst, "/usr/share/man/") && strings.HasSuffix(dst, ".1"):
			gz := filepath.Join(tmp, filepath.Base(p)+".gz")
			if err := gzipFile(p, gz); err != nil {
				return err
			}
			add(gz, dst+".gz", 0o644, files.TypeFile)
			return nil
		case strings.HasPrefix(dst, docDir+"/contrib/systemd/"):
			units = append(units, p)
		}
		add(p, dst, mode, files.TypeFile)
		return nil
	})
	if err != nil {
		return "", err
	}
	for _, p := range []string{"/usr/bin/walship-archive", docDir + "/contrib/walship.toml"} {
		if _, err := os.Stat(filepath.Join(stage, p)); err != nil {
			return "", fmt.Errorf("%s is not what make install PREFIX=/usr writes: %v", stage, err)
		}
	}
	for _, u := range units {
		add(u, "/usr/lib/systemd/system/"+filepath.Base(u), 0o644, files.TypeFile)
	}
	add(filepath.Join(stage, docDir, "contrib/walship.toml"), "/etc/walship/walship.toml", 0o644, files.TypeConfig)

	info := &nfpm.Info{
		Name:          "walship",
		Arch:          arch,
		Platform:      "linux",
		Version:       version,
		VersionSchema: "none",
		Section:       "database",
		Priority:      "optional",
		Maintainer:    maintainer,
		Homepage:      "https://github.com/walship/walship",
		License:       "PostgreSQL",
		Description: "WAL archiving, restore and base backups for PostgreSQL\n" +
			"Small programs that PostgreSQL calls from postgresql.conf: an atomic\n" +
			"archive_command (walship-archive), a restore_command that can wait as a\n" +
			"warm standby (walship-restore), archive pruning (walship-prune), failback\n" +
			"with pg_rewind fed from the archive (walship-rewind), and the operator's\n" +
			"walship: base backups into the same repository, check, metrics, verify.\n" +
			"The repository is a local directory or S3-compatible object storage.",
		Overridables: nfpm.Overridables{
			Contents:   contents,
			Recommends: []string{"postgresql"},
		},
		MTime: time.Unix(0, 0).UTC(),
	}
	if t := os.Getenv("SOURCE_DATE_EPOCH"); t != "" {
		var sec int64
		if _, err := fmt.Sscan(t, &sec); err == nil {
			info.MTime = time.Unix(sec, 0).UTC()
		}
	}
	info = nfpm.WithDefaults(info)
	if err := nfpm.PrepareForPackager(info, "deb"); err != nil {
		return "", err
	}
	pkg, err := nfpm.Get("deb")
	if err != nil {
		return "", err
	}
	name := fmt.Sprintf("walship_%s_%s.deb", version, arch)
	path := filepath.Join(outDir, name)
	f, err := os.Create(path + ".tmp")
	if err != nil {
		return "", err
	}
	if err := pkg.Package(info, f); err != nil {
		f.Close()
		os.Remove(f.Name())
		return "", err
	}
	if err := f.Close(); err != nil {
		os.Remove(f.Name())
		return "", err
	}
	return path, os.Rename(path+".tmp", path)
}

func gzipFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	zw, err := gzip.NewWriterLevel(out, gzip.BestCompression)
	if err != nil {
		out.Close()
		return err
	}
	if _, err := io.Copy(zw, in); err != nil {
		out.Close()
		return err
	}
	if err := zw.Close(); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
