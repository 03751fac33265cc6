package repo

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"syscall"

	"filippo.io/age"
	"github.com/zeebo/xxh3"
)

// Encryption at rest, on the client: every object of an encrypted
// repository is encrypted with age (after compression and sealing) to the
// repository's recipients, so a writer needs only their public keys and
// cannot read the archive; readers need an identity file.
//
// An encrypted object is one line of clear text, then the age file:
//
//	walship-age v2 xxh3=<hex of the WAL file's XXH3-128> keys=<fp>,<fp>\n
//
// whose plaintext starts with the object's own key, then the object as it
// is stored unencrypted (compressed or sealed):
//
//	walship-key wal/0000000100000000/000000010000000000000003.lz4\n
//
// age authenticates the plaintext, key line included, so an object copied
// under another name (a history file of timeline 2 as timeline 3's, a
// segment of timeline 1 as timeline 2's) is refused by every reader: it is
// bound to its name. Objects of v1, written before, have no key line and
// are still read.
//
// keys are the fingerprints of the recipients it was encrypted to (so that
// verify can say which objects need which key, across a rotation), and the
// digest of the content lets an archiver that holds no identity tell an
// identical re-push from a different one (PostgreSQL retries a file whose
// archiving it did not see succeed). It reveals only whether a file someone
// already has is the one archived. The content itself is authenticated by
// age; the digest is not a check of it, so a fast hash does.

// Keys are the encryption settings a repository is opened with: the
// recipients new objects are encrypted to, and the identities that decrypt.
type Keys struct {
	Recipients []age.Recipient
	Identities []age.Identity
}

// Encryption is what the identity file records about encryption.
type Encryption struct {
	Scheme string `json:"scheme"` // "age"
	// Recipients are the fingerprints of the recipients the repository was
	// created with (see Fingerprint).
	Recipients []string `json:"recipients"`
}

// ErrEncryption is matched by errors about keys: an encrypted repository
// written or read without them, keys for an unencrypted one, or no
// identity that decrypts an object.
var ErrEncryption = errors.New("encryption")

const cryptScheme = "age"

// Fingerprint names a recipient (or the recipient of an identity) without
// revealing it: the first 8 bytes of the SHA-256 of its text, in hex.
func Fingerprint(recipient string) string {
	sum := sha256.Sum256([]byte(recipient))
	return hex.EncodeToString(sum[:8])
}

func recipientFingerprint(r age.Recipient) string {
	if s, ok := r.(fmt.Stringer); ok {
		return Fingerprint(s.String())
	}
	return "?"
}

// identityFingerprint is the fingerprint of the recipient an identity
// decrypts for, or "" when it cannot tell.
func identityFingerprint(id age.Identity) string {
	switch i := id.(type) {
	case *age.X25519Identity:
		return Fingerprint(i.Recipient().String())
	case *age.HybridIdentity:
		return Fingerprint(i.Recipient().String())
	}
	return ""
}

// Fingerprints lists the fingerprints of the keys' recipients, sorted.
func (k Keys) Fingerprints() []string {
	var out []string
	for _, r := range k.Recipients {
		out = append(out, recipientFingerprint(r))
	}
	sort.Strings(out)
	return out
}

// Decrypts reports whether the keys hold an identity for the recipient
// with fingerprint fp.
func (k Keys) Decrypts(fp string) bool {
	for _, id := range k.Identities {
		if identityFingerprint(id) == fp {
			return true
		}
	}
	return false
}

// ParseRecipients reads recipients given as text (AGE1...) and from files
// of them (one per line, # comments).
func ParseRecipients(texts []string, files []string) ([]age.Recipient, error) {
	var out []age.Recipient
	for _, t := range texts {
		rs, err := age.ParseRecipients(strings.NewReader(t))
		if err != nil {
			return nil, fmt.Errorf("recipient %q: %w", t, err)
		}
		out = append(out, rs...)
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("recipients file: %w", err)
		}
		rs, err := age.ParseRecipients(bytes.NewReader(data))
		if err != nil {
			return nil, fmt.Errorf("recipients file %s: %w", f, err)
		}
		out = append(out, rs...)
	}
	return out, nil
}

