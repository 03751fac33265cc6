package repo

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/walship/walship/storage"
	"github.com/walship/walship/storage/storagetest"
)

// tarLike is data that compresses somewhat, as a data directory does.
func tarLike(n int) []byte {
	rng := rand.New(rand.NewPCG(1, 2))
	b := make([]byte, n)
	for i := range b {
		if i%7 == 0 {
			b[i] = byte(rng.IntN(256))
		} else {
			b[i] = byte(i / 4096)
		}
	}
	return b
}

var testObject = BackupObject{ID: "20240102T030405Z", Part: BasePart}

func readStream(t *testing.T, r *Repo, o BackupObject) ([]byte, error) {
	t.Helper()
	rc, err := r.OpenStream(context.Background(), o)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

func TestStreamRoundTrip(t *testing.T) {
	data := tarLike(3<<20 + 12345)
	local, _ := localRepo(t, LayoutWalship)
	for name, r := range map[string]*Repo{"local": local, "memory": New(storagetest.NewMem(), LayoutWalship)} {
		t.Run(name, func(t *testing.T) {
			// A plain reader: nothing to seek, nothing known of its size.
			info, err := r.PutStream(context.Background(), testObject, io.MultiReader(bytes.NewReader(data)))
			if err != nil {
				t.Fatal(err)
			}
			if info.Raw != int64(len(data)) || info.Stored <= 0 || info.Stored >= info.Raw {
				t.Errorf("PutStream = %+v, want raw %d and a smaller stored size", info, len(data))
			}
			st, err := r.b.Stat(context.Background(), testObject.Key())
			if err != nil || st.Size != info.Stored {
				t.Errorf("stored object: %+v, %v; PutStream said %d bytes", st, err, info.Stored)
			}
			got, err := readStream(t, r, testObject)
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("read back %d bytes, %v; want the %d bytes stored", len(got), err, len(data))
			}
			// Create-only.
			if _, err := r.PutStream(context.Background(), testObject, bytes.NewReader([]byte("other"))); !errors.Is(err, fs.ErrExist) {
				t.Errorf("second PutStream of the same object: %v, want fs.ErrExist", err)
			}
			if _, err := readStream(t, r, BackupObject{ID: testObject.ID, Part: TablespacePart(1)}); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("missing object: %v, want fs.ErrNotExist", err)
			}
		})
	}
}

// A source that fails stores nothing.
func TestStreamSourceFails(t *testing.T) {
	r, _ := localRepo(t, LayoutWalship)
	boom := errors.New("pg_basebackup died")
	src := io.MultiReader(bytes.NewReader(tarLike(1<<20)), iotestErr{boom})
	if _, err := r.PutStream(context.Background(), testObject, src); !errors.Is(err, boom) {
		t.Fatalf("PutStream of a failing source: %v, want its error", err)
	}
	if _, err := r.b.Stat(context.Background(), testObject.Key()); !storage.IsNotExist(err) {
		t.Errorf("after a failed PutStream the object is there (%v)", err)
	}
}

type iotestErr struct{ err error }

func (e iotestErr) Read([]byte) (int, error) { return 0, e.err }

// A stored object that was damaged is never read back as good data.
func TestStreamCorruptObject(t *testing.T) {
	data := tarLike(1 << 20)
	for what, spoil := range map[string]func([]byte) []byte{
		"flipped byte": func(b []byte) []byte { b[len(b)/2] ^= 0x10; return b },
		"truncated":    func(b []byte) []byte { return b[:len(b)-9] },
		"not lz4":      func(b []byte) []byte { return data[:1000] },
		// A frame as lz4 writes it by default, without a content checksum.
		"no checksum": func(b []byte) []byte { b[4] &^= lz4FlagChecksum; return b },
	} {
		t.Run(what, func(t *testing.T) {
			r, root := localRepo(t, LayoutWalship)
			if _, err := r.PutStream(context.Background(), testObject, bytes.NewReader(data)); err != nil {
				t.Fatal(err)
			}
			p := filepath.Join(root, filepath.FromSlash(testObject.Key()))
			stored, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, spoil(stored), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err = readStream(t, r, testObject)
			if !errors.Is(err, ErrCorrupt) {
				t.Errorf("reading a damaged object: %v, want ErrCorrupt", err)
			}
		})
	}
}

