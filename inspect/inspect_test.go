package inspect

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/walship/walship/catalog"
	"github.com/walship/walship/internal/testenv/fakerepo"
	"github.com/walship/walship/repo"
	"github.com/walship/walship/storage/local"
	"github.com/walship/walship/wal"
	"github.com/walship/walship/wal/waltest"
)

var seg = fakerepo.Seg

var day = time.Date(2024, 5, 1, 2, 0, 0, 0, time.UTC)

// healthy is a repository across a timeline switch: timeline 1 segments
// 1..5 and the .partial of 6, left in segment 6 for timeline 2 (6..9), a
// backup on each timeline.
func healthy(t *testing.T) (*fakerepo.Repo, wal.Name, wal.Name) {
	f := fakerepo.New(t)
	f.Segments(1, 1, 5)
	f.Partial(1, 6)
	f.History(2, [2]uint64{1, 6})
	f.Segments(2, 6, 9)
	b1 := f.Backup(1, 2, 3, day)
	b2 := f.Backup(2, 7, 8, day.AddDate(0, 0, 1))
	return f, b1, b2
}

func verify(t *testing.T, f *fakerepo.Repo, full bool) *Report {
	t.Helper()
	ctx := context.Background()
	r := f.Open(repo.LayoutAuto)
	c, err := catalog.Scan(ctx, r)
	if err != nil {
		t.Fatalf("Scan: %v", err)
	}
	rep, err := Verify(ctx, r, c, VerifyOptions{Full: full})
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	return rep
}

// problems renders the report's problems, one a line.
func problems(rep *Report) string {
	var lines []string
	for _, p := range rep.Problems {
		lines = append(lines, p.String())
	}
	return strings.Join(lines, "\n")
}

// wantProblem checks that exactly one problem is about file and says what.
func wantProblem(t *testing.T, rep *Report, file, what string) {
	t.Helper()
	var hits []Problem
	for _, p := range rep.Problems {
		if p.File == file {
			hits = append(hits, p)
		}
	}
	if len(hits) != 1 || !strings.Contains(hits[0].Msg, what) {
		t.Errorf("want one problem about %s saying %q; got:\n%s", file, what, problems(rep))
	}
}

func TestVerifyHealthy(t *testing.T) {
	f, b1, b2 := healthy(t)
	rep := verify(t, f, true)
	if !rep.OK() {
		t.Fatalf("healthy repository has problems:\n%s", problems(rep))
	}
	if rep.Checked != 10 { // 9 segments and a partial
		t.Errorf("checked %d objects in full, want 10", rep.Checked)
	}
	if len(rep.Backups) != 2 || rep.Backups[0].File != b2.String() || rep.Backups[1].File != b1.String() {
		t.Fatalf("backups %+v, want %s then %s", rep.Backups, b2, b1)
	}
	for _, b := range rep.Backups {
		if !b.Restorable {
			t.Errorf("%s not restorable: %s", b.File, b.Reason)
		}
	}
	if !rep.Backups[0].Newest || rep.Backups[1].Newest {
		t.Errorf("newest flags wrong: %+v", rep.Backups)
	}
	wantTL := []catalog.TimelineInfo{
		{Timeline: 1, Segments: 5, First: seg(1, 1).String(), Last: seg(1, 5).String(), End: fakerepo.SwitchPoint(6).String()},
		{Timeline: 2, Segments: 4, First: seg(2, 6).String(), Last: seg(2, 9).String(), Parent: 1, Begin: fakerepo.SwitchPoint(6).String()},
	}
	// What the JSON report shows of each timeline.
	type shown struct {
		Timeline, Parent        uint32
		Segments                int
		First, Last, Begin, End string
	}
	show := func(tls []catalog.TimelineInfo) []shown {
		var out []shown
		for _, ti := range tls {
			out = append(out, shown{ti.Timeline, ti.Parent, ti.Segments, ti.First, ti.Last, ti.Begin, ti.End})
		}
		return out
	}
	if !slices.Equal(show(rep.Timelines), show(wantTL)) {
		t.Errorf("timelines\n%+v\nwant\n%+v", rep.Timelines, wantTL)
	}
}

