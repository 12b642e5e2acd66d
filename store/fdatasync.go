package store

import "modernc.org/sqlite"

// SQLite commits with fdatasync(2), as the SQLite of every Linux
// distribution does: it writes a file's data and the metadata needed to read
// it back (its size included) but not its timestamps, so a commit is as
// durable as with fsync and skips the journal write fsync forces for the
// modification time. modernc's transpiled SQLite keeps SQLite's source
// default, fsync, unless told otherwise; the setting is process-wide, so it is
// made once, for every database this package opens. Where the platform has no
// fdatasync (macOS, Windows) the call fails and SQLite keeps its own sync.
func init() {
	_, _ = sqlite.Fdatasync(true)
}
