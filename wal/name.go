package wal

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// Kind tells which of PostgreSQL's archived file kinds a Name is.
type Kind int

const (
	// KindSegment is a WAL segment: 000000010000000000000003.
	KindSegment Kind = iota + 1
	// KindHistory is a timeline history file: 00000002.history.
	KindHistory
	// KindBackup is a backup history file: 000000010000000000000003.00000028.backup.
	KindBackup
	// KindPartial is the last, incomplete segment of an old timeline, archived at
	// promotion: 000000010000000000000003.partial.
	KindPartial
)

func (k Kind) String() string {
	switch k {
	case KindSegment:
		return "segment"
	case KindHistory:
		return "history"
	case KindBackup:
		return "backup"
	case KindPartial:
		return "partial"
	}
	return "unknown"
}

// ErrBadName is matched by every error about a string that is not the name
// of a file PostgreSQL archives.
var ErrBadName = errors.New("not a WAL file name")

// NameError reports a name that does not parse.
type NameError struct {
	Name   string
	Reason string
}

func (e *NameError) Error() string {
	return fmt.Sprintf("%q is not a WAL file name: %s", e.Name, e.Reason)
}

// Unwrap lets errors.Is(err, ErrBadName) match.
func (e *NameError) Unwrap() error { return ErrBadName }

// Name is a parsed WAL archive file name. Log and Seg are the two 8-digit
// halves after the timeline, as PostgreSQL prints them; which segment number
// they denote depends on the segment size (see SegNo).
type Name struct {
	Kind     Kind
	Timeline uint32
	Log      uint32 // high 32 bits of the segment's start LSN
	Seg      uint32 // segment index within Log (segments of one size per 4 GiB)
	// Offset is the start LSN's offset within the segment, for Backup names.
	Offset uint32
}

// ParseName parses the base name of an archived file. It accepts exactly the
// forms PostgreSQL writes, with upper-case hex digits, and nothing else: no
// directories, no other suffixes.
func ParseName(s string) (Name, error) {
	bad := func(why string) (Name, error) { return Name{}, &NameError{Name: s, Reason: why} }
	switch {
	case len(s) == 24:
		n, err := parseSegment(s)
		if err != nil {
			return bad(err.Error())
		}
		n.Kind = KindSegment
		return n, nil
	case len(s) == 16 && s[8:] == ".history":
		tli, err := hex32(s[:8])
		if err != nil {
			return bad(err.Error())
		}
		if tli == 0 {
			return bad("timeline 0 does not exist")
		}
		return Name{Kind: KindHistory, Timeline: tli}, nil
	case len(s) == 32 && s[24:] == ".partial":
		n, err := parseSegment(s[:24])
		if err != nil {
			return bad(err.Error())
		}
		n.Kind = KindPartial
		return n, nil
	case len(s) == 40 && s[24] == '.' && s[33:] == ".backup":
		n, err := parseSegment(s[:24])
		if err != nil {
			return bad(err.Error())
		}
		off, err := hex32(s[25:33])
		if err != nil {
			return bad(err.Error())
		}
		n.Kind = KindBackup
		n.Offset = off
		return n, nil
	}
	return bad("expected a segment, .history, .partial or .backup name")
}

func parseSegment(s string) (Name, error) {
	tli, err := hex32(s[0:8])
	if err != nil {
		return Name{}, err
	}
	if tli == 0 {
		return Name{}, errors.New("timeline 0 does not exist")
	}
	log, err := hex32(s[8:16])
	if err != nil {
		return Name{}, err
	}
	seg, err := hex32(s[16:24])
	if err != nil {
		return Name{}, err
	}
	return Name{Timeline: tli, Log: log, Seg: seg}, nil
}

func hex32(s string) (uint32, error) {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'A' || c > 'F') {
			return 0, fmt.Errorf("%q is not upper-case hex", s)
		}
	}
	v, err := strconv.ParseUint(s, 16, 32)
	return uint32(v), err
}

// String formats the name exactly as PostgreSQL does.
func (n Name) String() string {
	switch n.Kind {
	case KindHistory:
		return fmt.Sprintf("%08X.history", n.Timeline)
	case KindPartial:
		return n.segmentPart() + ".partial"
	case KindBackup:
		return fmt.Sprintf("%s.%08X.backup", n.segmentPart(), n.Offset)
	}
	return n.segmentPart()
}

