package repo

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/walship/walship/storage/local"
	"github.com/walship/walship/storage/storagetest"
	"github.com/walship/walship/wal"
	"github.com/walship/walship/wal/waltest"
)

const (
	testSysID   = 7229286521432618453
	testSegSize = 1 << 20
)

// localRepo opens a repository in a directory that does not exist yet.
func localRepo(t *testing.T, layout Layout) (*Repo, string) {
	t.Helper()
	root := filepath.Join(t.TempDir(), "repo")
	b, err := local.New(root)
	if err != nil {
		t.Fatal(err)
	}
	r := New(b, Options{Layout: layout})
	r.create = true
	return r, root
}

// reopen is a fresh Repo on the same directory, as the next archive_command
// or restore_command sees it.
func reopen(t *testing.T, root string, layout Layout) *Repo {
	t.Helper()
	b, err := local.New(root)
	if err != nil {
		t.Fatal(err)
	}
	return New(b, Options{Layout: layout})
}

// segment is a fake segment whose body is compressible but not trivial.
func segment(t testing.TB, name string, sysID uint64, seed int) (wal.Name, []byte) {
	t.Helper()
	n := parseName(t, name)
	return n, waltest.Seeded(n, sysID, testSegSize, byte(seed))
}

func header(t testing.TB, data []byte) wal.LongHeader {
	t.Helper()
	h, err := wal.ParseLongHeader(data)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func readAll(t *testing.T, r *Repo, n wal.Name) ([]byte, *Object) {
	t.Helper()
	o, err := r.Open(context.Background(), n)
	if err != nil {
		t.Fatalf("Open(%s): %v", n, err)
	}
	defer o.Close()
	data, err := io.ReadAll(o)
	if err != nil {
		t.Fatalf("reading %s: %v", n, err)
	}
	return data, o
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestIdentityMissingDirectory(t *testing.T) {
	ctx := context.Background()
	root := filepath.Join(t.TempDir(), "nowhere")
	r := reopen(t, root, LayoutAuto)
	if _, ok, err := r.Identity(ctx); !errors.Is(err, ErrNoRepository) || ok {
		t.Errorf("Identity = ok %v, %v; want ErrNoRepository", ok, err)
	}
	n, data := segment(t, "000000010000000000000001", testSysID, 1)
	if _, err := withCodec(r, CodecLZ4).Put(ctx, n, data); !errors.Is(err, ErrNoRepository) {
		t.Errorf("Put = %v, want ErrNoRepository", err)
	}
	if _, err := r.Open(ctx, n); !errors.Is(err, ErrNoRepository) || errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Open = %v, want ErrNoRepository and not fs.ErrNotExist", err)
	}
	if err := r.List(ctx, func(Entry) error { return nil }); !errors.Is(err, ErrNoRepository) {
		t.Errorf("List = %v, want ErrNoRepository", err)
	}
	if _, err := os.Stat(root); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the directory was created: %v", err)
	}

	r.create = true
	if _, ok, err := r.Identity(ctx); err != nil || ok {
		t.Errorf("Identity with Create = ok %v, %v; want no identity and no error", ok, err)
	}

	// An existing empty directory (an archive mount that is not mounted)
	// is no repository for reading either: "not found" from it would end
	// a recovery early. Archiving creates the repository there.
	if err := os.Mkdir(root, 0o700); err != nil {
		t.Fatal(err)
	}
	r = reopen(t, root, LayoutAuto)
	if _, ok, err := r.Identity(ctx); err != nil || ok {
		t.Errorf("Identity of an empty directory = ok %v, %v; want no identity and no error", ok, err)
	}
	if _, err := r.Open(ctx, n); !errors.Is(err, ErrNoRepository) || errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Open in an empty directory = %v, want ErrNoRepository and not fs.ErrNotExist", err)
	}
	if _, err := r.Find(ctx, n); !errors.Is(err, ErrNoRepository) || errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Find in an empty directory = %v, want ErrNoRepository and not fs.ErrNotExist", err)
	}
	r.create = true
	if _, err := r.Open(ctx, n); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Open with Create in an empty directory = %v, want fs.ErrNotExist", err)
	}
	// A directory of bare WAL files without an identity (cp's) is a
	// repository: a file missing from it is not found.
	os.WriteFile(filepath.Join(root, "000000010000000000000009"), data, 0o600)
	if _, err := reopen(t, root, LayoutAuto).Open(ctx, n); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Open of a missing file beside cp's = %v, want fs.ErrNotExist", err)
	}
}

