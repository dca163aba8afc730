package job

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"strings"

	"github.com/edp-pipelines/edp/internal/runrecord"
)

// identity is src as the run record names it (runrecord.Source), from
// which runrecord.RunID derives the run id.
func (src Source) identity() runrecord.Source {
	return runrecord.Source{
		Bucket: src.Bucket, Key: src.Key, VersionID: src.VersionID, ETag: src.ETag, Sequencer: src.Sequencer,
		Time: src.EventTime.UTC(),
	}
}

// sameETag reports whether two ETags are equal; S3 quotes them in HTTP
// headers but not in events.
func sameETag(a, b string) bool {
	return strings.Trim(a, `"`) == strings.Trim(b, `"`)
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// derivedSeed is the random state used when the config has none: a hash of
// the run id and purpose, in scikit-learn's random_state range so the
// resolved config can carry it.
func derivedSeed(runID, purpose string) int64 {
	sum := sha256.Sum256([]byte(runID + "/" + purpose))
	return int64(binary.BigEndian.Uint32(sum[:4]))
}
