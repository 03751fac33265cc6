package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func TestDebVersion(t *testing.T) {
	for _, tt := range []struct{ describe, date, want string }{
		{"v1.2.0", "", "1.2.0"},
		{"1.2.0", "", "1.2.0"},
		{"v1.2.0-3-g0123abc", "", "1.2.0+3.g0123abc"},
		{"v1.2.0-3-g0123abc-dirty", "", "1.2.0+3.g0123abc+dirty"},
		{"v1.2.0-dirty", "", "1.2.0+dirty"},
		{"a98be70", "20261207034500", "0.0.0~git20261207034500.a98be70"},
		{"a98be70-dirty", "", "0.0.0~gita98be70+dirty"},
		{"55e1c76", "20261207040000", "0.0.0~git20261207040000.55e1c76"},
		{"1234567-dirty", "", "0.0.0~git1234567+dirty"},
		{"v2", "", "2"},
		{"v2-1-gabcdef0", "", "2+1.gabcdef0"},
		{"", "", "0.0.0~gitunknown"},
	} {
		if got := debVersion(tt.describe, tt.date); got != tt.want {
			t.Errorf("debVersion(%q, %q) = %q, want %q", tt.describe, tt.date, got, tt.want)
		}
	}
}

// TestBuild packages a small staged tree and reads the package back: an
// ar archive whose control lists the conffile, and whose data holds the
// binary (0755), the gzipped man page, the units under
// /usr/lib/systemd/system and the config under /etc/walship.
func TestBuild(t *testing.T) {
	stage := t.TempDir()
	put := func(rel, text string, mode os.FileMode) {
		p := filepath.Join(stage, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), mode); err != nil {
			t.Fatal(err)
		}
	}
	put("usr/bin/walship-archive", "#!/bin/sh\n", 0o755)
	put("usr/share/man/man1/walship-archive.1", ".TH walship-archive 1\n", 0o644)
	put("usr/share/doc/walship/README.md", "# walship\n", 0o644)
	put("usr/share/doc/walship/contrib/walship.toml", "repo = '/var/lib/walship'\n", 0o644)
	put("usr/share/doc/walship/contrib/systemd/walship-prune.timer", "[Timer]\n", 0o644)
	put("usr/share/doc/walship/contrib/cron/walship-prune", "# cron\n", 0o644)

	out := t.TempDir()
	path, err := build(stage, "1.2.0+3.g0123abc", "amd64", "The walship authors", out)
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Base(path) != "walship_1.2.0+3.g0123abc_amd64.deb" {
		t.Errorf("package %s, want walship_1.2.0+3.g0123abc_amd64.deb", path)
	}
	members := readAr(t, path)
	if got := string(members["debian-binary"]); got != "2.0\n" {
		t.Errorf("debian-binary %q, want 2.0", got)
	}
	control := readTarGz(t, members["control.tar.gz"])
	for _, want := range []string{"Package: walship", "Version: 1.2.0+3.g0123abc", "Architecture: amd64", "Maintainer: The walship authors"} {
		if !strings.Contains(control["./control"].text, want) && !strings.Contains(control["control"].text, want) {
			t.Errorf("control lacks %q:\n%s%s", want, control["./control"].text, control["control"].text)
		}
	}
	if c := control["./conffiles"].text + control["conffiles"].text; strings.TrimSpace(c) != "/etc/walship/walship.toml" {
		t.Errorf("conffiles %q, want /etc/walship/walship.toml alone", c)
	}
	data := readTarGz(t, members["data.tar.gz"])
	want := map[string]int64{
		"./usr/bin/walship-archive":                                   0o755,
		"./usr/share/man/man1/walship-archive.1.gz":                   0o644,
		"./usr/share/doc/walship/README.md":                           0o644,
		"./usr/lib/systemd/system/walship-prune.timer":                0o644,
		"./usr/share/doc/walship/contrib/cron/walship-prune":          0o644,
		"./etc/walship/walship.toml":                                  0o644,
		"./usr/share/doc/walship/contrib/systemd/walship-prune.timer": 0o644,
	}
	for name, mode := range want {
		f, ok := data[name]
		if !ok {
			t.Errorf("data lacks %s; it has %v", name, keys(data))
			continue
		}
		if f.mode != mode || f.uid != 0 || f.gid != 0 {
			t.Errorf("%s: mode %o, owner %d:%d, want %o root:root", name, f.mode, f.uid, f.gid, mode)
		}
	}
	if _, ok := data["./etc/cron.d/walship-prune"]; ok {
		t.Error("the cron example is installed in /etc/cron.d, where it runs")
	}
	if got := data["./etc/walship/walship.toml"].text; got != "repo = '/var/lib/walship'\n" {
		t.Errorf("walship.toml %q, want contrib's", got)
	}
}

func keys(m map[string]tarFile) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// readAr returns the members of an ar archive (the deb container).
func readAr(t *testing.T, path string) map[string][]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(b, []byte("!<arch>\n")) {
		t.Fatalf("%s is not an ar archive", path)
	}
	b = b[8:]
	out := map[string][]byte{}
	for len(b) >= 60 {
		name := strings.TrimSuffix(strings.TrimSpace(string(b[0:16])), "/")
		size, err := strconv.Atoi(strings.TrimSpace(string(b[48:58])))
		if err != nil {
			t.Fatalf("ar header %q: %v", b[:60], err)
		}
		out[name] = b[60 : 60+size]
		b = b[60+size:]
		if size%2 == 1 && len(b) > 0 {
			b = b[1:]
		}
	}
	return out
}

type tarFile struct {
	mode     int64
	uid, gid int
	text     string
}

func readTarGz(t *testing.T, b []byte) map[string]tarFile {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	out := map[string]tarFile{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		var text []byte
		if strings.HasSuffix(h.Name, ".gz") {
			zr, err := gzip.NewReader(tr)
			if err != nil {
				t.Fatal(err)
			}
			text, err = io.ReadAll(zr)
			if err != nil {
				t.Fatal(err)
			}
		} else if text, err = io.ReadAll(tr); err != nil {
			t.Fatal(err)
		}
		out[h.Name] = tarFile{mode: h.Mode & 0o7777, uid: h.Uid, gid: h.Gid, text: string(text)}
	}
}