func TestClaim(t *testing.T) {
	ctx := context.Background()
	r, root := localRepo(t, LayoutAuto)
	_, data := segment(t, "000000010000000000000001", testSysID, 1)
	h := header(t, data)
	if err := r.Claim(ctx, h); err != nil {
		t.Fatalf("first Claim: %v", err)
	}
	idPath := filepath.Join(root, IdentityKey)
	written := readFile(t, idPath)
	var id Identity
	if err := json.Unmarshal(written, &id); err != nil {
		t.Fatalf("walship.json: %v\n%s", err, written)
	}
	if id.SystemID != testSysID || id.SegSize != testSegSize || id.Layout != LayoutWalship || id.PGVersion != "15" || id.Format != Format || id.Codec != CodecLZ4 || id.Created.IsZero() {
		t.Errorf("identity = %+v", id)
	}
	if r.Layout() != LayoutWalship {
		t.Errorf("Layout after Claim = %s, want walship", r.Layout())
	}
	// The same cluster again, from this Repo and from a fresh one.
	if err := r.Claim(ctx, h); err != nil {
		t.Errorf("second Claim: %v", err)
	}
	if err := reopen(t, root, LayoutAuto).Claim(ctx, h); err != nil {
		t.Errorf("Claim from a fresh Repo: %v", err)
	}

	other := h
	other.SysID++
	bigger := h
	bigger.SegSize = 16 << 20
	for name, h := range map[string]wal.LongHeader{"system identifier": other, "segment size": bigger} {
		t.Run(name, func(t *testing.T) {
			err := reopen(t, root, LayoutAuto).Claim(ctx, h)
			if !errors.Is(err, wal.ErrOtherCluster) {
				t.Errorf("Claim = %v, want wal.ErrOtherCluster", err)
			}
			if err := r.Claim(ctx, h); !errors.Is(err, wal.ErrOtherCluster) {
				t.Errorf("Claim on the Repo that wrote it = %v, want wal.ErrOtherCluster", err)
			}
		})
	}
	if got := readFile(t, idPath); !bytes.Equal(got, written) {
		t.Errorf("walship.json changed:\n%s\nwant\n%s", got, written)
	}
}

func TestClaimRace(t *testing.T) {
	// Two Repos find no identity; the second one's create-only write loses
	// and it must compare with the winner's.
	ctx := context.Background()
	a, root := localRepo(t, LayoutAuto)
	b := reopen(t, root, LayoutAuto)
	b.create = true
	for _, r := range []*Repo{a, b} {
		if _, ok, err := r.Identity(ctx); err != nil || ok {
			t.Fatalf("Identity = %v, %v", ok, err)
		}
	}
	_, data := segment(t, "000000010000000000000001", testSysID, 1)
	h := header(t, data)
	if err := a.Claim(ctx, h); err != nil {
		t.Fatal(err)
	}
	other := h
	other.SysID = 42
	if err := b.Claim(ctx, other); !errors.Is(err, wal.ErrOtherCluster) {
		t.Errorf("losing Claim = %v, want wal.ErrOtherCluster", err)
	}
}

