package repo

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"filippo.io/age"
)

// copyObject copies the stored object of from over the place of to, as
// someone with write access to the store and no key can.
func copyObject(t *testing.T, root string, from, to string) {
	t.Helper()
	data := readFile(t, filepath.Join(root, filepath.FromSlash(from)))
	p := filepath.Join(root, filepath.FromSlash(to))
	os.MkdirAll(filepath.Dir(p), 0o700)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// An encrypted object is bound to its name: copied under another one
// (timeline 2's history file as timeline 3's, which would make a restore
// to the latest follow a fake timeline and lose timeline 2; a segment of
// timeline 1 as timeline 2's at the same position, which its page header
// would pass; a backup's tar under another backup), it is refused as
// corrupt by every reader.
func TestEncryptedObjectsBoundToTheirNames(t *testing.T) {
	ctx := context.Background()
	root, key, w := encryptedRepo(t) // holds 000000010000000000000003
	hist := []byte("1\t0/3000158\tno recovery target specified\n")
	if _, err := w.Put(ctx, parseName(t, "00000002.history"), hist); err != nil {
		t.Fatal(err)
	}
	if _, err := w.PutStream(ctx, testObject, bytes.NewReader([]byte("a tar"))); err != nil {
		t.Fatal(err)
	}
	r := reader(t, root, key)
	for _, tc := range []struct{ from, to string }{
		{"wal/00000002.history", "wal/00000003.history"},
		{"wal/0000000100000000/000000010000000000000003.lz4", "wal/0000000200000000/000000020000000000000003.lz4"},
	} {
		copyObject(t, root, tc.from, tc.to)
		n := parseName(t, strings.TrimSuffix(filepath.Base(tc.to), ".lz4"))
		err := readErr(t, r, n.String())
		if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "another name") {
			t.Errorf("%s copied as %s: %v, want refused as corrupt", tc.from, tc.to, err)
		}
	}
	other := BackupObject{ID: "20240102T030406Z", Part: BasePart}
	copyObject(t, root, testObject.Key(), other.Key())
	if _, err := readStream(t, r, other); !errors.Is(err, ErrCorrupt) {
		t.Errorf("a backup's tar copied under another backup: %v, want refused as corrupt", err)
	}
	// The originals still read.
	if got, _ := readAll(t, r, parseName(t, "00000002.history")); !bytes.Equal(got, hist) {
		t.Errorf("00000002.history reads %q", got)
	}
}

// A reader given an identity never reads an object in clear: not after
// walship.json was edited to say the repository is not encrypted, nor
// when it was removed, nor a plain object planted among encrypted ones.
func TestReaderWithIdentityRefusesClear(t *testing.T) {
	ctx := context.Background()
	root, key, _ := encryptedRepo(t)
	n, data := segment(t, "000000010000000000000004", testSysID, 7)
	plain := filepath.Join(root, "wal", "0000000100000000", "000000010000000000000004.lz4")
	obj, err := Encode(CodecLZ4, data, false)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(plain, obj, 0o600)
	if err := readErr(t, reader(t, root, key), n.String()); !errors.Is(err, ErrCorrupt) {
		t.Errorf("a plain object planted in an encrypted repository: %v, want refused", err)
	}
	idPath := filepath.Join(root, IdentityKey)
	ident := readFile(t, idPath)
	edited := bytes.Replace(ident, []byte(`"encryption"`), []byte(`"was_encryption"`), 1)
	os.WriteFile(idPath, edited, 0o600)
	if _, _, err := reader(t, root, key).Identity(ctx); !errors.Is(err, ErrEncryption) {
		t.Errorf("walship.json edited to say not encrypted, read with an identity: %v, want ErrEncryption", err)
	}
	os.Remove(idPath)
	if err := readErr(t, reader(t, root, key), n.String()); !errors.Is(err, ErrCorrupt) {
		t.Errorf("walship.json removed, a plain object read with an identity: %v, want refused", err)
	}
}

// Objects encrypted before names were bound (version 1: no key line) are
// still read.
func TestEncryptedVersion1StillRead(t *testing.T) {
	root, key, _ := encryptedRepo(t)
	hist := []byte("1\t0/3000158\tno recovery target specified\n")
	sum, _ := Digest(bytes.NewReader(hist), int64(len(hist)))
	var b bytes.Buffer
	b.WriteString(strings.Replace(string(cryptHeader{sum: sum, keys: []string{Fingerprint(key.Recipient().String())}}.bytes()), "v2 ", "v1 ", 1))
	ew, err := age.Encrypt(&b, key.Recipient())
	if err != nil {
		t.Fatal(err)
	}
	crc, _ := Sum(bytes.NewReader(hist), int64(len(hist)))
	io.Copy(ew, newSealed(bytes.NewReader(hist), int64(len(hist)), crc))
	ew.Close()
	os.WriteFile(filepath.Join(root, "wal", "00000002.history"), b.Bytes(), 0o600)
	if got, _ := readAll(t, reader(t, root, key), parseName(t, "00000002.history")); !bytes.Equal(got, hist) {
		t.Errorf("a version 1 object reads %q", got)
	}
}
