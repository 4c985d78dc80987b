package canary

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// maxKeyFile bounds what is read from an account key file: a PEM key is a
// few kilobytes, anything much larger is not a key.
const maxKeyFile = 64 << 10

// loadOrCreateKey reads the ACME account key from path, or creates an ECDSA
// P-256 key there when the file does not exist. An empty path gives an
// ephemeral key (a new account per run). Every error names the file.
func loadOrCreateKey(path string) (crypto.Signer, error) {
	if path == "" {
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	}
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return createKey(path)
	}
	if err != nil {
		return nil, fmt.Errorf("account key file %s: %w", path, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxKeyFile+1))
	if err != nil {
		return nil, fmt.Errorf("account key file %s: %w", path, err)
	}
	if len(b) > maxKeyFile {
		return nil, fmt.Errorf("account key file %s: larger than %d bytes, not a PEM key", path, maxKeyFile)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, fmt.Errorf("account key file %s: no PEM block", path)
	}
	var key any
	switch blk.Type {
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(blk.Bytes)
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(blk.Bytes)
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(blk.Bytes)
	default:
		return nil, fmt.Errorf("account key file %s: PEM block %q is not a private key", path, blk.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("account key file %s: %w", path, err)
	}
	switch k := key.(type) {
	case *ecdsa.PrivateKey:
		if c := k.Curve; c != elliptic.P256() && c != elliptic.P384() {
			return nil, fmt.Errorf("account key file %s: ECDSA curve %s not accepted by ACME servers (want P-256 or P-384)", path, c.Params().Name)
		}
		return k, nil
	case *rsa.PrivateKey:
		if k.N.BitLen() < 2048 {
			return nil, fmt.Errorf("account key file %s: RSA key of %d bits is too short (want ≥ 2048)", path, k.N.BitLen())
		}
		return k, nil
	default:
		return nil, fmt.Errorf("account key file %s: key type %T is not usable for ACME (want ECDSA or RSA)", path, key)
	}
}

// createKey writes a new P-256 key to path (mode 0600, never overwriting).
func createKey(path string) (crypto.Signer, error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("account key file %s: %w", path, err)
	}
	der, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		return nil, fmt.Errorf("account key file %s: %w", path, err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("account key file %s: %w", path, err)
	}
	// O_EXCL: two canaries starting at once must not each write a key and
	// register two accounts; the loser reads the winner's key.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return loadOrCreateKey(path)
	}
	if err != nil {
		return nil, fmt.Errorf("account key file %s: %w", path, err)
	}
	if err := pem.Encode(f, &pem.Block{Type: "EC PRIVATE KEY", Bytes: der}); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("account key file %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("account key file %s: %w", path, err)
	}
	return k, nil
}