func TestBackupMetaRoundTrip(t *testing.T) {
	r, _ := localRepo(t, LayoutWalship)
	m := BackupMeta{ID: "20240102T030405Z", Label: "nightly", From: "standby", SystemID: 7300000000000000001,
		PGVersion: "15.4", PGVersionNum: 150004, SegSize: 16 << 20,
		Start: 0x5000028, StartTimeline: 2, Stop: 0x5000100, StopTimeline: 2, Checkpoint: 0x5000060,
		StartTime: time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC), StopTime: time.Date(2024, 1, 2, 3, 5, 0, 0, time.UTC),
		Objects: []BackupMetaObject{{Name: "16384.tar", Tablespace: 16384, Location: "/srv/ts", Size: 10, Stored: 5},
			{Name: "base.tar", Size: 100, Stored: 50}},
		Manifest: &ManifestInfo{Checksum: "ab", Algorithm: "CRC32C"}}
	if err := r.PutBackupMeta(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	got, err := r.ReadBackupMeta(context.Background(), m.ID)
	if err != nil {
		t.Fatal(err)
	}
	m.Format = BackupMetaFormat
	if got.ID != m.ID || got.Start != m.Start || got.Stop != m.Stop || got.SystemID != m.SystemID ||
		got.From != "standby" || !got.StopTime.Equal(m.StopTime) || len(got.Objects) != 2 || got.Objects[0] != m.Objects[0] ||
		*got.Manifest != *m.Manifest || got.Format != BackupMetaFormat {
		t.Errorf("read back %+v\nwant %+v", got, m)
	}
	// A record under another backup's ID is refused.
	other := m
	other.ID = "20240102T030406Z"
	data, _ := readStream(t, r, BackupObject{ID: m.ID, Part: MetaPart})
	if _, err := r.PutStream(context.Background(), BackupObject{ID: other.ID, Part: MetaPart}, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	if _, err := r.ReadBackupMeta(context.Background(), other.ID); !errors.Is(err, ErrCorrupt) {
		t.Errorf("a record naming another backup: %v, want ErrCorrupt", err)
	}
}

// In an encrypted repository a backup's objects are encrypted (a writer
// with the public key only cannot read them back, nor is a clear byte of
// them stored), but its record, which retention and verify need without
// an identity; a reader with the identity gets everything back.
func TestStreamEncrypted(t *testing.T) {
	ctx := context.Background()
	root := filepath.Join(t.TempDir(), "repo")
	key := newIdentity(t)
	w := writer(t, root, key)
	n, seg := segment(t, "000000010000000000000003", testSysID, 1)
	if err := w.Claim(ctx, header(t, seg)); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Put(ctx, n, seg); err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte("row of a table in the base backup\n"), 40000)
	if _, err := w.PutStream(ctx, testObject, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	m := BackupMeta{ID: testObject.ID, Label: "nightly", From: "primary", SystemID: testSysID, Start: 0x3000028, StartTimeline: 1,
		Stop: 0x3000100, StopTimeline: 1, Objects: []BackupMetaObject{{Name: "base.tar"}}}
	if err := w.PutBackupMeta(ctx, m); err != nil {
		t.Fatal(err)
	}
	stored := readFile(t, filepath.Join(root, filepath.FromSlash(testObject.Key())))
	if !bytes.HasPrefix(stored, []byte(cryptMagic)) || bytes.Contains(stored, []byte("row of a table")) {
		t.Errorf("the stored base.tar is not encrypted (%q...)", stored[:40])
	}
	if _, err := readStream(t, w, testObject); !errors.Is(err, ErrEncryption) {
		t.Errorf("reading without an identity: %v, want ErrEncryption", err)
	}
	// The record is clear: read without any key.
	if got, err := reopen(t, root, LayoutAuto).ReadBackupMeta(ctx, m.ID); err != nil || got.Start != m.Start {
		t.Errorf("the record without an identity: %+v, %v", got, err)
	}
	got, err := readStream(t, reader(t, root, key), testObject)
	if err != nil || !bytes.Equal(got, data) {
		t.Errorf("reading with the identity: %d bytes, %v", len(got), err)
	}
	// No recipient: an encrypted repository takes no clear object.
	clear := reopen(t, root, LayoutAuto)
	if _, err := clear.PutStream(ctx, BackupObject{ID: testObject.ID, Part: TablespacePart(5)}, bytes.NewReader(data)); !errors.Is(err, ErrEncryption) {
		t.Errorf("a clear object into an encrypted repository: %v, want ErrEncryption", err)
	}
}