func TestDamagedIdentity(t *testing.T) {
	ctx := context.Background()
	for name, content := range map[string]string{
		"not json":       "walship\n",
		"no system":      `{"format":1,"wal_segment_size":16777216}`,
		"bad seg size":   `{"format":1,"system_identifier":"1","wal_segment_size":1000}`,
		"number, string": `{"format":1,"system_identifier":1,"wal_segment_size":16777216}`,
	} {
		t.Run(name, func(t *testing.T) {
			root := t.TempDir()
			if err := os.WriteFile(filepath.Join(root, IdentityKey), []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
			if _, ok, err := reopen(t, root, LayoutAuto).Identity(ctx); err == nil || ok {
				t.Errorf("Identity = ok %v, %v; want an error", ok, err)
			}
		})
	}
}

func TestLayoutFromIdentity(t *testing.T) {
	ctx := context.Background()
	r, root := localRepo(t, LayoutPlain)
	n, data := segment(t, "000000010000000000000001", testSysID, 1)
	if err := withCodec(r, CodecNone).Claim(ctx, header(t, data)); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Put(ctx, n, data); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "000000010000000000000001")); err != nil {
		t.Errorf("plain layout: %v", err)
	}
	r2 := reopen(t, root, LayoutAuto)
	if _, _, err := r2.Identity(ctx); err != nil {
		t.Fatal(err)
	}
	if r2.Layout() != LayoutPlain {
		t.Errorf("Layout = %s, want plain from the identity file", r2.Layout())
	}
	if got, _ := readAll(t, r2, n); !bytes.Equal(got, data) {
		t.Error("read back different bytes")
	}
}

func TestPutOpen(t *testing.T) {
	ctx := context.Background()
	for _, layout := range []Layout{LayoutWalship, LayoutPlain} {
		for _, codec := range []Codec{CodecLZ4, CodecNone} {
			t.Run(string(layout)+"/"+string(codec), func(t *testing.T) {
				r, root := localRepo(t, layout)
				n, data := segment(t, "0000000200000001000000FF", testSysID, 1)
				if err := withCodec(r, codec).Claim(ctx, header(t, data)); err != nil {
					t.Fatal(err)
				}
				existed, err := r.Put(ctx, n, data)
				if err != nil || existed {
					t.Fatalf("Put = %v, %v; want false, nil", existed, err)
				}
				key := Key(layout, n, codec)
				stored := readFile(t, filepath.Join(root, filepath.FromSlash(key)))
				switch {
				case codec == CodecNone && layout == LayoutPlain && !bytes.Equal(stored, data):
					t.Error("an uncompressed object of the plain layout is not the file itself")
				case codec == CodecNone && layout == LayoutWalship &&
					(!bytes.Equal(stored[:len(data)], data) || !bytes.Equal(stored[len(data):], Footer(crc32.Checksum(data, Castagnoli)))):
					t.Errorf("an uncompressed object of the walship layout is not the file and its checksum footer (%d bytes for %d)", len(stored), len(data))
				}
				if codec == CodecLZ4 && len(stored) >= len(data) {
					t.Errorf("lz4 object is %d bytes for %d", len(stored), len(data))
				}

				got, o := readAll(t, reopen(t, root, LayoutAuto), n)
				if !bytes.Equal(got, data) {
					t.Errorf("read back %d bytes, different from the %d put", len(got), len(data))
				}
				if o.Key != key || o.Codec != codec || o.Name != n {
					t.Errorf("Object = %s %s %v, want %s %s %v", o.Key, o.Codec, o.Name, key, codec, n)
				}
				e, err := r.Find(ctx, n)
				if err != nil || e.Key != key || e.Size != int64(len(stored)) || e.Codec != codec || e.Name != n {
					t.Errorf("Find = %+v, %v; want %s (%s) of %d bytes", e, err, key, codec, len(stored))
				}
			})
		}
	}
}

func TestPutTextFilesUncompressed(t *testing.T) {
	ctx := context.Background()
	r, root := localRepo(t, LayoutWalship)
	hist := []byte("1\t0/3000158\tno recovery target specified\n")
	n := parseName(t, "00000002.history")
	if _, err := withCodec(r, CodecLZ4).Put(ctx, n, hist); err != nil {
		t.Fatal(err)
	}
	// Text as it is, then the checksum footer: a comment line.
	want := append(bytes.Clone(hist), "#walship crc32c="...)
	if got := readFile(t, filepath.Join(root, "wal", "00000002.history")); !bytes.HasPrefix(got, want) || len(got) != len(hist)+FooterSize {
		t.Errorf("history stored as %q, want it as it is with a checksum footer", got)
	}
	if got, _ := readAll(t, r, n); !bytes.Equal(got, hist) {
		t.Errorf("read back %q", got)
	}
}

