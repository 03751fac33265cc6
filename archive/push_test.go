package archive

import (
	"bytes"
	"context"
	"errors"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"filippo.io/age"

	"github.com/walship/walship/repo"
	"github.com/walship/walship/storage/local"
	"github.com/walship/walship/storage/storagetest"
	"github.com/walship/walship/wal"
	"github.com/walship/walship/wal/waltest"
)

const (
	sysID   = 7229286521432618453
	segSize = 1 << 20
)

// newRepo is a repository in a directory that does not exist yet, opened
// as walship-archive opens it.
func newRepo(t *testing.T, layout repo.Layout) (*repo.Repo, string) {
	t.Helper()
	root := filepath.Join(t.TempDir(), "repo")
	return openRepo(t, root, layout), root
}

func openRepo(t *testing.T, root string, layout repo.Layout) *repo.Repo {
	t.Helper()
	b, err := local.New(root)
	if err != nil {
		t.Fatal(err)
	}
	return repo.New(b, repo.Options{Layout: layout, Create: true})
}

func name(t *testing.T, s string) wal.Name {
	t.Helper()
	n, err := wal.ParseName(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// fakeSegment is a segment for n of the cluster sys, its body made from seed.
func fakeSegment(t *testing.T, n string, sys uint64, seed byte) []byte {
	t.Helper()
	return waltest.Seeded(name(t, n), sys, segSize, seed)
}

// pgWAL writes files into a fresh pg_wal directory and returns their paths.
func pgWAL(t *testing.T, files map[string][]byte) map[string]string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "pg_wal")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	paths := map[string]string{}
	for n, data := range files {
		p := filepath.Join(dir, n)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		paths[n] = p
	}
	return paths
}

// pushC archives data as n with the compression c asked for ("" the
// repository's).
func pushC(t *testing.T, r *repo.Repo, n string, data []byte, c repo.Codec) (Result, error) {
	t.Helper()
	if c != "" { // as walship-archive --compress c opens it
		b, err := local.New(r.String())
		if err != nil {
			t.Fatal(err)
		}
		r = repo.New(b, repo.Options{Layout: r.Layout(), Create: true, Compress: c})
	}
	return Push(context.Background(), r, pgWAL(t, map[string][]byte{n: data})[n], name(t, n))
}

func mustPush(t *testing.T, r *repo.Repo, n string, data []byte, c repo.Codec) Result {
	t.Helper()
	res, err := pushC(t, r, n, data, c)
	if err != nil {
		t.Fatalf("Push(%s): %v", n, err)
	}
	return res
}

// stored reads name back from the repository at root.
func stored(t *testing.T, root, n string) []byte {
	t.Helper()
	b, err := local.New(root)
	if err != nil {
		t.Fatal(err)
	}
	o, err := repo.New(b, repo.Options{Layout: repo.LayoutAuto}).Open(context.Background(), name(t, n))
	if err != nil {
		t.Fatalf("Open(%s): %v", n, err)
	}
	defer o.Close()
	data, err := io.ReadAll(o)
	if err != nil {
		t.Fatalf("reading %s: %v", n, err)
	}
	return data
}

func notStored(t *testing.T, root, n string) {
	t.Helper()
	b, err := local.New(root)
	if err != nil {
		t.Fatal(err)
	}
	_, err = repo.New(b, repo.Options{Layout: repo.LayoutAuto}).Open(context.Background(), name(t, n))
	if !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, repo.ErrNoRepository) {
		t.Errorf("%s: Open = %v, want it not stored", n, err)
	}
}

func TestPushRoundTrip(t *testing.T) {
	for _, layout := range []repo.Layout{repo.LayoutWalship, repo.LayoutPlain} {
		for _, codec := range []repo.Codec{repo.CodecLZ4, repo.CodecNone} {
			t.Run(string(layout)+"/"+string(codec), func(t *testing.T) {
				r, root := newRepo(t, layout)
				for _, n := range []string{"000000010000000000000001", "000000010000000000000FFF",
					"000000010000000100000000", "000000010000000100000003.partial"} {
					data := fakeSegment(t, n, sysID, 1)
					res := mustPush(t, r, n, data, codec)
					if res.Existed || res.Bytes != len(data) || res.Name != name(t, n) {
						t.Errorf("Push(%s) = %+v", n, res)
					}
					if got := stored(t, root, n); !bytes.Equal(got, data) {
						t.Errorf("%s: stored %d bytes, not the %d pushed", n, len(got), len(data))
					}
				}
				key := repo.Key(layout, name(t, "000000010000000000000001"), codec)
				if _, err := os.Stat(filepath.Join(root, filepath.FromSlash(key))); err != nil {
					t.Errorf("not stored under %s: %v", key, err)
				}
			})
		}
	}
}

