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
	PrefixPayout  = "po_"
	PrefixInvoice = "inv_"
)

// Webhook id prefixes: endpoints and deliveries.
const (
	PrefixWebhookEndpoint = "we_"
	PrefixDelivery        = "whd_"
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

	return encodeID(ms, hi, lo)
}

// encodeID writes 128 bits = ms(48) | hi(16) | lo(64) five bits at a time
// from the least significant end. 26×5 = 130, so the first character holds
// 3 bits.
func encodeID(ms uint64, hi uint16, lo uint64) string {
	var out [26]byte
	v := [2]uint64{ms<<16 | uint64(hi), lo}
	for i := 25; i >= 0; i-- {
		out[i] = crockford[v[1]&31]
		v[1] = v[1]>>5 | v[0]<<59
		v[0] >>= 5
	}
	return string(out[:])
}

// IDTime is the creation time written into an id (millisecond precision).
// Objects use it as their created_at, so that time filters on lists can be
// exact id ranges.
func IDTime(id string) time.Time {
	rest := id[strings.LastIndexByte(id, '_')+1:]
	var v [2]uint64
	for i := 0; i < len(rest); i++ {
		d := uint64(strings.IndexByte(crockford, rest[i]))
		v[0] = v[0]<<5 | v[1]>>59
		v[1] = v[1]<<5 | d
	}
	return time.UnixMilli(int64(v[0] >> 16)).UTC()
}

// idBound returns the smallest id with the prefix created at or after t, for
// turning time ranges into id ranges: created_at ≥ t exactly when id ≥
// idBound(t), and created_at < t exactly when id < idBound(t), because
// created_at is the id's whole-millisecond time and t is rounded up to one.
func idBound(prefix string, t time.Time) string {
	ms := max(t.UnixMilli(), 0)
	if t.After(time.UnixMilli(ms)) {
		ms++
	}
	return prefix + encodeID(uint64(ms), 0, 0)
}

// validID reports whether s looks like an id with the prefix, so that
// malformed ids get a clear error instead of a lookup.
func validID(s, prefix string) bool {
	rest, ok := strings.CutPrefix(s, prefix)
	if !ok || len(rest) != 26 {
		return false
	}
	for i := 0; i < len(rest); i++ {
		if !isCrockford[rest[i]] {
			return false
		}
	}
	return true
}

var isCrockford = func() (t [256]bool) {
	for i := 0; i < len(crockford); i++ {
		t[crockford[i]] = true
	}
	return t
}()
