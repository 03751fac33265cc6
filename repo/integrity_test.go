package repo

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/walship/walship/storage"
	"github.com/walship/walship/storage/local"
)

// readErr reads n back and returns the error of the read, or of the open.
func readErr(t *testing.T, r *Repo, n string) error {
	t.Helper()
	o, err := r.Open(context.Background(), parseName(t, n))
	if err != nil {
		return err
	}
	defer o.Close()
	_, err = io.ReadAll(o)
	return err
}

// An uncompressed object carries a checksum of its content: a flipped
// byte, a truncation or a lost footer is corrupt, never handed out.
func TestSealedObjectsAreChecked(t *testing.T) {
	ctx := context.Background()
	const seg = "000000010000000000000003"
	const hist = "00000002.history"
	for what, spoil := range map[string]func([]byte) []byte{
		"flipped byte":   func(b []byte) []byte { b[len(b)/3] ^= 0x01; return b },
		"truncated":      func(b []byte) []byte { return b[:len(b)-FooterSize-1] },
		"no footer":      func(b []byte) []byte { return b[:len(b)-FooterSize] },
		"footer damaged": func(b []byte) []byte { b[len(b)-3] ^= 0x01; return b },
		"appended":       func(b []byte) []byte { return append(b, 'x') },
	} {
		t.Run(what, func(t *testing.T) {
			r, root := localRepo(t, LayoutWalship)
			n, data := segment(t, seg, testSysID, 1)
			if err := withCodec(r, CodecNone).Claim(ctx, header(t, data)); err != nil {
				t.Fatal(err)
			}
			if _, err := r.Put(ctx, n, data); err != nil {
				t.Fatal(err)
			}
			if _, err := r.Put(ctx, parseName(t, hist), []byte("1\t0/3000158\tno recovery target specified\n")); err != nil {
				t.Fatal(err)
			}
			for _, name := range []string{seg, hist} {
				p := filepath.Join(root, filepath.FromSlash(Key(LayoutWalship, parseName(t, name), CodecNone)))
				if err := os.WriteFile(p, spoil(readFile(t, p)), 0o600); err != nil {
					t.Fatal(err)
				}
				if err := readErr(t, reopen(t, root, LayoutAuto), name); !errors.Is(err, ErrCorrupt) {
					t.Errorf("%s: read = %v, want ErrCorrupt", name, err)
				}
			}
		})
	}
}

// An lz4 frame without a content checksum is refused.
func TestLZ4FrameWithoutChecksumRefused(t *testing.T) {
	ctx := context.Background()
	r, root := localRepo(t, LayoutWalship)
	n, data := segment(t, "000000010000000000000003", testSysID, 1)
	if err := r.Claim(ctx, header(t, data)); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Put(ctx, n, data); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(root, filepath.FromSlash(Key(LayoutWalship, n, CodecLZ4)))
	frame := readFile(t, p)
	// Clear the content-checksum flag; the frame stays readable to lz4.
	frame[4] &^= lz4FlagChecksum
	os.WriteFile(p, frame, 0o600)
	err := readErr(t, reopen(t, root, LayoutAuto), n.String())
	var ce *CorruptError
	if !errors.As(err, &ce) || !strings.Contains(ce.Reason, "checksum") {
		t.Errorf("read of a frame without checksum = %v, want a CorruptError about the checksum", err)
	}
}

// A repository of format 1 is read as it was written (bare uncompressed
// objects, either codec) and never written.
func TestFormat1ReadOnly(t *testing.T) {
	ctx := context.Background()
	root := filepath.Join(t.TempDir(), "repo")
	n, data := segment(t, "000000010000000000000003", testSysID, 1)
	id := Identity{Format: 1, SystemID: testSysID, SegSize: testSegSize, Layout: LayoutWalship}
	idData, _ := json.Marshal(id)
	p := filepath.Join(root, filepath.FromSlash(Key(LayoutWalship, n, CodecNone)))
	os.MkdirAll(filepath.Dir(p), 0o700)
	os.WriteFile(filepath.Join(root, IdentityKey), idData, 0o600)
	os.WriteFile(p, data, 0o600)
	r := reopen(t, root, LayoutAuto)
	if got, _ := readAll(t, r, n); !bytes.Equal(got, data) {
		t.Error("format 1: read back different content")
	}
	n2, data2 := segment(t, "000000010000000000000004", testSysID, 1)
	if _, err := r.Put(ctx, n2, data2); !errors.Is(err, ErrOldFormat) {
		t.Errorf("Put into format 1 = %v, want ErrOldFormat", err)
	}
}

