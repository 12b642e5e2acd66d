package service

import (
	"net/url"
	"testing"
)

// TestCheckPublicHostRefusesDisguisedPrivateHosts covers the host forms that
// were accepted at creation: each names a loopback or private address.
func TestCheckPublicHostRefusesDisguisedPrivateHosts(t *testing.T) {
	s := &Service{}
	for _, raw := range []string{
		"https://127.0.0.1/cb",
		"https://localhost/cb",
		"https://LOCALHOST./cb",
		"https://[::ffff:127.0.0.1]/cb",
		"https://[::127.0.0.1]/cb",                          // IPv4-compatible
		"https://[::ffff:0:127.0.0.1]/cb",                   // IPv4-translated
		"https://[2002:7f00:1::1]/cb",                       // 6to4 of 127.0.0.1
		"https://[2002:c0a8:101::1]/cb",                     // 6to4 of 192.168.1.1
		"https://[2001:0:4136:e378:8000:63bf:80ff:fffe]/cb", // Teredo, client 127.0.0.1
		"https://[64:ff9b::a00:1]/cb",                       // NAT64 of 10.0.0.1
		"https://[64:ff9b:1::a9fe:a9fe]/cb",                 // local-use NAT64 of 169.254.169.254
		"https://[fe80::1%25eth0]/cb",
		"https://2130706433/cb",
		"https://0x7f000001/cb",
		"https://017700000001/cb",
		"https://127.1/cb",
		"https://ⓛⓞⓒⓐⓛⓗⓞⓢⓣ/cb",
		"https://１２７.０.０.１/cb",
		"https://１２７．０．０．１/cb",
		"https://２１３０７０６４３３/cb",
		"https://api.localhost/cb",
		"https://169.254.169.254/latest/meta-data",
		"https://[::1]/cb",
		"https://[fd00::1]/cb",
		"https://100.64.0.1/cb",
		"https://0.0.0.0/cb",
	} {
		u, err := url.Parse(raw)
		if err != nil {
			t.Errorf("%s: %v", raw, err)
			continue
		}
		err = s.checkPublicHost(t.Context(), "url", u)
		if e, ok := err.(*Error); !ok || (e.Code != "url_not_allowed" && e.Code != "url_invalid") {
			t.Errorf("%s: %v; want url_not_allowed", raw, err)
		}
	}
	for _, raw := range []string{
		"https://93.184.215.14/cb",
		"https://[2606:2800:21f:cb07:6820:80da:af6b:8b2c]/cb",
		"https://[2002:5db8:d70e::1]/cb", // 6to4 of a public address
		"https://shop.example/cb",
		"https://bücher.example/cb",
		"https://my_host.example/cb",
	} {
		u, _ := url.Parse(raw)
		if err := s.checkPublicHost(t.Context(), "url", u); err != nil {
			t.Errorf("%s: %v; want it accepted", raw, err)
		}
	}
}