func TestPutAgain(t *testing.T) {
	ctx := context.Background()
	for _, codec := range []Codec{CodecLZ4, CodecNone} {
		t.Run(string(codec), func(t *testing.T) {
			r, root := localRepo(t, LayoutWalship)
			n, data := segment(t, "000000010000000000000003", testSysID, 1)
			if err := withCodec(r, codec).Claim(ctx, header(t, data)); err != nil {
				t.Fatal(err)
			}
			if _, err := r.Put(ctx, n, data); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(root, filepath.FromSlash(Key(LayoutWalship, n, codec)))
			before := readFile(t, path)

			existed, err := withCodec(reopen(t, root, LayoutAuto), codec).Put(ctx, n, bytes.Clone(data))
			if err != nil || !existed {
				t.Errorf("Put of identical content = %v, %v; want true, nil", existed, err)
			}

			_, other := segment(t, "000000010000000000000003", testSysID, 2)
			for name, different := range map[string][]byte{
				"other body": other,
				"truncated":  data[:len(data)-1],
				"extended":   append(bytes.Clone(data), 0),
			} {
				_, err := withCodec(reopen(t, root, LayoutAuto), codec).Put(ctx, n, different)
				if !errors.Is(err, ErrDifferent) || !errors.Is(err, fs.ErrExist) {
					t.Errorf("%s: Put = %v, want ErrDifferent and fs.ErrExist", name, err)
				}
			}
			if got := readFile(t, path); !bytes.Equal(got, before) {
				t.Error("the stored object changed")
			}
			if got, _ := readAll(t, r, n); !bytes.Equal(got, data) {
				t.Error("the stored content changed")
			}
		})
	}
}

// A name has one object whatever the compression asked for: once the
// repository records one, another is refused and nothing is stored.
func TestOneCodecPerRepository(t *testing.T) {
	ctx := context.Background()
	for _, first := range []Codec{CodecNone, CodecLZ4} {
		other := CodecLZ4
		if first == CodecLZ4 {
			other = CodecNone
		}
		t.Run(string(first), func(t *testing.T) {
			r, root := localRepo(t, LayoutWalship)
			n, data := segment(t, "000000010000000000000003", testSysID, 1)
			if err := withCodec(r, first).Claim(ctx, header(t, data)); err != nil {
				t.Fatal(err)
			}
			if _, err := r.Put(ctx, n, data); err != nil {
				t.Fatal(err)
			}
			otherPath := filepath.Join(root, filepath.FromSlash(Key(LayoutWalship, n, other)))
			_, otherData := segment(t, "000000010000000000000003", testSysID, 2)
			for _, d := range [][]byte{data, otherData} {
				if _, err := withCodec(reopen(t, root, LayoutAuto), other).Put(ctx, n, d); !errors.Is(err, ErrMismatch) {
					t.Errorf("Put with compression %s into a %s repository = %v, want ErrMismatch", other, first, err)
				}
				// Also when the setting changes under an open repository.
				if _, err := withCodec(r, other).Put(ctx, n, d); !errors.Is(err, ErrMismatch) {
					t.Errorf("Put with compression %s after opening = %v, want ErrMismatch", other, err)
				}
			}
			if _, err := os.Stat(otherPath); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("a second copy was stored under the other codec: %v", err)
			}
			// The repository's own compression, asked for or not, works.
			for _, c := range []Codec{"", first} {
				if existed, err := withCodec(reopen(t, root, LayoutAuto), c).Put(ctx, n, data); err != nil || !existed {
					t.Errorf("Put again with %q = %v, %v; want true, nil", c, existed, err)
				}
			}
		})
	}
}

