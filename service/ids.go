package service

import (
	"crypto/rand"
	"encoding/binary"
	"strings"
	"sync"
	"time"
)

// Object id prefixes.
const (
	PrefixPayment = "pay_"
	PrefixRefund  = "re_"
	PrefixEvent   = "evt_"
	PrefixAccount = "acct_"
	PrefixKey     = "key_"
)

const crockford = "0123456789abcdefghjkmnpqrstvwxyz"

// idGen makes time-ordered ids: 48 bits of milliseconds then 80 random bits,
// in lower-case Crockford base32 (26 characters). Within one millisecond the
// random part is incremented, so ids from one process are strictly
// increasing: inserts append to the indexes, and ids sort by creation time.
type idGen struct {
	mu     sync.Mutex
	lastMS uint64
	hi     uint16 // top 16 of the 80 random bits
	lo     uint64 // low 64 of the 80 random bits
}

var ids idGen

// NewID returns a new id with the given prefix.
func NewID(prefix string) string {
	return prefix + ids.next(time.Now())
}

func (g *idGen) next(now time.Time) string {
	ms := uint64(now.UnixMilli())
	g.mu.Lock()
	if ms <= g.lastMS {
		ms = g.lastMS
		g.lo++
		if g.lo == 0 {
			g.hi++
		}
	} else {
		var b [10]byte
		_, _ = rand.Read(b[:])
		g.lastMS = ms
		g.hi = binary.BigEndian.Uint16(b[:2]) & 0x7fff // leave room to increment
		g.lo = binary.BigEndian.Uint64(b[2:])
	}
	hi, lo := g.hi, g.lo
	g.mu.Unlock()

	var out [26]byte
	// 128 bits = ms(48) | hi(16) | lo(64); written 5 bits at a time from the
	// least significant end. 26×5 = 130, so the first character holds 3 bits.
	v := [2]uint64{ms<<16 | uint64(hi), lo}
	for i := 25; i >= 0; i-- {
		out[i] = crockford[v[1]&31]
		v[1] = v[1]>>5 | v[0]<<59
		v[0] >>= 5
	}
	return string(out[:])
}

// idBound returns the smallest id with the prefix created at or after t, for
// turning time ranges into id ranges.
func idBound(prefix string, t time.Time) string {
	ms := uint64(max(t.UnixMilli(), 0))
	var out [26]byte
	v := [2]uint64{ms << 16, 0}
	for i := 25; i >= 0; i-- {
		out[i] = crockford[v[1]&31]
		v[1] = v[1]>>5 | v[0]<<59
		v[0] >>= 5
	}
	return prefix + string(out[:])
}

// validID reports whether s looks like an id with the prefix, so that
// malformed ids get a clear error instead of a lookup.
func validID(s, prefix string) bool {
	rest, ok := strings.CutPrefix(s, prefix)
	if !ok || len(rest) != 26 {
		return false
	}
	for i := 0; i < len(rest); i++ {
		if !strings.ContainsRune(crockford, rune(rest[i])) {
			return false
		}
	}
	return true
}