// objects lists every file under root but the identity file.
func objects(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && d.Name() != IdentityKey {
			rel, _ := filepath.Rel(root, p)
			out = append(out, rel)
		}
		return nil
	})
	return out
}

// Two archivers race for the same name in a new repository, each with its
// own settings (compression, layout) and its own content: whatever the
// interleaving, at most one succeeds, exactly one object holds the name,
// and it holds the winner's content.
func TestConcurrentPushesDifferentSettings(t *testing.T) {
	type side struct {
		layout Layout
		codec  Codec
	}
	pairs := [][2]side{
		{{LayoutAuto, CodecLZ4}, {LayoutAuto, CodecNone}},
		{{LayoutWalship, CodecLZ4}, {LayoutPlain, CodecNone}},
		{{LayoutAuto, ""}, {LayoutPlain, CodecLZ4}},
	}
	ctx := context.Background()
	for round := 0; round < 300; round++ {
		pair := pairs[round%len(pairs)]
		root := filepath.Join(t.TempDir(), "repo")
		n, a := segment(t, "000000010000000000000007", testSysID, 1)
		_, b := segment(t, "000000010000000000000007", testSysID, 2)
		contents := [2][]byte{a, b}
		var errs [2]error
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i, s := range pair {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := withCodec(reopen(t, root, s.layout), s.codec)
				<-start
				if errs[i] = r.Claim(ctx, header(t, contents[i])); errs[i] == nil {
					_, errs[i] = r.Put(ctx, n, contents[i])
				}
			}()
		}
		close(start)
		wg.Wait()
		if errs[0] == nil && errs[1] == nil {
			t.Fatalf("round %d %v: both pushes of different content succeeded", round, pair)
		}
		objs := objects(t, root)
		if errs[0] != nil && errs[1] != nil {
			if len(objs) > 1 {
				t.Fatalf("round %d: both failed (%v; %v) and left %v", round, errs[0], errs[1], objs)
			}
			continue
		}
		if len(objs) != 1 {
			t.Fatalf("round %d %v: %d objects hold %s: %v (errors %v; %v)", round, pair, len(objs), n, objs, errs[0], errs[1])
		}
		winner := 0
		if errs[0] != nil {
			winner = 1
		}
		if got, _ := readAll(t, reopen(t, root, LayoutAuto), n); !bytes.Equal(got, contents[winner]) {
			t.Fatalf("round %d: the stored content is not the successful push's", round)
		}
	}
}

// syncing counts the syncs asked of a local backend.
type syncing struct {
	storage.Backend
	synced []string
}

func (s *syncing) Sync(ctx context.Context, key string) error {
	s.synced = append(s.synced, key)
	return s.Backend.(storage.Syncer).Sync(ctx, key)
}

// A push of identical content answers "archived" only after the stored
// copy was made durable: an earlier attempt may have died between its
// rename and the sync of the directory.
func TestIdenticalPushSyncs(t *testing.T) {
	ctx := context.Background()
	root := filepath.Join(t.TempDir(), "repo")
	lb, _ := local.New(root)
	sb := &syncing{Backend: lb}
	r := New(sb, Options{Layout: LayoutAuto})
	r.create = true
	n, data := segment(t, "000000010000000000000003", testSysID, 1)
	if err := r.Claim(ctx, header(t, data)); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Put(ctx, n, data); err != nil {
		t.Fatal(err)
	}
	if len(sb.synced) != 0 {
		t.Errorf("a fresh put synced again: %v", sb.synced)
	}
	if existed, err := r.Put(ctx, n, data); err != nil || !existed {
		t.Fatalf("Put again = %v, %v", existed, err)
	}
	if want := Key(LayoutWalship, n, CodecLZ4); len(sb.synced) != 1 || sb.synced[0] != want {
		t.Errorf("synced %v, want [%s]", sb.synced, want)
	}
}