func TestVerifyMissingSegment(t *testing.T) {
	f, _, _ := healthy(t)
	f.Delete(seg(1, 3))
	f.Delete(seg(1, 5)) // the last one timeline 1 needs: 6 is read from timeline 2
	f.Delete(seg(2, 7))
	f.Delete(seg(2, 8))
	rep := verify(t, f, false)
	wantProblem(t, rep, seg(1, 3).String(), "missing from timeline 1, before its switch point")
	wantProblem(t, rep, seg(1, 5).String(), "missing from timeline 1, before its switch point")
	wantProblem(t, rep, seg(2, 7).String()+".."+seg(2, 8).String(), "2 segments missing from timeline 2")
	// Both backups need a segment that is gone, and neither is expired.
	wantProblem(t, rep, "000000010000000000000002.00000028.backup", "segment 000000010000000000000003 is missing")
	wantProblem(t, rep, "000000020000000000000007.00000028.backup", "newest base backup is not restorable")
	if len(rep.Problems) != 5 {
		t.Errorf("problems:\n%s", problems(rep))
	}
}

func TestVerifyMissingHistory(t *testing.T) {
	f, _, _ := healthy(t)
	f.Delete(wal.Name{Kind: wal.KindHistory, Timeline: 2})
	rep := verify(t, f, false)
	wantProblem(t, rep, "00000002.history", "missing")
	wantProblem(t, rep, "000000020000000000000007.00000028.backup", "00000002.history is missing")
}

// TestVerifyHistoryGapInIDs: recovery probes 00000002.history,
// 00000003.history, ... and stops at the first missing one, so timeline
// 3 is unreachable without timeline 2's file even if no WAL of timeline 2
// is stored.
func TestVerifyHistoryGapInIDs(t *testing.T) {
	f := fakerepo.New(t)
	f.Segments(1, 1, 4)
	f.History(3, [2]uint64{1, 4})
	f.Segments(3, 4, 6)
	rep := verify(t, f, false)
	wantProblem(t, rep, "00000002.history", "cannot get past timeline 1")
	if len(rep.Problems) != 1 {
		t.Errorf("problems:\n%s", problems(rep))
	}
}

func TestVerifyDamagedHistory(t *testing.T) {
	f, _, _ := healthy(t)
	f.Delete(wal.Name{Kind: wal.KindHistory, Timeline: 2})
	f.Put(wal.Name{Kind: wal.KindHistory, Timeline: 2}, []byte("2\tnot an LSN\n"))
	rep := verify(t, f, false)
	wantProblem(t, rep, "wal/00000002.history", "damaged")
}

// TestVerifyGapAfterSwitchIsExpected: an old primary that went on writing
// timeline 1 after the switch leaves segments (and gaps) there that no one
// needs.
func TestVerifyGapAfterSwitchIsExpected(t *testing.T) {
	f, _, _ := healthy(t)
	f.Segments(1, 8, 9) // 6 and 7 of timeline 1 were never archived
	rep := verify(t, f, false)
	if !rep.OK() {
		t.Errorf("gap after the switch point reported:\n%s", problems(rep))
	}
	if len(rep.Notes) != 1 || !strings.Contains(rep.Notes[0], "timeline 1 goes on for 2 segment(s)") {
		t.Errorf("notes %q", rep.Notes)
	}
}

