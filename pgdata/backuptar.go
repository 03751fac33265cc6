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
//
// Every entry must stay inside the directory the tar is unpacked into: a
// name that is absolute or leaves it (..), one inside a symbolic link the
// tar holds, one that appears twice (a later entry would be written
// through an earlier symbolic link of that name), a hard link or a
// device is an error matching ErrBackupTar.
func WalkBackupTar(r io.Reader, prefix string, check *ManifestCheck, visit func(TarEntry) error) error {
	return WalkBackupTarSome(r, prefix, check, nil, visit)
}

// WalkBackupTarSome is WalkBackupTar for the entries use says yes to (by
// their names, without the prefix; nil: all): the others are read past,
// neither checked nor visited, but they must be as well-formed as any.
func WalkBackupTarSome(r io.Reader, prefix string, check *ManifestCheck, use func(name string) bool, visit func(TarEntry) error) error {
	tr := tar.NewReader(r)
	links := map[string]bool{}
	seen := map[string]bool{}
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
		if name == "." {
			if h.Typeflag == tar.TypeDir {
				continue
			}
			return fmt.Errorf("%w: it holds %q, which is not a file name", ErrBackupTar, h.Name)
		}
		for d := path.Dir(name); d != "."; d = path.Dir(d) {
			if links[d] {
				return fmt.Errorf("%w: it holds %q, inside its symbolic link %s", ErrBackupTar, h.Name, d)
			}
		}
		if seen[name] {
			return fmt.Errorf("%w: it holds %q twice", ErrBackupTar, h.Name)
		}
		seen[name] = true
		e := TarEntry{Name: name, Header: h}
		if use != nil && !use(name) {
			switch h.Typeflag {
			case tar.TypeDir, tar.TypeSymlink, tar.TypeReg:
				if h.Typeflag == tar.TypeSymlink {
					links[name] = true
				}
				continue // its content, if any, is skipped by Next
			}
			return fmt.Errorf("%w: it holds %q of type %q", ErrBackupTar, h.Name, h.Typeflag)
		}
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