func TestPushAgain(t *testing.T) {
	r, root := newRepo(t, repo.LayoutAuto)
	const n = "000000010000000000000003"
	data := fakeSegment(t, n, sysID, 1)
	mustPush(t, r, n, data, repo.CodecLZ4)

	// The same file again (PostgreSQL retries after a crash): success.
	res := mustPush(t, openRepo(t, root, repo.LayoutAuto), n, data, repo.CodecLZ4)
	if !res.Existed {
		t.Errorf("Push again = %+v, want Existed", res)
	}
	res = mustPush(t, openRepo(t, root, repo.LayoutAuto), n, data, "")
	if !res.Existed {
		t.Errorf("Push again with the repository's compression = %+v, want Existed", res)
	}
	// Another compression than the repository's is refused, whatever the
	// content: one name, one object.
	if _, err := pushC(t, openRepo(t, root, repo.LayoutAuto), n, data, repo.CodecNone); !errors.Is(err, repo.ErrMismatch) {
		t.Errorf("Push with --compress none into an lz4 repository = %v, want ErrMismatch", err)
	}

	// Different content under the same name: refused, original kept.
	for _, codec := range []repo.Codec{repo.CodecLZ4, ""} {
		_, err := pushC(t, openRepo(t, root, repo.LayoutAuto), n, fakeSegment(t, n, sysID, 2), codec)
		if !errors.Is(err, repo.ErrDifferent) || !errors.Is(err, fs.ErrExist) {
			t.Errorf("%q: Push of different content = %v, want ErrDifferent", codec, err)
		}
		if err != nil && !strings.Contains(err.Error(), n) {
			t.Errorf("error %q does not name the file", err)
		}
	}
	if got := stored(t, root, n); !bytes.Equal(got, data) {
		t.Error("the archived file changed")
	}
}

func TestPushWrongCluster(t *testing.T) {
	r, root := newRepo(t, repo.LayoutAuto)
	mustPush(t, r, "000000010000000000000001", fakeSegment(t, "000000010000000000000001", sysID, 1), repo.CodecLZ4)
	idBefore, err := os.ReadFile(filepath.Join(root, repo.IdentityKey))
	if err != nil {
		t.Fatal(err)
	}

	const n = "000000010000000000000002"
	_, err = pushC(t, openRepo(t, root, repo.LayoutAuto), n, fakeSegment(t, n, sysID+1, 1), repo.CodecLZ4)
	if !errors.Is(err, wal.ErrOtherCluster) || !errors.Is(err, ErrInvalid) {
		t.Errorf("Push from another cluster = %v, want ErrWrongCluster and ErrInvalid", err)
	}
	notStored(t, root, n)

	// Another segment size is another cluster too.
	big := waltest.FakeSegment(name(t, n), sysID, 2*segSize, nil)
	_, err = pushC(t, openRepo(t, root, repo.LayoutAuto), n, big, repo.CodecLZ4)
	if !errors.Is(err, wal.ErrOtherCluster) {
		t.Errorf("Push with 2MB segments into a 1MB repository = %v, want ErrWrongCluster", err)
	}
	notStored(t, root, n)

	if idAfter, _ := os.ReadFile(filepath.Join(root, repo.IdentityKey)); !bytes.Equal(idAfter, idBefore) {
		t.Error("walship.json changed")
	}
}

