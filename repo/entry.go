package repo

import (
	"context"

	"github.com/pierrec/lz4/v4"
)

// OpenEntry opens exactly the object a List entry names, decoded with its
// codec. Unlike Open it does not search the candidate keys, so a file that
// is stored twice (under both codecs or both layouts) can be read copy by
// copy, as a verification must.
func (r *Repo) OpenEntry(ctx context.Context, e Entry) (*Object, error) {
	body, err := r.b.Open(ctx, e.Key)
	if err != nil {
		return nil, err
	}
	o := &Object{Name: e.Name, Key: e.Key, Codec: e.Codec, body: body, r: body}
	if e.Codec == CodecLZ4 {
		o.r = lz4.NewReader(body)
	}
	return o, nil
}