// LoadIdentities reads an age identity file, which must be a regular file
// owned by the user running and readable by nobody else (mode 0600 or
// stricter): a key others can read is a key others have.
func LoadIdentities(path string) ([]age.Identity, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("identity file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("identity file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("identity file %s is not a regular file", path)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("identity file %s has mode %04o: others can read the key; make it 0600", path, fi.Mode().Perm())
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Geteuid() {
		return nil, fmt.Errorf("identity file %s belongs to uid %d, not to the user running (uid %d)", path, st.Uid, os.Geteuid())
	}
	ids, err := age.ParseIdentities(f)
	if err != nil {
		return nil, fmt.Errorf("identity file %s: %w", path, err)
	}
	return ids, nil
}

// GenerateKey makes a new X25519 key: the identity goes to a new file at
// path (mode 0600; an existing file is never replaced), and the recipient
// (the public key, age1...) is returned.
func GenerateKey(path string) (recipient string, err error) {
	id, err := age.GenerateX25519Identity()
	if err != nil {
		return "", err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", fmt.Errorf("identity file: %w", err)
	}
	text := fmt.Sprintf("# walship identity, public key: %s\n%s\n", id.Recipient(), id)
	if _, err := f.WriteString(text); err != nil {
		f.Close()
		os.Remove(path)
		return "", err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(path)
		return "", err
	}
	if err := f.Close(); err != nil {
		os.Remove(path)
		return "", err
	}
	return id.Recipient().String(), nil
}

// cryptHeader is the clear-text line before an object's age file.
type cryptHeader struct {
	version int // 1: no key line in the plaintext; 2: bound to its key
	sum     [digestSize]byte
	keys    []string
}

// digestSize is the size of a content digest (XXH3-128).
const digestSize = 16

// Digest is the XXH3-128 digest of size bytes of src, rewound before and
// after: what an encrypted object records of its content.
func Digest(src io.ReadSeeker, size int64) ([digestSize]byte, error) {
	var sum [digestSize]byte
	if _, err := src.Seek(0, io.SeekStart); err != nil {
		return sum, err
	}
	h := xxh3.New()
	n, err := io.CopyBuffer(h, io.LimitReader(src, size), make([]byte, copyBuf))
	if err != nil {
		return sum, err
	}
	if n != size {
		return sum, fmt.Errorf("source ended after %d of %d bytes", n, size)
	}
	sum = h.Sum128().Bytes()
	_, err = src.Seek(0, io.SeekStart)
	return sum, err
}

// cryptMagic starts the clear-text line; cryptVersion is the version
// written, after it.
const (
	cryptMagic   = "walship-age v"
	cryptVersion = 2
)

// keyLine starts the plaintext of an object of version 2: its key.
const keyLine = "walship-key "

func (h cryptHeader) bytes() []byte {
	return fmt.Appendf(nil, "%s%d xxh3=%x keys=%s\n", cryptMagic, cryptVersion, h.sum, strings.Join(h.keys, ","))
}

// readCryptHeader reads the clear-text line of an encrypted object.
func readCryptHeader(br *bufio.Reader, key string) (cryptHeader, error) {
	line, err := br.ReadSlice('\n')
	if err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, bufio.ErrBufferFull) {
			return cryptHeader{}, &CorruptError{Key: key, Reason: "not an encrypted walship object (no walship-age line)"}
		}
		return cryptHeader{}, err
	}
	rest, ok := strings.CutPrefix(strings.TrimSuffix(string(line), "\n"), cryptMagic)
	var h cryptHeader
	var sum, keys string
	if ok {
		_, err = fmt.Sscanf(rest, "%d xxh3=%s keys=%s", &h.version, &sum, &keys)
	}
	b, herr := hex.DecodeString(sum)
	if !ok || err != nil || herr != nil || len(b) != digestSize {
		return cryptHeader{}, &CorruptError{Key: key, Reason: "damaged walship-age line"}
	}
	if h.version < 1 || h.version > cryptVersion {
		return cryptHeader{}, &CorruptError{Key: key, Reason: fmt.Sprintf("encrypted object of version %d, which this walship does not read", h.version)}
	}
	copy(h.sum[:], b)
	h.keys = strings.Split(keys, ",")
	return h, nil
}

