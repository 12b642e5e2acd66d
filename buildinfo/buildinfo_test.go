package buildinfo

import (
	"runtime/debug"
	"testing"
)

func TestFrom(t *testing.T) {
	const rev = "a61d0cf0123456789abcdef0123456789abcdef0"
	vcs := []debug.BuildSetting{{Key: "vcs", Value: "git"}, {Key: "vcs.revision", Value: rev}, {Key: "vcs.modified", Value: "false"}}
	cases := []struct {
		name       string
		bi         *debug.BuildInfo
		ldV, ldR   string
		want       string
		wantRev    string
		wantModded bool
	}{
		{"no build info", nil, "", "", "devel", "", false},
		{"go run: devel, no vcs", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}}, "", "", "devel", "", false},
		{"go build in a checkout without tags", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: vcs}, "", "", "devel+a61d0cf01234", rev, false},
		{"pseudo-version already names the revision", &debug.BuildInfo{Main: debug.Module{Version: "v0.0.0-20261202025426-a61d0cf01234"}, Settings: vcs}, "", "",
			"v0.0.0-20261202025426-a61d0cf01234", rev, false},
		{"modified tree", &debug.BuildInfo{Main: debug.Module{Version: "v1.2.0"}, Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: rev}, {Key: "vcs.modified", Value: "true"}}}, "", "",
			"v1.2.0+a61d0cf01234.dirty", rev, true},
		{"ldflags win", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: vcs}, "v1.3.0", "0123456789ab0123", "v1.3.0+0123456789ab", "0123456789ab0123", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := from(c.bi, c.ldV, c.ldR)
			if got.String() != c.want || got.Revision != c.wantRev || got.Modified != c.wantModded {
				t.Errorf("from() = %+v (String %q); want String %q, revision %q, modified %v", got, got.String(), c.want, c.wantRev, c.wantModded)
			}
			if got.GoVersion == "" {
				t.Error("GoVersion is empty")
			}
		})
	}
}
