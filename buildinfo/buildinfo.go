// Package buildinfo says which build of paymentd is running: the module
// version and VCS revision the Go toolchain recorded in the binary, or the
// values a release build set with -ldflags -X.
package buildinfo

import (
	"runtime"
	"runtime/debug"
	"strings"
)

// Version and Revision may be set at build time, e.g.
//
//	go build -ldflags "-X github.com/paymentd/paymentd/buildinfo.Version=v1.2.0 -X github.com/paymentd/paymentd/buildinfo.Revision=$(git rev-parse HEAD)" ./cmd/paymentd
//
// They win over what runtime/debug.ReadBuildInfo reports, so that a build
// from a source tarball (no .git) can still name its release.
var (
	Version  string
	Revision string
)

// Info is what a running binary knows about itself.
type Info struct {
	Version   string // module version, e.g. v1.2.0 or a pseudo-version; "devel" when unknown
	Revision  string // full VCS revision (commit hash), empty when unknown
	Modified  bool   // the working tree had uncommitted changes when built
	GoVersion string
}

// Get returns the running binary's build information.
func Get() Info {
	bi, _ := debug.ReadBuildInfo()
	return from(bi, Version, Revision)
}

// from combines the toolchain's record with the -ldflags values; it is
// separate from Get so that tests can feed it any BuildInfo.
func from(bi *debug.BuildInfo, ldVersion, ldRevision string) Info {
	info := Info{GoVersion: runtime.Version()}
	if bi != nil {
		if bi.GoVersion != "" {
			info.GoVersion = bi.GoVersion
		}
		if v := bi.Main.Version; v != "" && v != "(devel)" {
			info.Version = v
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				info.Revision = s.Value
			case "vcs.modified":
				info.Modified = s.Value == "true"
			}
		}
	}
	if ldVersion != "" {
		info.Version = ldVersion
	}
	if ldRevision != "" {
		info.Revision, info.Modified = ldRevision, false
	}
	if info.Version == "" {
		info.Version = "devel"
	}
	return info
}

// ShortRevision is the first 12 characters of the revision, as Go
// pseudo-versions write it.
func (i Info) ShortRevision() string {
	if len(i.Revision) > 12 {
		return i.Revision[:12]
	}
	return i.Revision
}

// String is the version as /v1/status and the startup line show it: the
// module version, followed by the short revision when the version does not
// already contain it (a pseudo-version does), and "+dirty" for a build from
// a modified tree.
func (i Info) String() string {
	v := i.Version
	if r := i.ShortRevision(); r != "" && !strings.Contains(v, r) {
		v += "+" + r
	}
	if i.Modified && !strings.Contains(v, "dirty") {
		v += ".dirty"
	}
	return v
}
