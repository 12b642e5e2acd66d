package main

import (
	"fmt"
	"io"

	"github.com/paymentd/paymentd/buildinfo"
)

// version may be set at build time with -ldflags "-X main.version=v1.2.0";
// buildinfo.Version and buildinfo.Revision may be set the same way. Unset,
// the module version and VCS revision come from runtime/debug.ReadBuildInfo.
var version string

// build is the running binary's version and revision.
func build() buildinfo.Info {
	if version != "" && buildinfo.Version == "" {
		buildinfo.Version = version
	}
	return buildinfo.Get()
}

// printVersion is `paymentd version`.
func printVersion(stdout io.Writer) {
	b := build()
	rev := b.Revision
	if rev == "" {
		rev = "unknown (built without VCS information; see README \"Build and install\")"
	} else if b.Modified {
		rev += " (modified tree)"
	}
	fmt.Fprintf(stdout, "paymentd %s\nrevision %s\n%s\n", b, rev, b.GoVersion)
}
