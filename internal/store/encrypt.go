package store

import (
	"bufio"
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"strings"
)

// Encryption at rest. The values of every collection (groups with their
// registry passwords and secret files, tokens, hosts with their stream
// secrets) are sealed with AES-GCM before they reach etcd, as the
// kube-apiserver's aesgcm provider seals Secrets: whoever reads etcd's
// files, its backups or its traffic reads nothing. The keys come from a key
// file; the first key seals, every key opens, so that keys rotate without a
// stop (docs/security.md). A value without the prefix was written before
// encryption was on and is read as it is; it is sealed when next written.

// sealedPrefix starts every sealed value: then the key's name, ':', the
// nonce and the ciphertext.
const sealedPrefix = "eci:enc:aesgcm:v1:"

// Keys seal and open stored values.
type Keys struct {
	names []string // in the file's order: names[0] seals
	aeads map[string]cipher.AEAD
}

// LoadKeys reads a key file: one key a line, "name: base64 of 32 bytes",
// '#' starts a comment. The first key seals new values.
func LoadKeys(path string) (*Keys, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("encryption key file: %w", err)
	}
	k := &Keys{aeads: map[string]cipher.AEAD{}}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, secret, ok := strings.Cut(line, ":")
		name, secret = strings.TrimSpace(name), strings.TrimSpace(secret)
		if !ok || name == "" || strings.ContainsAny(name, ": \t") {
			return nil, fmt.Errorf("%s line %d: want \"name: base64 key\"", path, n)
		}
		raw, err := base64.StdEncoding.DecodeString(secret)
		if err != nil || len(raw) != 32 {
			return nil, fmt.Errorf("%s line %d: key %q must be 32 bytes in base64 (head -c 32 /dev/urandom | base64)", path, n, name)
		}
		if _, dup := k.aeads[name]; dup {
			return nil, fmt.Errorf("%s line %d: key %q appears twice", path, n, name)
		}
		block, _ := aes.NewCipher(raw)
		aead, _ := cipher.NewGCM(block)
		k.names = append(k.names, name)
		k.aeads[name] = aead
	}
	if len(k.names) == 0 {
		return nil, fmt.Errorf("%s holds no key", path)
	}
	return k, nil
}

// WriteKeyFile makes a key file with one new random key, readable by its
// owner only, unless path exists.
func WriteKeyFile(path string) error {
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return err
	}
	content := "# eci encryption keys: the first seals, every one opens (docs/security.md).\nkey1: " + base64.StdEncoding.EncodeToString(raw) + "\n"
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("encryption key file: %w", err)
	}
	if _, err := f.WriteString(content); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}

// Current is the name of the key that seals.
func (k *Keys) Current() string { return k.names[0] }

// seal encrypts the value of etcd key with the current key (nil Keys: as
// it is). The key's name and the etcd key are authenticated with it: a
// sealed value copied under another etcd key (a token record moved to the
// hash of another secret) does not open.
func (k *Keys) seal(etcdKey string, plain []byte) []byte {
	if k == nil {
		return plain
	}
	name := k.names[0]
	aead := k.aeads[name]
	head := sealedPrefix + name + ":"
	out := make([]byte, len(head), len(head)+aead.NonceSize()+len(plain)+aead.Overhead())
	copy(out, head)
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		panic(err) // the system's randomness failed
	}
	out = append(out, nonce...)
	return aead.Seal(out, nonce, plain, []byte(head+etcdKey))
}

// open decrypts a sealed value; a value that is not sealed is returned as
// it is. sealedWith is the key that sealed it ("" when none). Nil Keys open
// nothing sealed.
func (k *Keys) open(etcdKey string, value []byte) (plain []byte, sealedWith string, err error) {
	if !bytes.HasPrefix(value, []byte(sealedPrefix)) {
		return value, "", nil
	}
	rest := value[len(sealedPrefix):]
	i := bytes.IndexByte(rest, ':')
	if i < 0 {
		return nil, "", errors.New("a sealed value without its key's name")
	}
	name := string(rest[:i])
	if k == nil {
		return nil, name, fmt.Errorf("the value was sealed with key %q and this server has no encryption key file", name)
	}
	aead, ok := k.aeads[name]
	if !ok {
		return nil, name, fmt.Errorf("the value was sealed with key %q, which the key file does not hold", name)
	}
	body := rest[i+1:]
	if len(body) < aead.NonceSize() {
		return nil, name, errors.New("a sealed value too short for its nonce")
	}
	head := value[:len(sealedPrefix)+i+1]
	plain, err = aead.Open(nil, body[:aead.NonceSize()], body[aead.NonceSize():], append(append([]byte{}, head...), etcdKey...))
	if err != nil {
		return nil, name, fmt.Errorf("open a value sealed with key %q: %w", name, err)
	}
	return plain, name, nil
}
