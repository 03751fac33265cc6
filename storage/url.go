package storage

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/walship/walship/internal/logx"
)

// Opener creates a backend for a repository URL of its scheme.
// It logs through log (never nil).
type Opener func(ctx context.Context, u *url.URL, opts Options, log *slog.Logger) (Backend, error)

// Options are backend settings that do not belong in a URL. Each backend
// reads the keys it knows ("endpoint", "region", ...); unknown keys are
// ignored by backends that do not use them.
type Options map[string]string

var (
	mu      sync.Mutex
	openers = map[string]Opener{}
)

// Register makes a backend available for a URL scheme. Backends call it
// from init; registering a scheme twice panics.
func Register(scheme string, o Opener) {
	mu.Lock()
	defer mu.Unlock()
	if _, dup := openers[scheme]; dup {
		panic("storage: scheme registered twice: " + scheme)
	}
	openers[scheme] = o
}

// Open turns a repository location into a backend. A location without a
// scheme (or file://) is a local directory; others need their backend
// registered (import it for its side effect). The backend logs through
// log (nil: nowhere).
func Open(ctx context.Context, location string, opts Options, log *slog.Logger) (Backend, error) {
	if location == "" {
		return nil, fmt.Errorf("no repository given")
	}
	u := &url.URL{Scheme: "file", Path: location}
	if i := strings.Index(location, "://"); i > 0 {
		var err error
		if u, err = url.Parse(location); err != nil {
			return nil, fmt.Errorf("repository %q: %w", location, err)
		}
	} else if scheme, _, ok := strings.Cut(location, ":"); ok && registered(scheme) {
		// file:dir or s3:bucket would otherwise name a directory called so.
		return nil, fmt.Errorf("repository %q: write %s:// (for a directory, file:///absolute/path or the path itself)", location, scheme)
	}
	mu.Lock()
	o, ok := openers[u.Scheme]
	mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("repository %q: unknown scheme %q (known: %s)", location, u.Scheme, strings.Join(Schemes(), ", "))
	}
	return o(ctx, u, opts, logx.Or(log))
}

func registered(scheme string) bool {
	mu.Lock()
	defer mu.Unlock()
	_, ok := openers[strings.ToLower(scheme)]
	return ok
}

// Schemes lists the registered URL schemes, sorted.
func Schemes() []string {
	mu.Lock()
	defer mu.Unlock()
	s := make([]string, 0, len(openers))
	for k := range openers {
		s = append(s, k)
	}
	sort.Strings(s)
	return s
}

// SameLocation reports whether two repository locations name the same
// archive, without opening either: local directories by their absolute
// path (a relative one taken from dir, "" for the current directory; file:///
// and a bare path alike; symbolic links followed where they exist), other
// schemes by scheme, host and path without surrounding slashes
// (s3://bucket/pg/main and s3://bucket/pg/main/ are one).
func SameLocation(a, b, dir string) bool {
	ca, okA := canonical(a, dir)
	cb, okB := canonical(b, dir)
	return okA && okB && ca == cb
}

// canonical is the form of a location SameLocation compares.
func canonical(location, dir string) (string, bool) {
	if location == "" {
		return "", false
	}
	path := location
	if i := strings.Index(location, "://"); i > 0 {
		u, err := url.Parse(location)
		if err != nil {
			return "", false
		}
		if s := strings.ToLower(u.Scheme); s != "file" {
			return s + "://" + strings.ToLower(u.Host) + "/" + strings.Trim(u.Path, "/"), true
		}
		if u.Host != "" && u.Host != "localhost" {
			return "", false
		}
		path = u.Path
	}
	if !filepath.IsAbs(path) {
		if dir == "" {
			var err error
			if dir, err = os.Getwd(); err != nil {
				return "", false
			}
		}
		path = filepath.Join(dir, path)
	}
	path = filepath.Clean(path)
	if real, err := filepath.EvalSymlinks(path); err == nil {
		path = real
	}
	return "file://" + path, true
}
