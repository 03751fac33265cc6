package backup

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

// makeTar writes a tar as pg_basebackup's server side does: files, a
// directory, and the end-of-archive blocks.
func makeTar(t *testing.T, files map[string]string, order ...string) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Name: "global/", Typeflag: tar.TypeDir, Mode: 0o700})
	for _, name := range order {
		content := files[name]
		if err := tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o600, Size: int64(len(content)), Format: tar.FormatUSTAR}); err != nil {
			t.Fatal(err)
		}
		io.WriteString(tw, content)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// readTap reads everything through a tap in small, odd pieces.
func readTap(tap *tarTap) ([]byte, error) {
	var out bytes.Buffer
	buf := make([]byte, 333)
	for {
		n, err := tap.Read(buf)
		out.Write(buf[:n])
		if err == io.EOF {
			return out.Bytes(), nil
		}
		if err != nil {
			return out.Bytes(), err
		}
	}
}

func TestTarTap(t *testing.T) {
	label := "START WAL LOCATION: 0/3000028 (file 000000010000000000000003)\nLABEL: x\n"
	files := map[string]string{"backup_label": label, "tablespace_map": "", "PG_VERSION": "15\n",
		"base/1/1259": strings.Repeat("\x07", 3*8192+5), "global/pg_control": strings.Repeat("c", 8192)}
	data := makeTar(t, files, "backup_label", "tablespace_map", "PG_VERSION", "base/1/1259", "global/pg_control")
	tap := newTarTap(bytes.NewReader(data), "backup_label", "tablespace_map", "absent")
	got, err := readTap(tap)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Fatal("the tap changed the stream")
	}
	if b, ok := tap.Kept("backup_label"); !ok || string(b) != label {
		t.Errorf("backup_label: %q, %v", b, ok)
	}
	if b, ok := tap.Kept("tablespace_map"); !ok || len(b) != 0 {
		t.Errorf("empty tablespace_map: %q, %v", b, ok)
	}
	if _, ok := tap.Kept("absent"); ok {
		t.Error("a file not in the tar was kept")
	}
	if tap.files != 5 {
		t.Errorf("counted %d files, want 5", tap.files)
	}
}

// A stream that stops before the end of its tar is an error at its end,
// wherever it stops.
func TestTarTapTruncated(t *testing.T) {
	data := makeTar(t, map[string]string{"a": strings.Repeat("a", 5000), "b": "b"}, "a", "b")
	for _, cut := range []int{0, 100, 512, 1024, 3000, len(data) - 1024, len(data) - 512, len(data) - 1} {
		_, err := readTap(newTarTap(bytes.NewReader(data[:cut])))
		if !errors.Is(err, errTruncatedTar) {
			t.Errorf("cut at %d of %d: %v, want errTruncatedTar", cut, len(data), err)
		}
	}
	if _, err := readTap(newTarTap(bytes.NewReader(append(append([]byte{}, data...), make([]byte, 1024)...)))); err != nil {
		t.Errorf("zero blocks after the end (tar's record padding): %v", err)
	}
	garbage := append(append([]byte{}, data...), []byte(strings.Repeat("x", 512))...)
	if _, err := readTap(newTarTap(bytes.NewReader(garbage))); err == nil {
		t.Error("data after the end of the archive was not refused")
	}
}

func TestTarNumber(t *testing.T) {
	if n, err := tarNumber([]byte("00000012345\x00")); err != nil || n != 0o12345 {
		t.Errorf("octal: %d, %v", n, err)
	}
	b256 := []byte{0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02, 0}
	if n, err := tarNumber(b256); err != nil || n != 0x200 {
		t.Errorf("base-256: %d, %v", n, err)
	}
}
