package restore

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/walship/walship/archive"
	"github.com/walship/walship/repo"
	"github.com/walship/walship/storage/local"
	"github.com/walship/walship/wal"
	"github.com/walship/walship/wal/waltest"
)

const (
	sysID   = 7229286521432618453
	segSize = 1 << 20
)

func openRepo(t *testing.T, root string, layout repo.Layout) *repo.Repo {
	t.Helper()
	b, err := local.New(root)
	if err != nil {
		t.Fatal(err)
	}
	return repo.New(b, repo.Options{Layout: layout})
}

func parseName(t *testing.T, s string) wal.Name {
	t.Helper()
	n, err := wal.ParseName(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func fakeSegment(t *testing.T, n string, sys uint64, seed byte) []byte {
	t.Helper()
	return waltest.Seeded(parseName(t, n), sys, segSize, seed)
}

// archived fills a new repository through archive.Push, as walship-archive
// does, and returns its directory.
func archived(t *testing.T, layout repo.Layout, codec repo.Codec, files map[string][]byte) string {
	t.Helper()
	root := filepath.Join(t.TempDir(), "repo")
	b, err := local.New(root)
	if err != nil {
		t.Fatal(err)
	}
	r := repo.New(b, repo.Options{Layout: layout, Create: true, Compress: codec})
	src := t.TempDir()
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names) // segments before the backup history file that needs the identity
	for _, n := range names {
		p := filepath.Join(src, n)
		if err := os.WriteFile(p, files[n], 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := archive.Push(context.Background(), r, p, parseName(t, n)); err != nil {
			t.Fatalf("Push(%s): %v", n, err)
		}
	}
	return root
}

// dataDir is a fresh data directory with an empty pg_wal; it returns pg_wal.
func dataDir(t *testing.T) string {
	t.Helper()
	d := filepath.Join(t.TempDir(), "pg_wal")
	if err := os.Mkdir(d, 0o700); err != nil {
		t.Fatal(err)
	}
	return d
}

func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

func TestFetchRoundTrip(t *testing.T) {
	const hist = "1\t0/3000158\tno recovery target specified\n"
	const backup = "START WAL LOCATION: 0/200028 (file 000000010000000000000002)\n" +
		"STOP WAL LOCATION: 0/200100 (file 000000010000000000000002)\n" +
		"CHECKPOINT LOCATION: 0/200060\nLABEL: base\nSTART TIMELINE: 1\nSTOP TIMELINE: 1\n"
	files := map[string][]byte{
		"000000010000000000000001":                 fakeSegment(t, "000000010000000000000001", sysID, 1),
		"000000010000000000000002":                 fakeSegment(t, "000000010000000000000002", sysID, 2),
		"000000010000000100000000":                 fakeSegment(t, "000000010000000100000000", sysID, 3),
		"000000010000000100000001.partial":         fakeSegment(t, "000000010000000100000001", sysID, 4),
		"00000002.history":                         []byte(hist),
		"000000010000000000000002.00000028.backup": []byte(backup),
	}
	for _, layout := range []repo.Layout{repo.LayoutWalship, repo.LayoutPlain} {
		for _, codec := range []repo.Codec{repo.CodecLZ4, repo.CodecNone} {
			t.Run(string(layout)+"/"+string(codec), func(t *testing.T) {
				root := archived(t, layout, codec, files)
				pgwal := dataDir(t)
				for n, want := range files {
					dest := filepath.Join(pgwal, "RECOVERYXLOG")
					res, err := Fetch(context.Background(), openRepo(t, root, repo.LayoutAuto), parseName(t, n), dest)
					if err != nil {
						t.Fatalf("Fetch(%s): %v", n, err)
					}
					got, err := os.ReadFile(dest)
					if err != nil {
						t.Fatal(err)
					}
					if !bytes.Equal(got, want) {
						t.Errorf("%s: restored %d bytes, different from the %d archived", n, len(got), len(want))
					}
					wantKey := repo.Key(layout, parseName(t, n), codec)
					if res.Name != parseName(t, n) || res.Key != wantKey || res.Bytes != int64(len(want)) {
						t.Errorf("Fetch(%s) = %+v, want key %s and %d bytes", n, res, wantKey, len(want))
					}
				}
				if got := dirNames(t, pgwal); !reflect.DeepEqual(got, []string{"RECOVERYXLOG"}) {
					t.Errorf("pg_wal holds %v, want only RECOVERYXLOG", got)
				}
			})
		}
	}
}

func TestFetchFinalPath(t *testing.T) {
	// pg_rewind -c names the final file, not RECOVERYXLOG.
	const n = "000000010000000000000003"
	data := fakeSegment(t, n, sysID, 1)
	root := archived(t, repo.LayoutAuto, repo.CodecLZ4, map[string][]byte{n: data})
	dest := filepath.Join(dataDir(t), n)
	if _, err := Fetch(context.Background(), openRepo(t, root, repo.LayoutAuto), parseName(t, n), dest); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(dest)
	if err != nil || !bytes.Equal(got, data) {
		t.Errorf("restored file differs (%v)", err)
	}
}

func TestFetchReplacesDest(t *testing.T) {
	// RECOVERYXLOG is left from the previous file.
	const n = "000000010000000000000003"
	data := fakeSegment(t, n, sysID, 1)
	root := archived(t, repo.LayoutAuto, repo.CodecLZ4, map[string][]byte{n: data})
	dest := filepath.Join(dataDir(t), "RECOVERYXLOG")
	if err := os.WriteFile(dest, fakeSegment(t, "000000010000000000000002", sysID, 9), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Fetch(context.Background(), openRepo(t, root, repo.LayoutAuto), parseName(t, n), dest); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(dest); !bytes.Equal(got, data) {
		t.Error("dest was not replaced by the fetched file")
	}
}

func TestFetchMissing(t *testing.T) {
	const n = "000000010000000000000003"
	root := archived(t, repo.LayoutAuto, repo.CodecLZ4, map[string][]byte{
		n:                                  fakeSegment(t, n, sysID, 1),
		"000000010000000000000004.partial": fakeSegment(t, "000000010000000000000004", sysID, 1),
	})
	for _, missing := range []string{
		"000000010000000000000005",
		"000000020000000000000003", // same position, other timeline
		"00000002.history",         // the server's probe for the next timeline
		"000000010000000000000004", // only the .partial is there: never substituted
		"000000010000000000000003.partial",
		"000000010000000000000003.00000028.backup",
	} {
		t.Run(missing, func(t *testing.T) {
			pgwal := dataDir(t)
			dest := filepath.Join(pgwal, "RECOVERYXLOG")
			_, err := Fetch(context.Background(), openRepo(t, root, repo.LayoutAuto), parseName(t, missing), dest)
			if !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("Fetch = %v, want fs.ErrNotExist", err)
			}
			if got := dirNames(t, pgwal); len(got) != 0 {
				t.Errorf("pg_wal holds %v, want nothing", got)
			}
		})
	}
}

func TestFetchNoRepository(t *testing.T) {
	pgwal := dataDir(t)
	r := openRepo(t, filepath.Join(t.TempDir(), "nowhere"), repo.LayoutAuto)
	_, err := Fetch(context.Background(), r, parseName(t, "000000010000000000000001"), filepath.Join(pgwal, "RECOVERYXLOG"))
	if !errors.Is(err, repo.ErrNoRepository) || errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Fetch = %v, want ErrNoRepository (not a plain not-found)", err)
	}
	if got := dirNames(t, pgwal); len(got) != 0 {
		t.Errorf("pg_wal holds %v, want nothing", got)
	}
}

func TestFetchBadRequest(t *testing.T) {
	const n = "000000010000000000000003"
	root := archived(t, repo.LayoutAuto, repo.CodecLZ4, map[string][]byte{n: fakeSegment(t, n, sysID, 1)})
	pgwal := dataDir(t)
	if _, err := Fetch(context.Background(), openRepo(t, root, repo.LayoutAuto), parseName(t, n), ""); !errors.Is(err, ErrInvalid) {
		t.Errorf("Fetch into \"\" = %v, want ErrInvalid", err)
	}
	// A destination that cannot be written is not "not in the archive".
	noDir := filepath.Join(t.TempDir(), "missing", "RECOVERYXLOG")
	var de *DestError
	if _, err := Fetch(context.Background(), openRepo(t, root, repo.LayoutAuto), parseName(t, n), noDir); !errors.As(err, &de) || errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), noDir) {
		t.Errorf("Fetch into a missing directory = %v, want a DestError naming %%p, not matching fs.ErrNotExist", err)
	}
	readOnly := filepath.Join(t.TempDir(), "ro")
	os.Mkdir(readOnly, 0o500)
	if os.Geteuid() != 0 { // root writes anyway
		if _, err := Fetch(context.Background(), openRepo(t, root, repo.LayoutAuto), parseName(t, n), filepath.Join(readOnly, "RECOVERYXLOG")); !errors.As(err, &de) {
			t.Errorf("Fetch into a read-only directory = %v, want a DestError", err)
		}
	}
	if got := dirNames(t, pgwal); len(got) != 0 {
		t.Errorf("pg_wal holds %v, want nothing", got)
	}
}

