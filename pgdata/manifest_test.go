package pgdata

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
)

// makeManifest writes a manifest as PostgreSQL 15 does, with its checksum.
func makeManifest(files map[string]string, algorithm string) []byte {
	var b strings.Builder
	b.WriteString("{ \"PostgreSQL-Backup-Manifest-Version\": 1,\n\"Files\": [\n")
	first := true
	for _, path := range []string{"backup_label", "PG_VERSION", "global/pg_control", "pg_tblspc/16384/PG_15_202209061/5/16385"} {
		content, ok := files[path]
		if !ok {
			continue
		}
		if !first {
			b.WriteString(",\n")
		}
		first = false
		h, _ := newFileHash(algorithm)
		sum := ""
		if h != nil {
			io.WriteString(h, content)
			sum = fmt.Sprintf(", \"Checksum\": \"%s\"", hex.EncodeToString(h.Sum(nil)))
		}
		fmt.Fprintf(&b, "{ \"Path\": %q, \"Size\": %d, \"Last-Modified\": \"2023-05-04 10:11:12 GMT\", \"Checksum-Algorithm\": %q%s }", path, len(content), algorithm, sum)
	}
	b.WriteString("\n],\n\"WAL-Ranges\": [\n{ \"Timeline\": 1, \"Start-LSN\": \"0/3000028\", \"End-LSN\": \"0/3000100\" }\n],\n")
	sum := sha256.Sum256([]byte(b.String()))
	fmt.Fprintf(&b, "\"Manifest-Checksum\": \"%s\"}\n", hex.EncodeToString(sum[:]))
	return []byte(b.String())
}

var backupFiles = map[string]string{
	"backup_label":      "START WAL LOCATION: 0/3000028 (file 000000010000000000000003)\n",
	"PG_VERSION":        "15\n",
	"global/pg_control": strings.Repeat("\x01", 8192),
	"pg_tblspc/16384/PG_15_202209061/5/16385": strings.Repeat("x", 40960),
}

func checkAll(t *testing.T, m *Manifest, files map[string]string) error {
	t.Helper()
	c := m.Check()
	for path, content := range files {
		f, err := c.File(path)
		if err != nil {
			return err
		}
		io.WriteString(f, content)
		if err := f.Close(); err != nil {
			return err
		}
	}
	return c.Done()
}

func TestManifest(t *testing.T) {
	for _, alg := range []string{"CRC32C", "SHA256", "SHA512", "NONE"} {
		t.Run(alg, func(t *testing.T) {
			m, err := ParseManifest(makeManifest(backupFiles, alg))
			if err != nil {
				t.Fatal(err)
			}
			if start, tli := m.Start(); start != 0x3000028 || tli != 1 {
				t.Errorf("Start = %s, %d", start, tli)
			}
			if end, tli := m.End(); end != 0x3000100 || tli != 1 {
				t.Errorf("End = %s, %d", end, tli)
			}
			if len(m.Files) != 4 || m.Size() != int64(len(backupFiles["backup_label"])+3+8192+40960) {
				t.Errorf("files %d, size %d", len(m.Files), m.Size())
			}
			if err := checkAll(t, m, backupFiles); err != nil {
				t.Errorf("the backup's own files: %v", err)
			}
		})
	}
}

// PostgreSQL writes a CRC-32C in a manifest as its bytes in little-endian
// order: PG_VERSION "15\n" is 8a744722 in a real PostgreSQL 15 manifest.
func TestManifestCRC32CAsPostgreSQLWritesIt(t *testing.T) {
	h, _ := newFileHash("CRC32C")
	io.WriteString(h, "15\n")
	if got := hex.EncodeToString(h.Sum(nil)); got != "8a744722" {
		t.Errorf("CRC32C of PG_VERSION = %s, want 8a744722", got)
	}
}

func TestManifestMismatches(t *testing.T) {
	m, err := ParseManifest(makeManifest(backupFiles, "CRC32C"))
	if err != nil {
		t.Fatal(err)
	}
	changed := func(path, content string) map[string]string {
		out := map[string]string{}
		for k, v := range backupFiles {
			out[k] = v
		}
		if content == "" {
			delete(out, path)
		} else {
			out[path] = content
		}
		return out
	}
	for what, files := range map[string]map[string]string{
		"flipped byte":   changed("global/pg_control", "\x02"+backupFiles["global/pg_control"][1:]),
		"shorter":        changed("PG_VERSION", "1\n"),
		"missing file":   changed("pg_tblspc/16384/PG_15_202209061/5/16385", ""),
		"unlisted file":  changed("base/1/1234", "new"),
		"unlisted label": changed("global/other", "x"),
	} {
		if err := checkAll(t, m, files); !errors.Is(err, ErrManifest) {
			t.Errorf("%s: %v, want ErrManifest", what, err)
		}
	}
	// Files pg_basebackup adds or a restore writes are not in a manifest.
	if err := checkAll(t, m, changed("postgresql.auto.conf", "x = 1\n")); err != nil {
		t.Errorf("postgresql.auto.conf: %v", err)
	}
}

func TestManifestDamaged(t *testing.T) {
	good := string(makeManifest(backupFiles, "CRC32C"))
	for what, text := range map[string]string{
		"changed size":  strings.Replace(good, `"Size": 3,`, `"Size": 4,`, 1),
		"no checksum":   good[:strings.LastIndex(good, "\"Manifest-Checksum\"")] + "\"X\": 1}\n",
		"not json":      good[:100],
		"version 9":     strings.Replace(good, "Version\": 1", "Version\": 9", 1),
		"no WAL ranges": strings.Replace(good, "{ \"Timeline\": 1, \"Start-LSN\": \"0/3000028\", \"End-LSN\": \"0/3000100\" }\n", "", 1),
	} {
		if _, err := ParseManifest([]byte(text)); !errors.Is(err, ErrManifest) {
			t.Errorf("%s: %v, want ErrManifest", what, err)
		}
	}
}