func (n Name) segmentPart() string {
	return fmt.Sprintf("%08X%08X%08X", n.Timeline, n.Log, n.Seg)
}

// SegmentName is the plain segment name a Partial or Backup name refers to
// (the segment it belongs to); for a Segment it is the name itself.
func (n Name) SegmentName() Name {
	return Name{Kind: KindSegment, Timeline: n.Timeline, Log: n.Log, Seg: n.Seg}
}

// HasSegment reports whether the name denotes a position in the WAL (all
// kinds but History).
func (n Name) HasSegment() bool { return n.Kind != KindHistory && n.Kind != 0 }

// segmentsPerLog is how many segments of segSize fit in one "log" (4 GiB).
func segmentsPerLog(segSize uint32) uint64 { return (1 << 32) / uint64(segSize) }

// CheckSegSize reports whether the name can exist with this segment size:
// the segment index must be below 4 GiB / segSize.
func (n Name) CheckSegSize(segSize uint32) error {
	if err := ValidSegSize(segSize); err != nil {
		return err
	}
	if n.HasSegment() && uint64(n.Seg) >= segmentsPerLog(segSize) {
		return &NameError{Name: n.String(), Reason: fmt.Sprintf("segment index %08X is out of range for %s segments", n.Seg, FormatSize(segSize))}
	}
	if n.Kind == KindBackup && n.Offset >= segSize {
		return &NameError{Name: n.String(), Reason: fmt.Sprintf("offset %08X is beyond a %s segment", n.Offset, FormatSize(segSize))}
	}
	return nil
}

// SegNo is the segment number (start LSN / segSize) of a name that has one.
func (n Name) SegNo(segSize uint32) uint64 {
	return uint64(n.Log)*segmentsPerLog(segSize) + uint64(n.Seg)
}

// StartLSN is the first LSN the segment covers (for Backup names, the
// backup's start LSN).
func (n Name) StartLSN(segSize uint32) LSN {
	return LSN(n.SegNo(segSize)*uint64(segSize) + uint64(n.Offset))
}

// SegmentFromNo builds the Segment name of segment number segNo on timeline tli.
func SegmentFromNo(tli uint32, segNo uint64, segSize uint32) Name {
	per := segmentsPerLog(segSize)
	return Name{Kind: KindSegment, Timeline: tli, Log: uint32(segNo / per), Seg: uint32(segNo % per)}
}

// Next is the segment after n on the same timeline.
func (n Name) Next(segSize uint32) Name {
	return SegmentFromNo(n.Timeline, n.SegNo(segSize)+1, segSize)
}

// ComparePosition orders names the way pg_archivecleanup does: by the position in the
// WAL (the 16 hex digits after the timeline), ignoring the timeline. It
// returns -1, 0 or +1.
func ComparePosition(a, b Name) int {
	switch {
	case a.Log != b.Log:
		return cmp32(a.Log, b.Log)
	case a.Seg != b.Seg:
		return cmp32(a.Seg, b.Seg)
	}
	return 0
}

func cmp32(a, b uint32) int {
	if a < b {
		return -1
	}
	return 1
}

// ValidSegSize reports whether size is a wal_segment_size PostgreSQL allows:
// a power of two from 1 MiB to 1 GiB.
func ValidSegSize(size uint32) error {
	if size < 1<<20 || size > 1<<30 || size&(size-1) != 0 {
		return fmt.Errorf("invalid WAL segment size %d: must be a power of two from 1MB to 1GB", size)
	}
	return nil
}

// FormatSize prints a segment size the way PostgreSQL's settings do (16MB).
func FormatSize(size uint32) string {
	switch {
	case size >= 1<<30 && size%(1<<30) == 0:
		return fmt.Sprintf("%dGB", size>>30)
	case size >= 1<<20 && size%(1<<20) == 0:
		return fmt.Sprintf("%dMB", size>>20)
	case size >= 1<<10 && size%(1<<10) == 0:
		return fmt.Sprintf("%dkB", size>>10)
	}
	return fmt.Sprintf("%dB", size)
}

// SortArchiveOrder sorts file names into the order in which the server's
// archiver sends them: timeline history files first, then the rest by name
// (which is the oldest WAL first).
func SortArchiveOrder(names []string) {
	sort.Slice(names, func(i, j int) bool {
		hi, hj := strings.HasSuffix(names[i], ".history"), strings.HasSuffix(names[j], ".history")
		if hi != hj {
			return hi
		}
		return names[i] < names[j]
	})
}
