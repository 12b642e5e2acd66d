package service

import (
	"crypto/sha256"
	"math/big"
	"slices"
	"strings"
)

// base58Alphabet is Bitcoin's base58 alphabet, in which tron (and bitcoin's
// legacy) addresses are written: the sandbox's deposit addresses are encoded
// with it and payout recipients' tron addresses decoded with it.
const base58Alphabet = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"

// base58Checksum is the 4-byte double-SHA-256 checksum of a base58check payload.
func base58Checksum(payload []byte) []byte {
	first := sha256.Sum256(payload)
	second := sha256.Sum256(first[:])
	return second[:4]
}

// base58Check encodes payload with its checksum, as tron (and bitcoin's
// legacy) addresses are written.
func base58Check(payload []byte) string {
	data := append(slices.Clone(payload), base58Checksum(payload)...)
	n := new(big.Int).SetBytes(data)
	radix, mod := big.NewInt(58), new(big.Int)
	var out []byte
	for n.Sign() > 0 {
		n.DivMod(n, radix, mod)
		out = append(out, base58Alphabet[mod.Int64()])
	}
	for _, b := range data {
		if b != 0 {
			break
		}
		out = append(out, base58Alphabet[0])
	}
	slices.Reverse(out)
	return string(out)
}

// base58Decode decodes Bitcoin-alphabet base58, or returns nil.
func base58Decode(s string) []byte {
	var out []byte // big-endian
	for i := 0; i < len(s); i++ {
		carry := strings.IndexByte(base58Alphabet, s[i])
		if carry < 0 {
			return nil
		}
		for j := len(out) - 1; j >= 0; j-- {
			carry += int(out[j]) * 58
			out[j] = byte(carry)
			carry >>= 8
		}
		for carry > 0 {
			out = append([]byte{byte(carry)}, out...)
			carry >>= 8
		}
	}
	for i := 0; i < len(s) && s[i] == '1'; i++ {
		out = append([]byte{0}, out...)
	}
	return out
}
