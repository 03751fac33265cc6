package repo

import (
	"bytes"
	"context"
	"errors"
	"hash/crc32"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"filippo.io/age"
	"github.com/pierrec/lz4/v4"

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
	for name, r := range map[string]*Repo{"local": local, "memory": New(storagetest.NewMem(), Options{Layout: LayoutWalship})} {
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

// encryptedRepo is an encrypted repository at root that holds a segment,
// and a writer into it (the public key only).
func encryptedRepo(t *testing.T) (root string, key *age.X25519Identity, w *Repo) {
	t.Helper()
	root = filepath.Join(t.TempDir(), "repo")
	key = newIdentity(t)
	w = writer(t, root, key)
	n, seg := segment(t, "000000010000000000000003", testSysID, 1)
	if err := w.Claim(context.Background(), header(t, seg)); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Put(context.Background(), n, seg); err != nil {
		t.Fatal(err)
	}
	return root, key, w
}

// In an encrypted repository a backup's objects are encrypted (a writer
// with the public key only cannot read them back, nor is a clear byte of
// them stored), but its record, which retention and verify need without
// an identity; a reader with the identity gets everything back.
func TestStreamEncrypted(t *testing.T) {
	ctx := context.Background()
	root, key, w := encryptedRepo(t)
	data := bytes.Repeat([]byte("row of a table in the base backup\n"), 40000)
	if _, err := w.PutStream(ctx, testObject, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	record := BackupObject{ID: testObject.ID, Part: MetaPart}
	meta := []byte(`{"format": 1, "id": "` + string(testObject.ID) + `"}` + "\n")
	if _, err := w.PutStream(ctx, record, bytes.NewReader(meta)); err != nil {
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
	if got, err := readStream(t, reopen(t, root, LayoutAuto), record); err != nil || !bytes.Equal(got, meta) {
		t.Errorf("the record without an identity: %q, %v", got, err)
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

// serverFrame is data as the server's lz4 compression sends it
// (pg_basebackup --compress=server-lz4): one frame without a content
// checksum.
func serverFrame(t *testing.T, data []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	w := lz4.NewWriter(&b)
	if err := w.Apply(lz4.ChecksumOption(false)); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if b.Bytes()[4]&lz4FlagChecksum != 0 {
		t.Fatal("the test frame carries a content checksum")
	}
	return b.Bytes()
}

// keepContent is a check that keeps the content it is handed.
func keepContent(got *[]byte) func(io.Reader) error {
	return func(r io.Reader) error {
		b, err := io.ReadAll(r)
		*got = b
		return err
	}
}

// A frame compressed by the server is stored as it came, followed by the
// trailer of its CRC-32C, which `lz4 -d` skips; its content is handed to
// the check as it is stored, and read back whole.
func TestFrameRoundTrip(t *testing.T) {
	data := tarLike(3<<20 + 12345)
	frame := serverFrame(t, data)
	local, _ := localRepo(t, LayoutWalship)
	for name, r := range map[string]*Repo{"local": local, "memory": New(storagetest.NewMem(), Options{Layout: LayoutWalship})} {
		t.Run(name, func(t *testing.T) {
			var seen []byte
			info, err := r.PutFrame(context.Background(), testObject, io.MultiReader(bytes.NewReader(frame)), keepContent(&seen))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(seen, data) {
				t.Errorf("the check saw %d bytes, want the %d of the content", len(seen), len(data))
			}
			want := append(append([]byte(nil), frame...), frameTrailer(crc32.Checksum(frame, Castagnoli))...)
			if info.Raw != int64(len(data)) || info.Stored != int64(len(want)) {
				t.Errorf("PutFrame = %+v, want raw %d, stored %d", info, len(data), len(want))
			}
			if stored := readBlob(t, r, testObject); !bytes.Equal(stored, want) {
				t.Errorf("stored %d bytes, want the frame and its trailer (%d)", len(stored), len(want))
			}
			got, err := readStream(t, r, testObject)
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("read back %d bytes, %v; want the %d bytes stored", len(got), err, len(data))
			}
			// Any lz4 reader skips the trailer.
			plain, err := io.ReadAll(lz4.NewReader(bytes.NewReader(readBlob(t, r, testObject))))
			if err != nil || !bytes.Equal(plain, data) {
				t.Errorf("a plain lz4 reader: %d bytes, %v", len(plain), err)
			}
			if _, err := r.PutFrame(context.Background(), testObject, bytes.NewReader(frame), keepContent(&seen)); !errors.Is(err, fs.ErrExist) {
				t.Errorf("second PutFrame of the same object: %v, want fs.ErrExist", err)
			}
		})
	}
	// A frame with a content checksum of its own needs no trailer.
	r, _ := localRepo(t, LayoutWalship)
	own, err := encodeLZ4(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	var seen []byte
	if _, err := r.PutFrame(context.Background(), testObject, bytes.NewReader(own), keepContent(&seen)); err != nil {
		t.Fatal(err)
	}
	if stored := readBlob(t, r, testObject); !bytes.Equal(stored, own) {
		t.Errorf("a checksummed frame was stored as %d bytes, want it as it came (%d)", len(stored), len(own))
	}
	if got, err := readStream(t, r, testObject); err != nil || !bytes.Equal(got, data) {
		t.Errorf("read back %d bytes, %v", len(got), err)
	}
}

func readBlob(t *testing.T, r *Repo, o BackupObject) []byte {
	t.Helper()
	rc, err := r.b.Open(context.Background(), o.Key())
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// What is not one whole lz4 stream, or what the check refuses, stores
// nothing.
func TestFrameRefused(t *testing.T) {
	data := tarLike(1 << 20)
	frame := serverFrame(t, data)
	boom := errors.New("pg_basebackup died")
	refused := errors.New("not a tar")
	for what, c := range map[string]struct {
		src   io.Reader
		check func(io.Reader) error
		want  error
	}{
		"not lz4":       {src: bytes.NewReader(data[:5000])},
		"empty":         {src: bytes.NewReader(nil)},
		"ends early":    {src: bytes.NewReader(frame[:len(frame)/2])},
		"no end mark":   {src: bytes.NewReader(frame[:len(frame)-4])},
		"junk after":    {src: io.MultiReader(bytes.NewReader(frame), bytes.NewReader([]byte("junk after the frame")))},
		"source fails":  {src: io.MultiReader(bytes.NewReader(frame[:len(frame)/2]), iotestErr{boom}), want: boom},
		"check refuses": {src: bytes.NewReader(frame), check: func(io.Reader) error { return refused }, want: refused},
		// What the check did not read is decoded all the same.
		"ends early after the check": {src: bytes.NewReader(frame[:len(frame)/2]), check: func(r io.Reader) error { _, err := io.CopyN(io.Discard, r, 100); return err }},
		"flipped in lz4":             {src: bytes.NewReader(flip(frame, 100))},
	} {
		t.Run(what, func(t *testing.T) {
			r, _ := localRepo(t, LayoutWalship)
			check := c.check
			if check == nil {
				check = func(r io.Reader) error { _, err := io.Copy(io.Discard, r); return err }
			}
			_, err := r.PutFrame(context.Background(), testObject, c.src, check)
			if err == nil || (c.want != nil && !errors.Is(err, c.want)) {
				t.Fatalf("PutFrame: %v, want an error (%v)", err, c.want)
			}
			if _, err := r.b.Stat(context.Background(), testObject.Key()); !storage.IsNotExist(err) {
				t.Errorf("after a refused PutFrame the object is there (%v)", err)
			}
		})
	}
}

func flip(b []byte, i int) []byte {
	c := append([]byte(nil), b...)
	c[i] ^= 0xff
	return c
}

// A stored frame of the server's that was damaged is never read back as
// good data.
func TestFrameCorruptObject(t *testing.T) {
	data := tarLike(1 << 20)
	frame := serverFrame(t, data)
	junk := append(append([]byte(nil), frame...), "junk"...)
	for what, spoil := range map[string]func([]byte) []byte{
		// In a literal: the frame still decodes, to other bytes.
		"flipped byte":  func(b []byte) []byte { b[len(frame)/2] ^= 0x10; return b },
		"trailer lost":  func(b []byte) []byte { return b[:len(frame)] },
		"trailer cut":   func(b []byte) []byte { return b[:len(b)-3] },
		"checksum lost": func(b []byte) []byte { b[len(b)-3] ^= 0x01; return b },
		"data after the frame": func([]byte) []byte {
			return append(append([]byte(nil), junk...), frameTrailer(crc32.Checksum(junk, Castagnoli))...)
		},
	} {
		t.Run(what, func(t *testing.T) {
			r, root := localRepo(t, LayoutWalship)
			if _, err := r.PutFrame(context.Background(), testObject, bytes.NewReader(frame), func(r io.Reader) error { _, err := io.Copy(io.Discard, r); return err }); err != nil {
				t.Fatal(err)
			}
			p := filepath.Join(root, filepath.FromSlash(testObject.Key()))
			if err := os.WriteFile(p, spoil(readFile(t, p)), 0o600); err != nil {
				t.Fatal(err)
			}
			if got, err := readStream(t, r, testObject); !errors.Is(err, ErrCorrupt) {
				t.Errorf("reading a damaged object: %d bytes, %v, want ErrCorrupt", len(got), err)
			}
		})
	}
}

// In an encrypted repository the server's frame is encrypted as
// walship's own are.
func TestFrameEncrypted(t *testing.T) {
	ctx := context.Background()
	root, key, w := encryptedRepo(t)
	data := bytes.Repeat([]byte("row of a table in the base backup\n"), 40000)
	var seen []byte
	if _, err := w.PutFrame(ctx, testObject, bytes.NewReader(serverFrame(t, data)), keepContent(&seen)); err != nil {
		t.Fatal(err)
	}
	stored := readFile(t, filepath.Join(root, filepath.FromSlash(testObject.Key())))
	if !bytes.HasPrefix(stored, []byte(cryptMagic)) || bytes.Contains(stored, []byte("row of a table")) || bytes.Contains(stored, []byte(footerPrefix)) {
		t.Errorf("the stored base.tar is not encrypted (%q...)", stored[:40])
	}
	got, err := readStream(t, reader(t, root, key), testObject)
	if err != nil || !bytes.Equal(got, data) {
		t.Errorf("reading with the identity: %d bytes, %v", len(got), err)
	}
}