func TestVerifyFullFindsCorruption(t *testing.T) {
	f, _, _ := healthy(t)
	// Flip bytes inside the compressed data of one segment.
	p := f.Path(seg(2, 8))
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	for i := len(data) / 2; i < len(data)/2+8; i++ {
		data[i] ^= 0xFF
	}
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	// Another segment's content under this name: a valid header that
	// does not match.
	f.Delete(seg(1, 4))
	f.Put(seg(1, 4), waltest.FakeSegment(seg(1, 3), fakerepo.SysID, fakerepo.SegSize, nil))

	if rep := verify(t, f, false); !rep.OK() {
		t.Errorf("without --full nothing is read, yet:\n%s", problems(rep))
	}
	rep := verify(t, f, true)
	wantProblem(t, rep, "wal/0000000200000000/000000020000000000000008.lz4", "corrupt")
	wantProblem(t, rep, "wal/0000000100000000/000000010000000000000004.lz4", "page address")
	if len(rep.Problems) != 2 {
		t.Errorf("problems:\n%s", problems(rep))
	}
}

func TestVerifyFullWrongSizeAndCluster(t *testing.T) {
	f := fakerepo.New(t)
	f.Codec = repo.CodecNone
	f.Segments(1, 1, 3)
	f.Delete(seg(1, 2))
	f.Put(seg(1, 2), waltest.FakeSegment(seg(1, 2), fakerepo.SysID, fakerepo.SegSize, nil)[:4096])
	f.Delete(seg(1, 3))
	f.Put(seg(1, 3), waltest.FakeSegment(seg(1, 3), fakerepo.SysID+1, fakerepo.SegSize, nil))
	rep := verify(t, f, false)
	wantProblem(t, rep, "wal/0000000100000000/000000010000000000000002", "4096 bytes")
	rep = verify(t, f, true)
	wantProblem(t, rep, "wal/0000000100000000/000000010000000000000003", "system")
}

func TestBackupStatuses(t *testing.T) {
	f := fakerepo.New(t)
	f.Segments(1, 5, 12) // 1..4 pruned
	expired := f.Backup(1, 2, 3, day)
	broken := f.Backup(1, 6, 7, day.AddDate(0, 0, 1))
	good := f.Backup(1, 9, 10, day.AddDate(0, 0, 2))
	f.Delete(seg(1, 7))
	rep := verify(t, f, false)
	got := map[string]catalog.BackupStatus{}
	for _, b := range rep.Backups {
		got[b.File] = b
	}
	if b := got[good.String()]; !b.Restorable || !b.Newest {
		t.Errorf("%s: %+v, want restorable and newest", good, b)
	}
	if b := got[broken.String()]; b.Restorable || b.Expired || !strings.Contains(b.Reason, seg(1, 7).String()) {
		t.Errorf("%s: %+v, want not restorable for lack of %s", broken, b, seg(1, 7))
	}
	if b := got[expired.String()]; b.Restorable || !b.Expired || !strings.Contains(b.Reason, "pruned") {
		t.Errorf("%s: %+v, want expired", expired, b)
	}
	// An expired backup is retention at work, not a problem; a broken one is.
	wantProblem(t, rep, broken.String(), "segment 000000010000000000000007 is missing")
	wantProblem(t, rep, seg(1, 7).String(), "missing from timeline 1")
	if len(rep.Problems) != 2 {
		t.Errorf("problems:\n%s", problems(rep))
	}
}

func TestBackupDamagedRecord(t *testing.T) {
	f := fakerepo.New(t)
	f.Segments(1, 1, 4)
	n := wal.Name{Kind: wal.KindBackup, Timeline: 1, Seg: 2, Offset: 0x28}
	f.Put(n, []byte("not a backup history file\n"))
	rep := verify(t, f, false)
	wantProblem(t, rep, n.String(), "damaged")
}