// A layout asked for that disagrees with the identity file is refused,
// for reading and writing alike.
func TestLayoutMismatch(t *testing.T) {
	ctx := context.Background()
	r, root := localRepo(t, LayoutWalship)
	n, data := segment(t, "000000010000000000000003", testSysID, 1)
	if err := r.Claim(ctx, header(t, data)); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Put(ctx, n, data); err != nil {
		t.Fatal(err)
	}
	plain := reopen(t, root, LayoutPlain)
	if _, err := plain.Put(ctx, n, data); !errors.Is(err, ErrMismatch) {
		t.Errorf("Put --layout plain into a walship repository = %v, want ErrMismatch", err)
	}
	if _, err := plain.Open(ctx, n); !errors.Is(err, ErrMismatch) {
		t.Errorf("Open --layout plain of a walship repository = %v, want ErrMismatch", err)
	}
	if _, err := os.Stat(filepath.Join(root, n.String())); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a second copy was stored at the top: %v", err)
	}
}

// Archiving with the layout left to walship into a directory that cp
// filled keeps to cp's layout: one name, one place.
func TestAutoLayoutFollowsCp(t *testing.T) {
	ctx := context.Background()
	r, root := localRepo(t, LayoutAuto)
	n1, d1 := segment(t, "000000010000000000000001", testSysID, 1)
	os.MkdirAll(root, 0o700)
	os.WriteFile(filepath.Join(root, n1.String()), d1, 0o600)
	n2, d2 := segment(t, "000000010000000000000002", testSysID, 1)
	if err := r.Claim(ctx, header(t, d2)); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Put(ctx, n2, d2); err != nil {
		t.Fatal(err)
	}
	if id, _, _ := reopen(t, root, LayoutAuto).Identity(ctx); id.Layout != LayoutPlain {
		t.Errorf("identity layout %q, want plain (the files already there)", id.Layout)
	}
	if _, err := os.Stat(filepath.Join(root, "wal")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a walship-layout tree was started beside cp's files: %v", err)
	}
	if existed, err := reopen(t, root, LayoutAuto).Put(ctx, n1, d1); err != nil || !existed {
		t.Errorf("Put of cp's file = %v, %v; want it found where cp put it", existed, err)
	}
}

// flipMiddle inverts one byte in the middle of a file.
func flipMiddle(t *testing.T, path string) {
	t.Helper()
	b := readFile(t, path)
	b[len(b)/2] ^= 0xFF
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestCorruptLZ4(t *testing.T) {
	damage := map[string]func(t *testing.T, path string){
		"flipped byte": flipMiddle,
		"cut in half": func(t *testing.T, path string) {
			if err := os.Truncate(path, int64(len(readFile(t, path))/2)); err != nil {
				t.Fatal(err)
			}
		},
		"checksum cut off": func(t *testing.T, path string) {
			if err := os.Truncate(path, int64(len(readFile(t, path))-4)); err != nil {
				t.Fatal(err)
			}
		},
		"garbage": func(t *testing.T, path string) {
			if err := os.WriteFile(path, []byte("this is not an lz4 frame"), 0o600); err != nil {
				t.Fatal(err)
			}
		},
	}
	for name, spoil := range damage {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			r, root := localRepo(t, LayoutWalship)
			n, data := segment(t, "000000010000000000000003", testSysID, 1)
			if err := r.Claim(ctx, header(t, data)); err != nil {
				t.Fatal(err)
			}
			if _, err := withCodec(r, CodecLZ4).Put(ctx, n, data); err != nil {
				t.Fatal(err)
			}
			key := Key(LayoutWalship, n, CodecLZ4)
			spoil(t, filepath.Join(root, filepath.FromSlash(key)))

			o, err := r.Open(ctx, n)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			defer o.Close()
			_, err = io.ReadAll(o)
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("reading a damaged object: %v, want ErrCorrupt", err)
			}
			var ce *CorruptError
			if !errors.As(err, &ce) || ce.Key != key {
				t.Errorf("error %v does not name the key %s", err, key)
			}

			// Archiving the same file again must not report success
			// against a copy that cannot be read.
			if _, err := withCodec(r, CodecLZ4).Put(ctx, n, data); err == nil {
				t.Error("Put of identical content over a damaged object = nil, want an error")
			}
		})
	}
}

