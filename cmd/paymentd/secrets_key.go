package main

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
)

// secretsKeyFile is where the key sealing webhook signing secrets is read
// from: --secrets-key-file, or beside a SQLite database (DB.secrets-key),
// made on first start. A PostgreSQL fleet has no default: every replica must
// be given the same file, and without one secrets are stored unsealed.
func secretsKeyFile(flagValue, db string, postgres bool) (path string, create bool) {
	if flagValue != "" {
		return flagValue, false
	}
	if postgres {
		return "", false
	}
	return db + ".secrets-key", true
}

// loadSecretsKey reads a key file of 64 hex digits (32 bytes); with create,
// a missing file is made with a new random key, readable by its owner only.
func loadSecretsKey(path string, create bool) ([]byte, error) {
	if path == "" {
		return nil, nil
	}
	raw, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) && create {
		key := make([]byte, 32)
		_, _ = rand.Read(key)
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return nil, fmt.Errorf("secrets key: %w", err)
		}
		_, err = f.WriteString(hex.EncodeToString(key) + "\n")
		if err == nil {
			err = f.Sync()
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return nil, fmt.Errorf("secrets key: writing %s: %w", path, err)
		}
		return key, nil
	}
	if err != nil {
		return nil, fmt.Errorf("secrets key: %w", err)
	}
	key, err := hex.DecodeString(strings.TrimSpace(string(raw)))
	if err != nil || len(key) != 32 {
		return nil, fmt.Errorf("secrets key: %s must hold 64 hex digits (32 bytes), e.g. made by `openssl rand -hex 32`", path)
	}
	return key, nil
}