func TestStatusAndItems(t *testing.T) {
	f, _, b2 := healthy(t)
	now := time.Now().Truncate(time.Second)
	f.Age(seg(2, 8), now.Add(time.Hour)) // the most recently archived
	ctx := context.Background()
	c, err := catalog.Scan(ctx, f.Open(repo.LayoutAuto))
	if err != nil {
		t.Fatal(err)
	}
	s := Summarize(c)
	if !s.HaveIdentity || s.SystemID != fakerepo.SysID || s.SegSize != fakerepo.SegSize || s.Layout != "walship" {
		t.Errorf("identity in status: %+v", s)
	}
	if s.Files != 13 || s.Segments != 9 || s.Histories != 1 || s.Backups != 2 || s.Partials != 1 {
		t.Errorf("counts: %d files, %d segments, %d history, %d backup, %d partial", s.Files, s.Segments, s.Histories, s.Backups, s.Partials)
	}
	if s.StoredBytes <= 0 || s.StoredBytes >= s.RawBytes || s.RawBytes < 10*int64(fakerepo.SegSize) {
		t.Errorf("bytes: %d stored, %d raw", s.StoredBytes, s.RawBytes)
	}
	if len(s.Timelines) != 2 || s.Timelines[1].First != seg(2, 6).String() || s.Timelines[1].Last != seg(2, 9).String() {
		t.Errorf("timelines %+v", s.Timelines)
	}
	if s.NewestBackup == nil || s.NewestBackup.File != b2.String() || !s.NewestBackup.Restorable {
		t.Errorf("newest backup %+v, want %s restorable", s.NewestBackup, b2)
	}
	if s.LastArchivedFile != seg(2, 8).String() || !s.LastArchived.Equal(now.Add(time.Hour)) {
		t.Errorf("last archived %s at %v", s.LastArchivedFile, s.LastArchived)
	}

	items := Items(c, 2)
	var got []string
	for _, it := range items {
		got = append(got, it.Kind+" "+it.Name)
	}
	want := []string{"history 00000002.history", "segment " + seg(2, 6).String(), "segment " + seg(2, 7).String(),
		"backup " + b2.String(), "segment " + seg(2, 8).String(), "segment " + seg(2, 9).String()}
	if !slices.Equal(got, want) {
		t.Errorf("Items(2) =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if all := Items(c, 0); len(all) != 13 {
		t.Errorf("Items(0) has %d files, want 13", len(all))
	}
}

func TestScanPlainWithoutIdentity(t *testing.T) {
	f := fakerepo.NewPlain(t)
	f.Segments(1, 3, 5)
	c, err := catalog.Scan(context.Background(), f.Open(repo.LayoutAuto))
	if err != nil {
		t.Fatal(err)
	}
	if c.HaveIdentity || c.SegSize != fakerepo.SegSize || len(c.Segments(1)) != 3 {
		t.Errorf("identity %v, segment size %d (from the header), %d segments", c.HaveIdentity, c.SegSize, len(c.Segments(1)))
	}
}

// A name stored twice is a problem; objects without a checksum and the
// leftovers of killed writers are counted.
func TestVerifyDuplicatesAndLeftovers(t *testing.T) {
	f := fakerepo.New(t)
	f.Segments(1, 1, 3)
	// The same segment once more, uncompressed, and at the top as cp
	// would write it.
	n := seg(1, 2)
	data := waltest.FakeSegment(n, fakerepo.SysID, fakerepo.SegSize, nil)
	os.WriteFile(filepath.Join(f.Dir, n.String()), data, 0o600)
	stale := filepath.Join(f.Dir, "wal", "0000000100000000", ".000000010000000000000004.lz4.tmp-9")
	os.WriteFile(stale, make([]byte, 1000), 0o600)
	old := time.Now().Add(-2 * time.Hour)
	os.Chtimes(stale, old, old)

	rep := verify(t, f, true)
	wantProblem(t, rep, n.String(), "stored more than once")
	if rep.Unchecked != 1 || rep.Leftovers != 1 || rep.LeftoverBytes != 1000 {
		t.Errorf("Unchecked %d, Leftovers %d (%d bytes); want 1, 1 (1000)", rep.Unchecked, rep.Leftovers, rep.LeftoverBytes)
	}
	if _, err := os.Stat(stale); err != nil {
		t.Errorf("verify removed a leftover: %v", err)
	}
}

// A flipped byte in an uncompressed object is caught by its checksum.
func TestVerifyFullUncompressedChecksum(t *testing.T) {
	f := fakerepo.New(t)
	f.Codec = repo.CodecNone
	f.Segments(1, 1, 3)
	p := f.Path(seg(1, 2))
	data, _ := os.ReadFile(p)
	data[len(data)/2] ^= 1
	os.WriteFile(p, data, 0o600)
	if rep := verify(t, f, false); !rep.OK() {
		t.Errorf("without --full: %s", problems(rep))
	}
	rep := verify(t, f, true)
	wantProblem(t, rep, "wal/0000000100000000/000000010000000000000002", "checksum mismatch")
}

// Backups walship stored are part of the catalog: one from a primary is
// one backup with its backup history file, one from a standby (which has
// none) is there too, and a missing object or WAL makes either
// unrestorable.
func TestStoredBackupStatuses(t *testing.T) {
	f := fakerepo.New(t)
	f.Segments(1, 1, 12)
	primary := f.StoredBackup(1, 2, 3, day, "primary")
	standby := f.StoredBackup(1, 6, 7, day.AddDate(0, 0, 1), "standby")
	rep := verify(t, f, false)
	if len(rep.Backups) != 2 {
		t.Fatalf("backups %+v, want 2 (the primary's backup history file is the same backup)", rep.Backups)
	}
	b, p := rep.Backups[0], rep.Backups[1]
	if b.ID != string(standby) || b.From != "standby" || !b.Stored || !b.Restorable || !b.Newest || b.File != "" {
		t.Errorf("standby backup: %+v", b)
	}
	if p.ID != string(primary) || p.File != "000000010000000000000002.00000028.backup" || !p.Restorable {
		t.Errorf("primary backup: %+v", p)
	}
	if !rep.OK() {
		t.Errorf("problems:\n%s", problems(rep))
	}

	if err := os.Remove(f.BackupPath(primary, repo.BasePart)); err != nil {
		t.Fatal(err)
	}
	f.Delete(seg(1, 7))
	rep = verify(t, f, false)
	wantProblem(t, rep, string(primary), "base.tar.lz4 is missing")
	wantProblem(t, rep, string(standby), "newest base backup is not restorable: segment 000000010000000000000007 is missing")
}

// A backup directory without a record is an interrupted backup: noted,
// not taken for a backup.
func TestIncompleteBackupNoted(t *testing.T) {
	f := fakerepo.New(t)
	f.Segments(1, 1, 4)
	f.IncompleteBackup("20240501T020000Z", day)
	rep := verify(t, f, false)
	if len(rep.Backups) != 0 || !rep.OK() {
		t.Errorf("backups %+v, problems %s; want none", rep.Backups, problems(rep))
	}
	if !slices.ContainsFunc(rep.Notes, func(n string) bool {
		return strings.Contains(n, "20240501T020000Z") && strings.Contains(n, "interrupted")
	}) {
		t.Errorf("notes %q do not name the interrupted backup", rep.Notes)
	}
}

// A record that cannot be read is a problem.
func TestDamagedBackupRecord(t *testing.T) {
	f := fakerepo.New(t)
	f.Segments(1, 1, 4)
	id := f.StoredBackup(1, 2, 2, day, "standby")
	p := f.BackupPath(id, repo.MetaPart)
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/2] ^= 0x40
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	rep := verify(t, f, false)
	wantProblem(t, rep, string(id), "record")
}