func TestList(t *testing.T) {
	ctx := context.Background()
	r, root := localRepo(t, LayoutWalship)
	_, first := segment(t, "000000010000000000000001", testSysID, 1)
	if err := r.Claim(ctx, header(t, first)); err != nil {
		t.Fatal(err)
	}
	files := map[string]Codec{
		"0000000100000001000000FF":                 CodecLZ4,
		"000000010000000000000001":                 CodecLZ4,
		"000000010000000000000002":                 CodecNone,
		"000000010000000000000002.00000028.backup": CodecNone,
		"000000010000000200000000.partial":         CodecLZ4,
		"00000002.history":                         CodecNone,
		"000000020000000200000000":                 CodecLZ4,
	}
	for s, c := range files {
		n := parseName(t, s)
		var data []byte
		switch n.Kind {
		case wal.KindHistory:
			data = []byte("1\t2/0\tx\n")
		case wal.KindBackup:
			data = []byte("START WAL LOCATION: 0/2000028\nSTOP WAL LOCATION: 0/2000100\n")
		default:
			_, data = segment(t, s, testSysID, 1)
		}
		if c == CodecNone && Compressible(n.Kind) {
			// Another codec than the repository's: only format 1 stored
			// such mixes; List must still read them.
			obj, _ := Encode(c, data, true)
			p := filepath.Join(root, filepath.FromSlash(Key(LayoutWalship, n, c)))
			os.MkdirAll(filepath.Dir(p), 0o700)
			if err := os.WriteFile(p, obj, 0o600); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if _, err := withCodec(r, CodecLZ4).Put(ctx, n, data); err != nil {
			t.Fatal(err)
		}
	}
	// Stray objects: not WAL, or not where Key puts them.
	for _, stray := range []string{"README", "000000010000000000000009.gz",
		"wal/notes.txt", "wal/000000010000000000000005", "wal/0000000100000000/x.lz4",
		"wal/0000000100000001/000000010000000000000001", "wal/0000000100000000/00000003.history"} {
		p := filepath.Join(root, filepath.FromSlash(stray))
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("stray"), 0o600); err != nil {
			t.Fatal(err)
		}
	}

	var keys []string
	err := reopen(t, root, LayoutAuto).List(ctx, func(e Entry) error {
		keys = append(keys, e.Key)
		if want := Key(LayoutWalship, e.Name, e.Codec); want != e.Key {
			t.Errorf("entry %v: key %s, want %s", e.Name, e.Key, want)
		}
		if files[e.Name.String()] != e.Codec && Compressible(e.Name.Kind) {
			t.Errorf("entry %v: codec %s, want %s", e.Name, e.Codec, files[e.Name.String()])
		}
		if e.Size <= 0 || e.Size != e.Info.Size {
			t.Errorf("entry %v: size %d, info %d", e.Name, e.Size, e.Info.Size)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{ // in byte order of the keys
		"wal/0000000100000000/000000010000000000000001.lz4",
		"wal/0000000100000000/000000010000000000000002",
		"wal/0000000100000000/000000010000000000000002.00000028.backup",
		"wal/0000000100000001/0000000100000001000000FF.lz4",
		"wal/0000000100000002/000000010000000200000000.partial.lz4",
		"wal/00000002.history",
		"wal/0000000200000002/000000020000000200000000.lz4",
	}
	if !sort.StringsAreSorted(want) {
		t.Fatal("the expected keys are not in key order")
	}
	if !reflect.DeepEqual(keys, want) {
		t.Errorf("List keys:\n%s\nwant\n%s", strings.Join(keys, "\n"), strings.Join(want, "\n"))
	}

	// An error from fn stops the listing.
	stop := errors.New("stop")
	calls := 0
	err = r.List(ctx, func(Entry) error { calls++; return stop })
	if !errors.Is(err, stop) || calls != 1 {
		t.Errorf("List with a failing fn = %v after %d calls, want stop after 1", err, calls)
	}
}

func TestListAutoWithoutIdentity(t *testing.T) {
	// A directory filled by cp: plain names, no identity file.
	ctx := context.Background()
	root := t.TempDir()
	for _, s := range []string{"000000010000000000000002", "000000010000000000000001", "00000002.history"} {
		if err := os.WriteFile(filepath.Join(root, s), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	err := reopen(t, root, LayoutAuto).List(ctx, func(e Entry) error {
		got = append(got, e.Name.String())
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"000000010000000000000001", "000000010000000000000002", "00000002.history"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("List = %v, want %v", got, want)
	}
}

// recorderRepo is a repository on a local directory seen through
// storagetest.Faulty: puts are recorded, and stream says whether the store
// claims to stream them.
func recorderRepo(t *testing.T, stream bool) (*Repo, *storagetest.Faulty, string) {
	t.Helper()
	root := filepath.Join(t.TempDir(), "repo")
	b, err := local.New(root)
	if err != nil {
		t.Fatal(err)
	}
	p := &storagetest.Faulty{Backend: b, Streams: stream}
	r := New(p, Options{Layout: LayoutWalship})
	r.create = true
	return r, p, root
}

// A compressed segment reaches a streaming backend as a stream, any other
// backend with its exact size, and both store the same bytes.
func TestPutStreamsWhereTheBackendCan(t *testing.T) {
	ctx := context.Background()
	n, data := segment(t, "000000010000000000000003", testSysID, 3)
	objects := map[bool][]byte{}
	for _, stream := range []bool{true, false} {
		r, p, root := recorderRepo(t, stream)
		if err := r.Claim(ctx, header(t, data)); err != nil {
			t.Fatal(err)
		}
		if _, err := withCodec(r, CodecLZ4).Put(ctx, n, data); err != nil {
			t.Fatalf("stream=%v: Put: %v", stream, err)
		}
		obj := readFile(t, filepath.Join(root, filepath.FromSlash(Key(LayoutWalship, n, CodecLZ4))))
		objects[stream] = obj
		want := int64(len(obj))
		if stream {
			want = -1
		}
		if sizes := p.PutSizes(); sizes[len(sizes)-1] != want {
			got := sizes[len(sizes)-1]
			t.Errorf("stream=%v: put announced %d bytes, want %d", stream, got, want)
		}
		got, _ := readAll(t, reopen(t, root, LayoutAuto), n)
		if !bytes.Equal(got, data) {
			t.Errorf("stream=%v: read back different content", stream)
		}
	}
	if !bytes.Equal(objects[true], objects[false]) {
		t.Errorf("streamed object (%d bytes) differs from the buffered one (%d bytes)", len(objects[true]), len(objects[false]))
	}
}

// A streamed put that fails half-way, or whose source ends early, stores
// nothing, and the next attempt succeeds.
func TestPutStreamFailures(t *testing.T) {
	ctx := context.Background()
	n, data := segment(t, "000000010000000000000004", testSysID, 4)
	r, p, root := recorderRepo(t, true)
	if err := r.Claim(ctx, header(t, data)); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(root, "wal", "0000000100000000")
	assertEmpty := func(when string) {
		t.Helper()
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			t.Errorf("%s: %s left in the repository", when, e.Name())
		}
	}

	p.FailPutAfter = 1000
	if _, err := withCodec(r, CodecLZ4).Put(ctx, n, data); !errors.Is(err, storagetest.ErrInjected) {
		t.Fatalf("Put with a store failing mid-stream = %v, want the store's error", err)
	}
	assertEmpty("after a failed store")

	p.FailPutAfter = 0
	_, _, err := withCodec(r, CodecLZ4).PutFrom(ctx, n, bytes.NewReader(data[:len(data)/2]), int64(len(data)))
	if err == nil || !strings.Contains(err.Error(), "source ended") {
		t.Fatalf("PutFrom of a short source = %v, want an error saying the source ended", err)
	}
	assertEmpty("after a short source")

	if existed, err := withCodec(r, CodecLZ4).Put(ctx, n, data); err != nil || existed {
		t.Fatalf("Put after the failures = %v, %v; want false, nil", existed, err)
	}
	got, _ := readAll(t, reopen(t, root, LayoutAuto), n)
	if !bytes.Equal(got, data) {
		t.Error("read back different content")
	}
}

// withCodec asks r for the compression c, as walship-archive --compress does.
func withCodec(r *Repo, c Codec) *Repo {
	r.compress = c
	return r
}
