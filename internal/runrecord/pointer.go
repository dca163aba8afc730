package runrecord

import (
	"strings"
	"time"

	"github.com/edp-pipelines/edp/internal/names"
)

// PointerFormat identifies the pointer layout.
const PointerFormat = "edp.pointer/v1"

// Pointer is the content of a version folder's pointer,
// <ArtifactPrefix><version>/latest.json: the run whose files readers of the
// version use. A run's files are complete before any pointer names it, and
// no other run writes into its folder, so reading the pointer once and then
// the files it lists never mixes two runs.
type Pointer struct {
	// Format is PointerFormat.
	Format string `json:"format"`
	// Version is the run_config.version of the folder.
	Version string `json:"version"`
	// RunID is the run the folder currently serves; its files are in
	// runs/<run-id>/ of the version folder (names.RunFolder).
	RunID string `json:"run_id"`
	// Files names every file of the run's folder, run.json last.
	Files []string `json:"files"`
	// Upload is the upload the run trained on; it orders runs of the
	// version (Upload.After).
	Upload Upload `json:"upload"`
	// PublishedAt is when the run published the pointer (UTC).
	PublishedAt time.Time `json:"published_at"`
}

// Upload says which config upload a run trained on, and when it happened:
// what orders the runs of one version, so that the pointer names the run
// of the latest upload whatever order the runs finish in.
type Upload struct {
	// Key is the config's key.
	Key string `json:"key"`
	// Time is the upload's time from its event, or, when unknown (manual
	// submits, consumer run), the time the run started.
	Time time.Time `json:"time"`
	// Sequencer is S3's sequencer of the upload's event, if any.
	Sequencer string `json:"sequencer,omitempty"`
}

// After reports whether upload u happened after v. Uploads of the same key
// are ordered by their sequencers when both have one and they differ (S3
// orders the events of a key this way, finer than their times); all others
// by time. Neither is after the other when both are equal: then the later
// publish wins.
func (u Upload) After(v Upload) bool {
	if u.Key == v.Key && u.Sequencer != "" && v.Sequencer != "" {
		if c := compareSequencers(u.Sequencer, v.Sequencer); c != 0 {
			return c > 0
		}
	}
	return u.Time.After(v.Time)
}

// compareSequencers orders two S3 sequencers of the same key as S3
// documents it: the shorter is right-padded with zeros, then the two hex
// strings are compared (without regard to case).
func compareSequencers(a, b string) int {
	a, b = strings.ToUpper(a), strings.ToUpper(b)
	if n := len(b) - len(a); n > 0 {
		a += strings.Repeat("0", n)
	} else if n < 0 {
		b += strings.Repeat("0", -n)
	}
	return strings.Compare(a, b)
}

// FileKey is the key of the run's file name in versionFolder.
func (p Pointer) FileKey(versionFolder, name string) string {
	return names.RunFolder(versionFolder, p.RunID) + name
}
