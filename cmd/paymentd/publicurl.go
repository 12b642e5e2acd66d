package main

import (
	"net"
	"net/url"
	"strconv"
)

// defaultPublicURL is the base URL of invoice payment pages when
// --public-url is not set: http:// with the host of --http-addr (localhost
// when it names no host or an unspecified address such as 0.0.0.0) and the
// port actually listened on (which --http-addr may leave to the system with
// port 0).
func defaultPublicURL(httpAddr string, listening net.Addr) string {
	host, _, err := net.SplitHostPort(httpAddr)
	if err != nil {
		host = ""
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "localhost"
	}
	port := ""
	if tcp, ok := listening.(*net.TCPAddr); ok {
		port = strconv.Itoa(tcp.Port)
	} else if _, p, err := net.SplitHostPort(listening.String()); err == nil {
		port = p
	}
	u := url.URL{Scheme: "http", Host: net.JoinHostPort(host, port)}
	return u.String()
}