func TestPushRefusesBadContent(t *testing.T) {
	const n = "000000010000000000000005"
	good := fakeSegment(t, n, sysID, 1)
	tests := []struct {
		name   string
		data   []byte
		header bool // the error is about the page header
	}{
		{"recycled file: header of another segment", fakeSegment(t, "000000010000000000000002", sysID, 1), true},
		{"header of the next log", fakeSegment(t, "000000010000000100000005", sysID, 1), true},
		{"header timeline newer than the name", fakeSegment(t, "000000020000000000000005", sysID, 1), true},
		{"short file", good[:len(good)/2], false},
		{"one byte short", good[:len(good)-1], false},
		{"one byte long", append(bytes.Clone(good), 0), false},
		{"only a header", good[:wal.LongHeaderSize], false},
		{"shorter than a header", good[:wal.LongHeaderSize-1], true},
		{"empty", nil, true},
		{"zeros", make([]byte, segSize), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, root := newRepo(t, repo.LayoutAuto)
			_, err := pushC(t, r, n, tt.data, repo.CodecLZ4)
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("Push = %v, want ErrInvalid", err)
			}
			if tt.header && !errors.Is(err, wal.ErrBadHeader) {
				t.Errorf("error %v does not match wal.ErrBadHeader", err)
			}
			if !strings.Contains(err.Error(), n) {
				t.Errorf("error %q does not name the file", err)
			}
			// Nothing was written, not even the identity file.
			if _, err := os.Stat(root); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("the repository was created: %v", err)
			}
		})
	}
}

func TestPushOlderHeaderTimeline(t *testing.T) {
	// The first segment of timeline 2 was begun by timeline 1.
	r, root := newRepo(t, repo.LayoutAuto)
	data := fakeSegment(t, "000000010000000000000005", sysID, 1)
	mustPush(t, r, "000000020000000000000005", data, repo.CodecLZ4)
	if got := stored(t, root, "000000020000000000000005"); !bytes.Equal(got, data) {
		t.Error("stored content differs")
	}
}

func TestPushMissingFile(t *testing.T) {
	r, root := newRepo(t, repo.LayoutAuto)
	path := filepath.Join(t.TempDir(), "pg_wal", "000000010000000000000001")
	_, err := Push(context.Background(), r, path, name(t, "000000010000000000000001"))
	if !errors.Is(err, ErrInvalid) {
		t.Errorf("Push = %v, want ErrInvalid", err)
	}
	if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("error %v does not say that %s does not exist", err, path)
	}
	if _, err := os.Stat(root); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the repository was created: %v", err)
	}

	// A directory is not a WAL file either.
	dir := t.TempDir()
	if _, err := Push(context.Background(), r, dir, name(t, "000000010000000000000001")); !errors.Is(err, ErrInvalid) {
		t.Errorf("Push of a directory = %v, want ErrInvalid", err)
	}
}

const history2 = "1\t0/3000158\tno recovery target specified\n"

func TestPushHistory(t *testing.T) {
	r, root := newRepo(t, repo.LayoutAuto)
	// A history file can come before any segment: no identity is needed.
	res := mustPush(t, r, "00000002.history", []byte(history2), repo.CodecLZ4)
	if res.Existed || res.Bytes != len(history2) {
		t.Errorf("Push = %+v", res)
	}
	if got := stored(t, root, "00000002.history"); string(got) != history2 {
		t.Errorf("stored %q, want %q", got, history2)
	}
	if _, err := os.Stat(filepath.Join(root, "wal", "00000002.history")); err != nil {
		t.Errorf("history file not stored as plain text: %v", err)
	}
	if res := mustPush(t, r, "00000002.history", []byte(history2), repo.CodecNone); !res.Existed {
		t.Errorf("Push again = %+v, want Existed", res)
	}
	// History files are never overwritten.
	other := history2 + "\n# edited\n"
	if _, err := pushC(t, r, "00000002.history", []byte(other), repo.CodecLZ4); !errors.Is(err, repo.ErrDifferent) {
		t.Errorf("Push of a different history = %v, want ErrDifferent", err)
	}
	if got := stored(t, root, "00000002.history"); string(got) != history2 {
		t.Errorf("stored history changed to %q", got)
	}
}

