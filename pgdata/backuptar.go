package pgdata

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"path"
	"path/filepath"
	"strings"
)

// ErrBackupTar is matched by errors about a tar that is not a base
// backup's: an entry outside the data directory, or of a kind a base
// backup never holds.
var ErrBackupTar = errors.New("not a base backup tar")

// TarEntry is one entry of a base backup's tar, handed to a visitor.
type TarEntry struct {
	Name   string // clean, relative to the tar's root
	Header *tar.Header
	// Content is a regular file's content (nil for other entries); what
	// the visitor leaves unread is read for the check.
	Content io.Reader
}

// WalkBackupTar reads the tar r of a base backup (base.tar; a tablespace's
// <oid>.tar with prefix "pg_tblspc/<oid>/", where its files are in the
// manifest) and checks every regular file against the manifest as its
// content streams by: a file the manifest lacks, or of another size or
// checksum, is an error matching ErrManifest. visit (may be nil) sees
// every entry. WalkBackupTar reads r to its end, past the end of the tar,
// so that whatever r checks at its end (an lz4 frame's checksum) is
// checked; read errors of r are returned as they are.
func WalkBackupTar(r io.Reader, prefix string, check *ManifestCheck, visit func(TarEntry) error) error {
	tr := tar.NewReader(r)
	links := map[string]bool{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			if errors.Is(err, tar.ErrHeader) {
				return fmt.Errorf("%w: %w", ErrBackupTar, err)
			}
			return err
		}
		name := path.Clean(strings.TrimPrefix(h.Name, "./"))
		if !filepath.IsLocal(name) {
			return fmt.Errorf("%w: it holds %q, outside the data directory", ErrBackupTar, h.Name)
		}
		for d := path.Dir(name); d != "."; d = path.Dir(d) {
			if links[d] {
				return fmt.Errorf("%w: it holds %q, inside its symbolic link %s", ErrBackupTar, h.Name, d)
			}
		}
		e := TarEntry{Name: name, Header: h}
		switch h.Typeflag {
		case tar.TypeDir:
		case tar.TypeSymlink:
			links[name] = true
		case tar.TypeReg:
			sum, err := check.File(prefix + name)
			if err != nil {
				return err
			}
			e.Content = io.TeeReader(tr, sum)
			if visit != nil {
				if err := visit(e); err != nil {
					return err
				}
			}
			if _, err := io.Copy(io.Discard, e.Content); err != nil {
				return err
			}
			if err := sum.Close(); err != nil {
				return err
			}
			continue
		default:
			return fmt.Errorf("%w: it holds %q of type %q", ErrBackupTar, h.Name, h.Typeflag)
		}
		if visit != nil {
			if err := visit(e); err != nil {
				return err
			}
		}
	}
	_, err := io.Copy(io.Discard, r)
	return err
}
