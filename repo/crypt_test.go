package repo

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"filippo.io/age"
)

func newIdentity(t *testing.T) *age.X25519Identity {
	t.Helper()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// writer opens root as an archiver does: recipients only.
func writer(t *testing.T, root string, ids ...*age.X25519Identity) *Repo {
	t.Helper()
	r := reopen(t, root, LayoutAuto)
	r.create = true
	for _, id := range ids {
		r.keys.Recipients = append(r.keys.Recipients, id.Recipient())
	}
	return r
}

// reader opens root as a restore does: identities only.
func reader(t *testing.T, root string, ids ...*age.X25519Identity) *Repo {
	t.Helper()
	r := reopen(t, root, LayoutAuto)
	for _, id := range ids {
		r.keys.Identities = append(r.keys.Identities, id)
	}
	return r
}

// An archiver with only the public key stores objects the clear text of
// which is not in the repository, re-pushes identical content as existing
// and refuses different content; a reader with the identity gets the
// files back; without it, or with another, it is told which key it needs.
func TestEncryptedRoundTrip(t *testing.T) {
	ctx := context.Background()
	for _, codec := range []Codec{CodecLZ4, CodecNone} {
		t.Run(string(codec), func(t *testing.T) {
			root := filepath.Join(t.TempDir(), "repo")
			key := newIdentity(t)
			w := withCodec(writer(t, root, key), codec)
			n, data := segment(t, "000000010000000000000003", testSysID, 1)
			hist := []byte("1\t0/3000158\tno recovery target specified\n")
			hn := parseName(t, "00000002.history")
			if _, err := w.Put(ctx, hn, hist); err != nil { // before any identity: encrypted too
				t.Fatal(err)
			}
			if err := w.Claim(ctx, header(t, data)); err != nil {
				t.Fatal(err)
			}
			if _, err := w.Put(ctx, n, data); err != nil {
				t.Fatal(err)
			}
			id, _, _ := reopen(t, root, LayoutAuto).Identity(ctx)
			if id.Encryption == nil || len(id.Encryption.Recipients) != 1 || id.Encryption.Recipients[0] != Fingerprint(key.Recipient().String()) {
				t.Errorf("identity records encryption %+v, want the recipient's fingerprint", id.Encryption)
			}
			for _, obj := range objects(t, root) {
				stored := readFile(t, filepath.Join(root, obj))
				if bytes.Contains(stored, data[1000:1100]) || bytes.Contains(stored, []byte("no recovery target")) {
					t.Errorf("%s holds clear text", obj)
				}
			}
			// The archiver, without an identity, still tells identical from different.
			if existed, err := writer(t, root, key).Put(ctx, n, data); err != nil || !existed {
				t.Errorf("identical re-push = %v, %v; want existed", existed, err)
			}
			_, other := segment(t, "000000010000000000000003", testSysID, 2)
			if _, err := writer(t, root, key).Put(ctx, n, other); !errors.Is(err, ErrDifferent) {
				t.Errorf("different re-push = %v, want ErrDifferent", err)
			}
			for name, want := range map[string][]byte{n.String(): data, hn.String(): hist} {
				got, o := readAll(t, reader(t, root, key), parseName(t, name))
				if !bytes.Equal(got, want) {
					t.Errorf("%s: read back different content", name)
				}
				if fps := o.Recipients(); len(fps) != 1 || fps[0] != Fingerprint(key.Recipient().String()) {
					t.Errorf("%s: recipients %v", name, fps)
				}
			}
			if err := readErr(t, reopen(t, root, LayoutAuto), n.String()); !errors.Is(err, ErrEncryption) {
				t.Errorf("read without an identity = %v, want ErrEncryption", err)
			}
			if err := readErr(t, reader(t, root, newIdentity(t)), n.String()); !errors.Is(err, ErrEncryption) || errors.Is(err, ErrCorrupt) {
				t.Errorf("read with another identity = %v, want ErrEncryption", err)
			}
		})
	}
}

// A flipped byte anywhere in an encrypted object is refused as corrupt.
func TestEncryptedTamperRefused(t *testing.T) {
	ctx := context.Background()
	root := filepath.Join(t.TempDir(), "repo")
	key := newIdentity(t)
	w := writer(t, root, key)
	n, data := segment(t, "000000010000000000000003", testSysID, 1)
	if err := w.Claim(ctx, header(t, data)); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Put(ctx, n, data); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(root, filepath.FromSlash(Key(LayoutWalship, n, CodecLZ4)))
	orig := readFile(t, p)
	for _, at := range []int{len(orig) / 2, len(orig) - 1, 300} {
		spoilt := bytes.Clone(orig)
		spoilt[at] ^= 1
		os.WriteFile(p, spoilt, 0o600)
		if err := readErr(t, reader(t, root, key), n.String()); !errors.Is(err, ErrCorrupt) {
			t.Errorf("byte %d of %d flipped: read = %v, want ErrCorrupt", at, len(orig), err)
		}
	}
}

// An encrypted repository refuses clear objects and the reverse.
func TestEncryptionMixRefused(t *testing.T) {
	ctx := context.Background()
	n, data := segment(t, "000000010000000000000003", testSysID, 1)
	n2, data2 := segment(t, "000000010000000000000004", testSysID, 1)
	enc := filepath.Join(t.TempDir(), "enc")
	w := writer(t, enc, newIdentity(t))
	if err := w.Claim(ctx, header(t, data)); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Put(ctx, n, data); err != nil {
		t.Fatal(err)
	}
	if _, err := writer(t, enc).Put(ctx, n2, data2); !errors.Is(err, ErrEncryption) {
		t.Errorf("clear push into an encrypted repository = %v, want ErrEncryption", err)
	}
	clear := filepath.Join(t.TempDir(), "clear")
	c := writer(t, clear)
	if err := c.Claim(ctx, header(t, data)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Put(ctx, n, data); err != nil {
		t.Fatal(err)
	}
	if _, err := writer(t, clear, newIdentity(t)).Put(ctx, n2, data2); !errors.Is(err, ErrEncryption) {
		t.Errorf("encrypted push into a clear repository = %v, want ErrEncryption", err)
	}
	if got := objects(t, clear); len(got) != 1 {
		t.Errorf("the clear repository holds %v", got)
	}
	plain := withCodec(reopen(t, filepath.Join(t.TempDir(), "plain"), LayoutPlain), "")
	plain.create = true
	plain.keys.Recipients = []age.Recipient{newIdentity(t).Recipient()}
	if err := plain.Claim(ctx, header(t, data)); !errors.Is(err, ErrMismatch) {
		t.Errorf("an encrypted repository in the plain layout = %v, want refused", err)
	}
}

// Rotation: new objects go to a new recipient; the old identity still reads
// the old ones, the new one the new ones, and each object says its key.
func TestEncryptionRotation(t *testing.T) {
	ctx := context.Background()
	root := filepath.Join(t.TempDir(), "repo")
	old, cur := newIdentity(t), newIdentity(t)
	n1, d1 := segment(t, "000000010000000000000003", testSysID, 1)
	n2, d2 := segment(t, "000000010000000000000004", testSysID, 1)
	w := writer(t, root, old)
	if err := w.Claim(ctx, header(t, d1)); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Put(ctx, n1, d1); err != nil {
		t.Fatal(err)
	}
	if _, err := writer(t, root, cur).Put(ctx, n2, d2); err != nil {
		t.Fatal(err)
	}
	both := reader(t, root, old, cur)
	for n, want := range map[string][]byte{n1.String(): d1, n2.String(): d2} {
		if got, _ := readAll(t, both, parseName(t, n)); !bytes.Equal(got, want) {
			t.Errorf("%s: read back different content with both identities", n)
		}
	}
	if err := readErr(t, reader(t, root, old), n2.String()); !errors.Is(err, ErrEncryption) {
		t.Errorf("the old identity on a new object = %v, want ErrEncryption", err)
	}
	if got, _ := readAll(t, reader(t, root, cur), n2); !bytes.Equal(got, d2) {
		t.Error("the new identity does not read the new object")
	}
}

// An identity file others can read, or that belongs to someone else, is
// refused.
func TestLoadIdentitiesChecksThePermissions(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "key.txt")
	id := newIdentity(t)
	os.WriteFile(p, []byte("# a comment\n"+id.String()+"\n"), 0o600)
	ids, err := LoadIdentities(p)
	if err != nil || len(ids) != 1 {
		t.Fatalf("LoadIdentities of a 0600 file = %v, %v", ids, err)
	}
	os.Chmod(p, 0o640)
	if _, err := LoadIdentities(p); err == nil {
		t.Error("an identity file readable by its group was accepted")
	}
	os.Chmod(p, 0o600)
	if os.Geteuid() == 0 {
		os.Chown(p, 12345, 12345)
		if _, err := LoadIdentities(p); err == nil {
			t.Error("an identity file of another user was accepted")
		}
	}
}

func TestGenerateKey(t *testing.T) {
	p := filepath.Join(t.TempDir(), "key.txt")
	rcpt, err := GenerateKey(p)
	if err != nil {
		t.Fatal(err)
	}
	ids, err := LoadIdentities(p)
	if err != nil || len(ids) != 1 || ids[0].(*age.X25519Identity).Recipient().String() != rcpt {
		t.Fatalf("the key file does not hold the identity of %s: %v, %v", rcpt, ids, err)
	}
	if _, err := GenerateKey(p); err == nil {
		t.Error("an existing key file was replaced")
	}
}