func TestPushRefusesBadHistory(t *testing.T) {
	for name, content := range map[string]string{
		"garbage":                 "this is not a history file\n",
		"parent not older":        "2\t0/3000158\tno recovery target specified\n",
		"decreasing timelines":    "2\t0/3000158\ta\n1\t0/4000000\tb\n",
		"a segment's bytes":       string(fakeSegment(t, "000000010000000000000001", sysID, 1)[:4096]),
		"larger than any history": strings.Repeat("# padding\n", 110000),
	} {
		t.Run(name, func(t *testing.T) {
			r, root := newRepo(t, repo.LayoutAuto)
			if _, err := pushC(t, r, "00000002.history", []byte(content), repo.CodecLZ4); !errors.Is(err, ErrInvalid) {
				t.Errorf("Push = %v, want ErrInvalid", err)
			}
			if _, err := os.Stat(root); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("the repository was created: %v", err)
			}
		})
	}
}

func TestPushBackupHistory(t *testing.T) {
	const backup = "START WAL LOCATION: 0/200028 (file 000000010000000000000002)\n" +
		"STOP WAL LOCATION: 0/200100 (file 000000010000000000000002)\n" +
		"CHECKPOINT LOCATION: 0/200060\nBACKUP METHOD: streamed\nBACKUP FROM: primary\n" +
		"START TIME: 2023-05-04 10:11:12 UTC\nLABEL: pg_basebackup base backup\n" +
		"START TIMELINE: 1\nSTOP TIME: 2023-05-04 10:11:13 UTC\nSTOP TIMELINE: 1\n"
	const n = "000000010000000000000002.00000028.backup"
	r, root := newRepo(t, repo.LayoutAuto)
	mustPush(t, r, "000000010000000000000002", fakeSegment(t, "000000010000000000000002", sysID, 1), repo.CodecLZ4)
	mustPush(t, r, n, []byte(backup), repo.CodecLZ4)
	if got := stored(t, root, n); string(got) != backup {
		t.Errorf("stored %q", got)
	}
	// Its name must say where the backup starts.
	const wrong = "000000010000000000000002.00000030.backup"
	if _, err := pushC(t, openRepo(t, root, repo.LayoutAuto), wrong, []byte(backup), repo.CodecLZ4); !errors.Is(err, ErrInvalid) {
		t.Errorf("Push as %s = %v, want ErrInvalid", wrong, err)
	}
	notStored(t, root, wrong)
	if _, err := pushC(t, r, "000000010000000000000003.00000028.backup", []byte("garbage\n"), repo.CodecLZ4); !errors.Is(err, ErrInvalid) {
		t.Errorf("Push of a garbage backup history = %v, want ErrInvalid", err)
	}
}