// verify --full reads every stored backup: a file that differs from its
// manifest, and a damaged object, are problems; a sound backup is not.
func TestVerifyFullReadsStoredBackups(t *testing.T) {
	f := fakerepo.New(t)
	f.Segments(1, 1, 12)
	good := f.StoredBackup(1, 2, 3, day, "primary")
	mismatch := f.StoredBackupMismatch(1, 5, 6, day.AddDate(0, 0, 1))
	corrupt := f.StoredBackup(1, 8, 9, day.AddDate(0, 0, 2), "standby")
	p := f.BackupPath(corrupt, repo.BasePart)
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/2] ^= 0x20
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	// Without --full only the listing is checked: sizes agree.
	if rep := verify(t, f, false); !rep.OK() {
		t.Errorf("without --full: problems:\n%s", problems(rep))
	}
	rep := verify(t, f, true)
	if rep.BackupsChecked != 3 {
		t.Errorf("read %d backups in full, want 3", rep.BackupsChecked)
	}
	wantProblem(t, rep, string(mismatch), "PG_VERSION has CRC32C checksum")
	wantProblem(t, rep, string(corrupt), "backup damaged: base.tar")
	for _, pr := range rep.Problems {
		if pr.File == string(good) {
			t.Errorf("the sound backup has a problem: %s", pr)
		}
	}
}