// encrypter wraps w: what is written to the result goes to w encrypted to
// the recipients, after the clear-text line for content of digest sum and
// the object's key, which binds the object to its name.
func (k Keys) encrypter(w io.Writer, key string, sum [digestSize]byte) (io.WriteCloser, error) {
	if _, err := w.Write(cryptHeader{sum: sum, keys: k.Fingerprints()}.bytes()); err != nil {
		return nil, err
	}
	ew, err := age.Encrypt(w, k.Recipients...)
	if err != nil {
		return nil, err
	}
	if _, err := io.WriteString(ew, keyLine+key+"\n"); err != nil {
		return nil, err
	}
	return ew, nil
}

// decrypter reads an encrypted object: the clear-text line, then the
// decrypted content. A failure to decrypt (tampered, or no identity for
// it) is an error naming the keys it needs.
// It also returns the fingerprints of the keys the object was encrypted to.
func (k Keys) decrypter(body io.Reader, key string) (io.Reader, []string, error) {
	br := bufio.NewReaderSize(body, 4096)
	h, err := readCryptHeader(br, key)
	if err != nil {
		return nil, nil, err
	}
	if len(k.Identities) == 0 {
		return nil, h.keys, fmt.Errorf("%w: %s is encrypted (for keys %s) and no identity was given", ErrEncryption, key, strings.Join(h.keys, ", "))
	}
	r, err := age.Decrypt(br, k.Identities...)
	if err != nil {
		var nm *age.NoIdentityMatchError
		if errors.As(err, &nm) {
			return nil, h.keys, fmt.Errorf("%w: no identity given decrypts %s (it needs one of keys %s)", ErrEncryption, key, strings.Join(h.keys, ", "))
		}
		return nil, h.keys, &CorruptError{Key: key, Reason: "cannot decrypt: " + err.Error()}
	}
	ar := ageReader{r, key}
	if h.version >= 2 {
		if err := checkKeyLine(ar, key); err != nil {
			return nil, h.keys, err
		}
	}
	return ar, h.keys, nil
}

// checkKeyLine reads the key line that starts the plaintext of a bound
// object and refuses one stored under another key than its own.
func checkKeyLine(r io.Reader, key string) error {
	want := keyLine + key + "\n"
	got := make([]byte, len(want))
	n, err := io.ReadFull(r, got)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return err
	}
	if string(got[:n]) != want {
		line, _, _ := strings.Cut(string(got[:n]), "\n")
		if other, ok := strings.CutPrefix(line, keyLine); ok {
			return &CorruptError{Key: key, Reason: fmt.Sprintf("it is the object of %s, stored under another name: refused", other)}
		}
		return &CorruptError{Key: key, Reason: "its encrypted content does not name it"}
	}
	return nil
}

// ageReader reports a failed authentication of the ciphertext (tampering)
// as corruption.
type ageReader struct {
	r   io.Reader
	key string
}

func (a ageReader) Read(p []byte) (int, error) {
	n, err := a.r.Read(p)
	if err != nil && err != io.EOF && !isStorageErr(err) {
		err = &CorruptError{Key: a.key, Reason: "encrypted data fails authentication: " + err.Error()}
	}
	return n, err
}

// storedDigest reads the content digest in the clear-text line of an
// encrypted object, which a writer without an identity compares with.
func storedDigest(body io.Reader, key string) ([digestSize]byte, error) {
	h, err := readCryptHeader(bufio.NewReaderSize(body, 4096), key)
	return h.sum, err
}