// TestPushNewerTimeline: a segment of timeline 1 past the switch point of
// timeline 2, whose history file is in the repository, is archived and
// reported (Result.Newer); one before it, and segments of the newest
// timeline, are not. The look costs one storage call per segment, and none
// for other files.
func TestPushNewerTimeline(t *testing.T) {
	root := filepath.Join(t.TempDir(), "repo")
	lb, err := local.New(root)
	if err != nil {
		t.Fatal(err)
	}
	fb := &storagetest.Faulty{Backend: lb}
	var mu sync.Mutex
	historyCalls := 0
	fb.Before = func(op, key string) {
		if strings.HasSuffix(key, ".history") && op != "put" {
			mu.Lock()
			historyCalls++
			mu.Unlock()
		}
	}
	r := repo.New(fb, repo.Options{Layout: repo.LayoutAuto, Create: true})
	pushCounted := func(n string, data []byte) (Result, int) {
		t.Helper()
		mu.Lock()
		historyCalls = 0
		mu.Unlock()
		res := mustPush(t, r, n, data, "")
		mu.Lock()
		defer mu.Unlock()
		return res, historyCalls
	}

	for _, n := range []string{"000000010000000000000001", "000000010000000000000002"} {
		if res, calls := pushCounted(n, fakeSegment(t, n, sysID, 1)); res.Newer != nil || calls != 1 {
			t.Errorf("%s with no newer timeline: Newer %+v after %d looks at history files, want nil after 1", n, res.Newer, calls)
		}
	}
	// Timeline 2 left timeline 1 inside segment 3.
	if res, calls := pushCounted("00000002.history", []byte("1\t0/304000\tno recovery target specified\n")); res.Newer != nil || calls != 0 {
		t.Errorf("history file: Newer %+v, %d looks, want none", res.Newer, calls)
	}
	if res, _ := pushCounted("000000010000000000000003", fakeSegment(t, "000000010000000000000003", sysID, 1)); res.Newer != nil {
		t.Errorf("segment 3 holds the switch point, it is on both timelines: Newer %+v", res.Newer)
	}
	res, _ := pushCounted("000000010000000000000004", fakeSegment(t, "000000010000000000000004", sysID, 1))
	if res.Newer == nil || res.Newer.Timeline != 2 || res.Newer.SwitchPoint.String() != "0/304000" {
		t.Fatalf("segment 4 of timeline 1, past the switch point: Newer %+v, want timeline 2 at 0/304000", res.Newer)
	}
	w := res.Warning()
	for _, want := range []string{"000000010000000000000004", "timeline 1", "timeline 2", "0/304000", "00000002.history", "archive_mode = off"} {
		if !strings.Contains(w, want) {
			t.Errorf("warning %q does not say %q", w, want)
		}
	}
	if got := stored(t, root, "000000010000000000000004"); len(got) != segSize {
		t.Errorf("segment 4 was not archived: %d bytes", len(got))
	}
	if res, calls := pushCounted("000000020000000000000004", fakeSegment(t, "000000020000000000000004", sysID, 1)); res.Newer != nil || calls != 1 {
		t.Errorf("segment of the newest timeline: Newer %+v after %d looks, want nil after 1", res.Newer, calls)
	}
	// Timeline 3 branched off timeline 1 too, not off timeline 2: timeline
	// 2 goes on, as far as history files tell.
	pushCounted("00000003.history", []byte("1\t0/204000\tno recovery target specified\n"))
	if res, _ := pushCounted("000000020000000000000005", fakeSegment(t, "000000020000000000000005", sysID, 1)); res.Newer != nil {
		t.Errorf("timeline 2 beside timeline 3: Newer %+v", res.Newer)
	}
}

// In an encrypted repository an archiver holds public keys only and cannot
// read the newer timeline's history file: the segment is archived and the
// newer timeline reported, its switch point unknown.
func TestPushNewerTimelineEncrypted(t *testing.T) {
	key, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	b, err := local.New(filepath.Join(t.TempDir(), "repo"))
	if err != nil {
		t.Fatal(err)
	}
	r := repo.New(b, repo.Options{Create: true, Keys: repo.Keys{Recipients: []age.Recipient{key.Recipient()}}})
	mustPush(t, r, "000000010000000000000001", fakeSegment(t, "000000010000000000000001", sysID, 1), "")
	mustPush(t, r, "00000002.history", []byte("1\t0/104000\tno recovery target specified\n"), "")
	res := mustPush(t, r, "000000010000000000000002", fakeSegment(t, "000000010000000000000002", sysID, 1), "")
	if res.Newer == nil || res.Newer.Timeline != 2 || !res.Newer.Unread {
		t.Fatalf("Newer = %+v, want timeline 2, unread", res.Newer)
	}
	if w := res.Warning(); !strings.Contains(w, "00000002.history, encrypted") {
		t.Errorf("warning %q", w)
	}
}

// summing tells the checksum of the file only as its last reading from the
// start saw it: whole and in order.
func TestSummingCountsTheLastReadingInOrder(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	data := []byte("0123456789abcdef")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	want := crc32.Checksum(data, repo.Castagnoli)
	s := &summing{f: f, h: crc32.New(repo.Castagnoli), ok: true}
	buf := make([]byte, 5)
	s.Read(buf) // a first attempt, given up
	s.Seek(0, io.SeekStart)
	if _, err := io.ReadAll(s); err != nil {
		t.Fatal(err)
	}
	if got, ok := s.Sum(int64(len(data))); !ok || got != want {
		t.Errorf("after a retry from the start: Sum = %08x, %v; want %08x, true", got, ok, want)
	}
	s.Seek(3, io.SeekStart)
	io.ReadAll(s)
	if _, ok := s.Sum(int64(len(data))); ok {
		t.Error("after a reading that skipped the first bytes: ok, want not")
	}
	s.Seek(0, io.SeekStart)
	s.Read(buf)
	if _, ok := s.Sum(int64(len(data))); ok {
		t.Error("after a partial reading: ok, want not")
	}
}
