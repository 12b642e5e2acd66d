package service

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// rateLimiter keeps one token bucket per API key.
type rateLimiter struct {
	limit rate.Limit
	burst int

	mu      sync.Mutex
	buckets map[string]*rate.Limiter
}

func newRateLimiter(perSecond float64, burst int) *rateLimiter {
	return &rateLimiter{limit: rate.Limit(perSecond), burst: burst, buckets: map[string]*rate.Limiter{}}
}

// allow takes a token for key, or says how long to wait for one.
func (r *rateLimiter) allow(key string) (bool, time.Duration) {
	if r.limit < 0 {
		return true, 0
	}
	r.mu.Lock()
	l, ok := r.buckets[key]
	if !ok {
		l = rate.NewLimiter(r.limit, r.burst)
		r.buckets[key] = l
	}
	r.mu.Unlock()
	now := time.Now()
	res := l.ReserveN(now, 1)
	if d := res.DelayFrom(now); d > 0 {
		res.CancelAt(now)
		return false, d
	}
	return true, 0
}