// spoil damages the stored object of name in the repository at root.
func spoil(t *testing.T, root, key string, f func([]byte) []byte) {
	t.Helper()
	p := filepath.Join(root, filepath.FromSlash(key))
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, f(b), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestFetchCorrupt(t *testing.T) {
	const n = "000000010000000000000003"
	data := fakeSegment(t, n, sysID, 1)
	flip := func(b []byte) []byte { b[len(b)/2] ^= 0xFF; return b }
	half := func(b []byte) []byte { return b[:len(b)/2] }
	tests := []struct {
		name   string
		layout repo.Layout
		codec  repo.Codec
		key    string
		damage func([]byte) []byte
	}{
		{"lz4 flipped byte", repo.LayoutWalship, repo.CodecLZ4, "wal/0000000100000000/" + n + ".lz4", flip},
		{"lz4 truncated", repo.LayoutWalship, repo.CodecLZ4, "wal/0000000100000000/" + n + ".lz4", half},
		{"plain truncated", repo.LayoutPlain, repo.CodecNone, n, half},
		{"plain one byte short", repo.LayoutPlain, repo.CodecNone, n, func(b []byte) []byte { return b[:len(b)-1] }},
		{"plain one byte long", repo.LayoutPlain, repo.CodecNone, n, func(b []byte) []byte { return append(b, 0) }},
		{"plain header only", repo.LayoutPlain, repo.CodecNone, n, func(b []byte) []byte { return b[:wal.LongHeaderSize] }},
		{"plain shorter than a header", repo.LayoutPlain, repo.CodecNone, n, func(b []byte) []byte { return b[:10] }},
		{"plain empty", repo.LayoutPlain, repo.CodecNone, n, func([]byte) []byte { return nil }},
		{"uncompressed, header spoiled", repo.LayoutWalship, repo.CodecNone, "wal/0000000100000000/" + n,
			func(b []byte) []byte { b[0] ^= 0xFF; return b }},
		{"recycled file stored under the name", repo.LayoutPlain, repo.CodecNone, n,
			func([]byte) []byte { return fakeSegment(t, "000000010000000000000001", sysID, 1) }},
		{"another cluster's segment", repo.LayoutPlain, repo.CodecNone, n,
			func([]byte) []byte { return fakeSegment(t, n, sysID+1, 1) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := archived(t, tt.layout, tt.codec, map[string][]byte{n: data})
			spoil(t, root, tt.key, tt.damage)

			pgwal := dataDir(t)
			dest := filepath.Join(pgwal, "RECOVERYXLOG")
			previous := []byte("the previous RECOVERYXLOG")
			if err := os.WriteFile(dest, previous, 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := Fetch(context.Background(), openRepo(t, root, repo.LayoutAuto), parseName(t, n), dest)
			if !errors.Is(err, repo.ErrCorrupt) {
				t.Fatalf("Fetch = %v, want repo.ErrCorrupt", err)
			}
			var ce *repo.CorruptError
			if !errors.As(err, &ce) || ce.Key != tt.key {
				t.Errorf("error %v does not name %s", err, tt.key)
			}
			if got, _ := os.ReadFile(dest); !bytes.Equal(got, previous) {
				t.Error("dest was changed")
			}
			if got := dirNames(t, pgwal); !reflect.DeepEqual(got, []string{"RECOVERYXLOG"}) {
				t.Errorf("pg_wal holds %v, want only RECOVERYXLOG (no temporary files)", got)
			}
		})
	}
}

func TestFetchCorruptHistory(t *testing.T) {
	// A history file put there by hand (or by cp), not by walship-archive.
	root := t.TempDir()
	if err := os.WriteFile(filepath.Join(root, "00000002.history"), []byte("this is not a history file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	pgwal := dataDir(t)
	_, err := Fetch(context.Background(), openRepo(t, root, repo.LayoutAuto), parseName(t, "00000002.history"), filepath.Join(pgwal, "RECOVERYHISTORY"))
	if !errors.Is(err, repo.ErrCorrupt) {
		t.Errorf("Fetch = %v, want repo.ErrCorrupt", err)
	}
	if got := dirNames(t, pgwal); len(got) != 0 {
		t.Errorf("pg_wal holds %v, want nothing", got)
	}
}

func TestFetchFromCopyArchive(t *testing.T) {
	// An archive that `cp %p /archive/%f` filled: no identity file.
	const n = "000000010000000000000003"
	const hist = "1\t0/3000158\tno recovery target specified\n"
	data := fakeSegment(t, n, sysID, 1)
	root := t.TempDir()
	for f, b := range map[string][]byte{n: data, "00000002.history": []byte(hist)} {
		if err := os.WriteFile(filepath.Join(root, f), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	pgwal := dataDir(t)
	for f, want := range map[string][]byte{n: data, "00000002.history": []byte(hist)} {
		dest := filepath.Join(pgwal, f)
		res, err := Fetch(context.Background(), openRepo(t, root, repo.LayoutAuto), parseName(t, f), dest)
		if err != nil {
			t.Fatalf("Fetch(%s): %v", f, err)
		}
		if got, _ := os.ReadFile(dest); !bytes.Equal(got, want) || res.Key != f {
			t.Errorf("Fetch(%s) from key %s: content differs", f, res.Key)
		}
	}
}

func TestFetchCanceled(t *testing.T) {
	const n = "000000010000000000000003"
	root := archived(t, repo.LayoutAuto, repo.CodecLZ4, map[string][]byte{n: fakeSegment(t, n, sysID, 1)})
	pgwal := dataDir(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Fetch(ctx, openRepo(t, root, repo.LayoutAuto), parseName(t, n), filepath.Join(pgwal, "RECOVERYXLOG")); err == nil {
		t.Error("Fetch with a canceled context = nil, want an error")
	}
	if got := dirNames(t, pgwal); len(got) != 0 {
		t.Errorf("pg_wal holds %v, want nothing", got)
	}
}
