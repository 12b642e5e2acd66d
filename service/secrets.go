package service

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"github.com/paymentd/paymentd/store"
)

// sealedPrefix begins a webhook signing secret as it is stored when the
// server has a secrets key: AES-256-GCM, nonce first, base64url.
const sealedPrefix = "whenc1:"

// secretBox seals webhook signing secrets for the database, so that a copy
// of it (a backup, a dump, a stolen disk) cannot sign webhooks a merchant
// would believe. The secret's owner (endpoint, or account and mode) is the
// additional data, so a sealed secret moved to another row does not open. A
// nil box stores secrets as they are.
type secretBox struct{ aead cipher.AEAD }

// newSecretBox makes a box from a 32-byte key; no key, no box.
func newSecretBox(key []byte) (*secretBox, error) {
	if len(key) == 0 {
		return nil, nil
	}
	if len(key) != 32 {
		return nil, errors.New("the secrets key must be 32 bytes")
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &secretBox{aead}, nil
}

// secretOwner is the additional data a secret is sealed with.
func secretOwner(endpointID, accountID string, livemode bool) string {
	if endpointID != "" {
		return "webhook_endpoint/" + endpointID
	}
	mode := "test"
	if livemode {
		mode = "live"
	}
	return "webhook_secret/" + accountID + "/" + mode
}

// seal returns secret as it is to be stored.
func (b *secretBox) seal(secret, owner string) string {
	if b == nil || secret == "" || strings.HasPrefix(secret, sealedPrefix) {
		return secret
	}
	nonce := make([]byte, b.aead.NonceSize(), b.aead.NonceSize()+len(secret)+b.aead.Overhead())
	_, _ = rand.Read(nonce)
	return sealedPrefix + base64.RawURLEncoding.EncodeToString(b.aead.Seal(nonce, nonce, []byte(secret), []byte(owner)))
}

// open returns a stored secret as it signs: a sealed one opened, one stored
// before secrets were sealed as it is.
func (b *secretBox) open(stored, owner string) (string, error) {
	if !strings.HasPrefix(stored, sealedPrefix) {
		return stored, nil
	}
	if b == nil {
		return "", errors.New("a webhook signing secret is sealed, but this server has no secrets key (--secrets-key-file)")
	}
	raw, err := base64.RawURLEncoding.DecodeString(stored[len(sealedPrefix):])
	if err != nil || len(raw) < b.aead.NonceSize() {
		return "", errors.New("a sealed webhook signing secret is malformed")
	}
	n := b.aead.NonceSize()
	plain, err := b.aead.Open(nil, raw[:n], raw[n:], []byte(owner))
	if err != nil {
		return "", errors.New("a sealed webhook signing secret does not open with this server's secrets key (--secrets-key-file): is it the key the secret was sealed with?")
	}
	return string(plain), nil
}

// openAll opens a current and a previous secret (either may be empty).
func (b *secretBox) openAll(owner string, stored ...string) ([]string, error) {
	out := make([]string, 0, len(stored))
	for _, s := range stored {
		if s == "" {
			continue
		}
		p, err := b.open(s, owner)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

// SealStoredSecrets seals every webhook signing secret stored before the
// server had a secrets key, and checks that every sealed one opens with
// this key: a key file lost or replaced would otherwise leave deliveries
// unsigned. A secret that does not open is an error naming the remedy,
// unless reset, which gives it a new secret (its receivers must be given
// the new one; a previous secret that does not open is dropped). Without a
// key, secrets stay as they are, and a sealed one does not open.
func (s *Service) SealStoredSecrets(ctx context.Context, reset bool) (sealed, replaced int, err error) {
	unreadable := 0
	err = s.store.Write(ctx, func(tx *store.Tx) error {
		sealed, replaced, unreadable = 0, 0, 0
		_, err := tx.SealWebhookSecrets(func(endpointID, accountID string, livemode, previous bool, secret string) (string, bool) {
			owner := secretOwner(endpointID, accountID, livemode)
			if _, err := s.secrets.open(secret, owner); err != nil {
				if !reset {
					unreadable++
					return secret, false
				}
				replaced++
				if previous {
					return "", true
				}
				return s.secrets.seal(newWebhookSecret(), owner), true
			}
			if out := s.secrets.seal(secret, owner); out != secret {
				sealed++
				return out, true
			}
			return secret, false
		})
		if err == nil && unreadable > 0 {
			return fmt.Errorf("%d stored webhook signing secrets do not open with this server's --secrets-key-file (was the key file lost, replaced, or not given?); "+
				"start with the key they were sealed with, or, if it is lost, once with --reset-unreadable-webhook-secrets to give their "+
				"endpoints new secrets (rotate-secret shows them; receivers must be given them)", unreadable)
		}
		return err
	})
	return sealed, replaced, err
}
