package repo

import (
	"context"
)

// OpenEntry opens exactly the object a List entry names, decoded with its
// codec. Unlike Open it does not search the candidate keys, so a file that
// is stored twice (under both codecs or both layouts) can be read copy by
// copy, as a verification must.
func (r *Repo) OpenEntry(ctx context.Context, e Entry) (*Object, error) {
	return r.openAt(ctx, e.Name, e.Location)
}

// RawSize is the size of the WAL file the entry holds: the segment size
// for a compressed segment (0 when unknown), the stored size less the
// checksum footer for a sealed object, else the stored size.
func (e Entry) RawSize(segSize uint32) int64 {
	switch {
	case Compressible(e.Name.Kind) && e.Codec != CodecNone:
		return int64(segSize)
	case e.Sealed:
		return e.Size - int64(FooterSize)
	}
	return e.Size
}