// A backup from a standby starts at the standby's restart point, which may
// be where an earlier backup of the primary started: they are two
// backups, and the standby's has no backup history file.
func TestStandbyBackupSameStartAsPrimaryBackup(t *testing.T) {
	f := fakerepo.New(t)
	f.Segments(1, 1, 8)
	hist := f.Backup(1, 2, 2, day)
	standby := f.StoredBackup(1, 2, 5, day.AddDate(0, 0, 1), "standby")
	rep := verify(t, f, false)
	if len(rep.Backups) != 2 {
		t.Fatalf("backups %+v, want 2", rep.Backups)
	}
	if b := rep.Backups[0]; b.ID != string(standby) || b.File != "" || b.Stop != "0/500100" {
		t.Errorf("the standby's backup: %+v", b)
	}
	if b := rep.Backups[1]; b.ID != "" || b.File != hist.String() {
		t.Errorf("the primary's backup: %+v", b)
	}
}

// verify --full of an encrypted repository says which objects need which
// key, and which the identities given cannot read (not checked, and not
// taken for damage).
func TestVerifyFullEncryptedKeys(t *testing.T) {
	ctx := context.Background()
	root := filepath.Join(t.TempDir(), "repo")
	lb, _ := local.New(root)
	oldID, _ := age.GenerateX25519Identity()
	newID, _ := age.GenerateX25519Identity()
	w := repo.New(lb, repo.Options{Layout: repo.LayoutAuto, Create: true, Keys: repo.Keys{Recipients: []age.Recipient{oldID.Recipient()}}})
	for s := uint64(1); s <= 3; s++ {
		if s == 3 { // rotation
			w = repo.New(lb, repo.Options{Layout: repo.LayoutAuto, Create: true, Keys: repo.Keys{Recipients: []age.Recipient{newID.Recipient()}}})
		}
		n := seg(1, s)
		data := waltest.Seeded(n, fakerepo.SysID, fakerepo.SegSize, byte(s))
		h, _ := wal.ParseLongHeader(data)
		if err := w.Claim(ctx, h); err != nil {
			t.Fatal(err)
		}
		if _, err := w.Put(ctx, n, data); err != nil {
			t.Fatal(err)
		}
	}
	r := repo.New(lb, repo.Options{Layout: repo.LayoutAuto, Keys: repo.Keys{Identities: []age.Identity{oldID}}})
	c, err := catalog.Scan(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := Verify(ctx, r, c, VerifyOptions{Full: true})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() || rep.Checked != 2 || rep.Undecrypted != 1 || len(rep.Keys) != 2 {
		t.Fatalf("report: ok %v, checked %d, undecrypted %d, keys %+v; problems:\n%s", rep.OK(), rep.Checked, rep.Undecrypted, rep.Keys, problems(rep))
	}
	oldFP, newFP := repo.Fingerprint(oldID.Recipient().String()), repo.Fingerprint(newID.Recipient().String())
	for _, k := range rep.Keys {
		switch {
		case len(k.Recipients) == 1 && k.Recipients[0] == oldFP:
			if k.Objects != 2 || !k.Readable {
				t.Errorf("old key: %+v, want 2 readable objects", k)
			}
		case len(k.Recipients) == 1 && k.Recipients[0] == newFP:
			if k.Objects != 1 || k.Readable {
				t.Errorf("new key: %+v, want 1 object not readable", k)
			}
		default:
			t.Errorf("unexpected key set %+v", k)
		}
	}
}
